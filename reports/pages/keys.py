"""A team's keys page (``/teams/<id>/keys/``): its keys with limits, month-to-date spend, last
use and share of the team's budgets, and the mint, rotate and revoke forms for those who may
manage keys. It lives with the reports because it shows spend; the key changes go through
``teams.services``.

Reads go through the tenant-scoped selectors only; the view has already found the team in
``team_list_for_user``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Sum
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from finops.money import usd_exact
from reports.periods import local_date, period_days
from reports.selectors import daily_spend_list_for_user, hourly_spend_list_for_user
from reports.tables import Column, Table, csv_or_none
from teams.forms import KeyMintForm, KeyRevokeForm, KeyRotateForm
from teams.models import BudgetScope, Team, VirtualKey
from teams.permissions import Subject, may_manage
from teams.selectors import (
    access_for_user,
    budget_list_for_user,
    key_list_for_user,
    team_list_for_user,
)
from teams.services import key_mint, key_revoke, key_rotate

ZERO = Decimal(0)


# --- read assembly -------------------------------------------------------------------------------


def key_status(key: VirtualKey, *, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def team_keys_list(user, *, team: Team) -> list[VirtualKey]:
    """The team's keys, usable ones first, then by name."""
    keys = list(
        key_list_for_user(user)
        .filter(team=team)
        .select_related("default_feature")
        .prefetch_related("secrets")
    )
    now = timezone.now()
    return sorted(keys, key=lambda k: (key_status(k, now=now) != "active", k.name.lower(), k.pk))


def _hint(key: VirtualKey) -> str:
    """The visible prefix of the current secret, from the prefetched secrets."""
    current = [s for s in key.secrets.all() if s.superseded_at is None]
    if not current:
        return "-"
    return str(max(current, key=lambda s: s.created_at))


def key_last_used(user, *, team: Team, keys: list[VirtualKey]) -> dict[int, tuple[datetime, str]]:
    """When each key was last used, and where that comes from: the key's ``last_used_at``
    (the gateway updates it every few seconds), else the start of the latest hour rollup bucket
    with traffic of that key (keys used before that field was kept, or ledger rows replayed)."""
    found: dict[int, tuple[datetime, str]] = {
        k.pk: (k.last_used_at, "gateway") for k in keys if k.last_used_at is not None
    }
    missing = [k.pk for k in keys if k.pk not in found]
    if missing:
        rows = (
            hourly_spend_list_for_user(user)
            .filter(org_id=team.org_id, key_id__in=missing)
            .values("key_id")
            .annotate(latest=Max("hour"))
            .order_by()
        )
        for r in rows:
            found[r["key_id"]] = (r["latest"], "rollup hour")
    return found


def _local(value: datetime | None, tz) -> str:
    return "" if value is None else timezone.localtime(value, tz).strftime("%Y-%m-%d %H:%M")


KEY_COLUMNS = (
    Column("name", "Key"),
    Column("hint", "Secret prefix"),
    Column("status", "Status"),
    Column("spend_month", "Spend this month USD", numeric=True, kind="usd"),
    Column("last_used", "Last used"),
    Column("rpm", "RPM limit", numeric=True),
    Column("tpm", "TPM limit", numeric=True),
    Column("parallel", "Max parallel", numeric=True),
    Column("allowed_models", "Allowed models"),
    Column("default_feature", "Default feature"),
    Column("expires", "Expires"),
    Column("created", "Created"),
)


@dataclass(frozen=True)
class KeyPage:
    team: Team
    month_first: date
    today: date
    keys: list[VirtualKey]
    keys_table: Table
    budgets_table: Table

    @property
    def tables(self) -> list[Table]:
        return [self.keys_table, self.budgets_table]

    @property
    def active_keys(self) -> list[VirtualKey]:
        now = timezone.now()
        return [k for k in self.keys if key_status(k, now=now) != "revoked"]


def key_page_build(user, *, team: Team, now: datetime | None = None) -> KeyPage:
    now = now or timezone.now()
    tz = team.org.tz
    today = local_date(now, tz)
    month_first = today.replace(day=1)
    keys = team_keys_list(user, team=team)
    spend = _team_window_spend(user, team=team, first=month_first, after=today + timedelta(days=1))
    last_used = key_last_used(user, team=team, keys=keys)

    rows = []
    for k in keys:
        used = last_used.get(k.pk)
        rows.append(
            {
                "name": k.name,
                "hint": _hint(k),
                "status": key_status(k, now=now),
                "spend_month": usd_exact(spend.get(k.pk, ZERO)),
                "last_used": f"{_local(used[0], tz)} ({used[1]})" if used else "never",
                "rpm": k.rpm_limit or "",
                "tpm": k.tpm_limit or "",
                "parallel": k.max_parallel or "",
                "allowed_models": ", ".join(k.allowed_models or []) or "all",
                "default_feature": k.default_feature.slug if k.default_feature_id else "",
                "expires": _local(k.expires_at, tz) or "never",
                "created": _local(k.created_at, tz),
            }
        )
    keys_table = Table(
        name="keys",
        title=f"Keys (spend from {month_first} to {today}, {team.org.timezone})",
        columns=KEY_COLUMNS,
        rows=rows,
    )
    budgets = budget_share_table(user, team=team, keys=keys, today=today)
    return KeyPage(
        team=team,
        month_first=month_first,
        today=today,
        keys=keys,
        keys_table=keys_table,
        budgets_table=budgets,
    )


BUDGET_COLUMNS = (
    Column("budget", "Budget"),
    Column("window", "Current window"),
    Column("limit", "Limit USD", numeric=True, kind="usd"),
    Column("who", "Key"),
    Column("spent", "Spent in window USD", numeric=True, kind="usd"),
    Column("share", "Share of limit %", numeric=True, kind="pct"),
)


def _share(spent: Decimal, limit: Decimal) -> str:
    if not limit:
        return ""
    return str((spent * 100 / limit).quantize(Decimal("0.01")))


def budget_share_table(user, *, team: Team, keys: list[VirtualKey], today: date) -> Table:
    """For each team budget, every key's spend in the budget's current window and its share of
    the limit (and the whole team's, keyless calls included); for each key budget, that key's.
    Windows are the budgets' calendar windows in the org's timezone, read from day rollups."""
    budgets = (
        budget_list_for_user(user)
        .filter(org_id=team.org_id, team=team, scope__in=[BudgetScope.TEAM, BudgetScope.KEY])
        .order_by("scope", "period", "pk")
    )
    names = {k.pk: k.name for k in keys}
    rows = []
    for budget in budgets:
        first, after = period_days(budget.period, today)
        spent = _team_window_spend(user, team=team, first=first, after=after)
        base = {
            "budget": f"{budget.scope_label} {budget.period} ({budget.action})",
            "window": f"{first} to {after - timedelta(days=1)}",
            "limit": usd_exact(budget.limit_usd),
        }
        if budget.scope == BudgetScope.KEY:
            key_spent = spent.get(budget.key_id, ZERO)
            rows.append(
                base
                | {
                    "who": names.get(budget.key_id, f"#{budget.key_id}"),
                    "spent": usd_exact(key_spent),
                    "share": _share(key_spent, budget.limit_usd),
                }
            )
            continue
        for key in keys:
            key_spent = spent.get(key.pk, ZERO)
            rows.append(
                base
                | {
                    "who": key.name,
                    "spent": usd_exact(key_spent),
                    "share": _share(key_spent, budget.limit_usd),
                }
            )
        total = sum(spent.values(), ZERO)
        rows.append(
            base
            | {
                "who": "whole team",
                "spent": usd_exact(total),
                "share": _share(total, budget.limit_usd),
            }
        )
    return Table(
        name="budgets", title="Share of the team's budgets", columns=BUDGET_COLUMNS, rows=rows
    )


def _team_window_spend(user, *, team: Team, first: date, after: date) -> dict[int, Decimal]:
    """Spend per key id (0: calls without a key) of the team in the local days [first, after)."""
    rows = (
        daily_spend_list_for_user(user)
        .filter(org_id=team.org_id, team_id=team.pk, day__gte=first, day__lt=after)
        .values("key_id")
        .annotate(total=Sum("cost"))
        .order_by()
    )
    return {r["key_id"]: Decimal(r["total"] or 0) for r in rows}


# --- the page ------------------------------------------------------------------------------------


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
