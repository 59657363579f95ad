"""A team's keys page (``/teams/<id>/keys/``): its keys with limits, month-to-date spend and
share of the team's budgets, and the mint, rotate and revoke forms for those who may manage keys.
It lives with the reports because it shows spend; the key changes go through
``teams.services``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from reports.key_page import key_page_build
from reports.tables import csv_or_none
from teams.forms import KeyMintForm, KeyRevokeForm, KeyRotateForm
from teams.permissions import Subject, may_manage
from teams.selectors import access_for_user, team_list_for_user
from teams.services import key_mint, key_revoke, key_rotate


@never_cache
@login_required
def team_keys(request, team_id: int):
    """A team's keys. Its leads and the org's admins mint, rotate and revoke; its members (and
    finance) read. A team the user cannot read is a 404, a write without the role a 403. A new
    secret is rendered into this one response only (never stored, logged or redirected with)."""
    team = get_object_or_404(team_list_for_user(request.user), pk=team_id)
    access = access_for_user(request.user)
    can_manage = may_manage(access, Subject.KEY, org_id=team.org_id, team_id=team.pk)
    mint_form = KeyMintForm(team=team) if can_manage else None
    revealed = None  # {"key": ..., "secret": ..., "action": ...}: this response only
    status = 200

    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Your role does not allow changing this team's keys.")
        action = request.POST.get("action")
        with timezone.override(team.org.tz):
            if action == "mint":
                mint_form = KeyMintForm(request.POST, team=team)
                if mint_form.is_valid():
                    minted = key_mint(team=team, actor=request.user, **mint_form.cleaned_data)
                    revealed = {"key": minted.key, "secret": minted.secret, "action": "minted"}
                    mint_form = KeyMintForm(team=team)
                else:
                    status = 400
            elif action == "rotate":
                form = KeyRotateForm(request.POST, team=team)
                if not form.is_valid():
                    messages.error(request, "; ".join(form.errors.get("key", ["Invalid key."])))
                    return redirect("team-keys", team_id=team.pk)
                key = form.cleaned_data["key"]
                rotated = key_rotate(key=key, actor=request.user)
                old = key.secrets.filter(superseded_at__isnull=False).order_by("-valid_until")
                revealed = {
                    "key": rotated.key,
                    "secret": rotated.secret,
                    "action": "rotated",
                    "old_valid_until": old.first().valid_until if old.exists() else None,
                }
            elif action == "revoke":
                form = KeyRevokeForm(request.POST, team=team)
                if form.is_valid():
                    key = key_revoke(key=form.cleaned_data["key"], actor=request.user)
                    messages.success(request, f"Key {key.name} revoked.")
                    return redirect("team-keys", team_id=team.pk)
                for errors in form.errors.values():
                    for error in errors:
                        messages.error(request, error)
                key_id = request.POST.get("key", "")
                return redirect(
                    f"{request.path}?revoke={key_id if key_id.isdigit() else ''}#revoke"
                )
            else:
                return HttpResponseBadRequest("Unknown action.")

    page = key_page_build(request.user, team=team)
    if request.method == "GET":
        download = csv_or_none(request, page.tables, f"{team.org.slug}-{team.slug}-keys")
        if download is not None:
            return download

    confirm = None
    revoke_id = request.GET.get("revoke", "") if can_manage else ""
    if revoke_id.isdigit():
        target = next((k for k in page.active_keys if k.pk == int(revoke_id)), None)
        if target is not None:
            confirm = {"key": target, "form": KeyRevokeForm(team=team, initial={"key": target})}

    return render(
        request,
        "teams/keys.html",
        {
            "team": team,
            "page": page,
            "can_manage": can_manage,
            "mint_form": mint_form,
            "revealed": revealed,
            "confirm": confirm,
        },
        status=status,
    )
