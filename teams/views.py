from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from teams.forms import InvitePasswordResetForm
from teams.models import Role
from teams.selectors import access_for_user, org_list_for_user, team_list_for_user

_ROLE_LABELS = dict(Role.choices)


@login_required
def home(request):
    access = access_for_user(request.user)
    orgs = [
        {"org": org, "role": _ROLE_LABELS.get(access.org_role(org.id), "Team member")}
        for org in org_list_for_user(request.user)
    ]
    teams = []
    for team in team_list_for_user(request.user):
        own = access.team_roles.get(team.id)
        if own:
            role = _ROLE_LABELS[own]
        else:
            role = f"{_ROLE_LABELS.get(access.org_role(team.org_id), 'Reader')} (organisation)"
        teams.append({"team": team, "role": role})
    return render(request, "teams/home.html", {"orgs": orgs, "teams": teams})


class PasswordResetView(auth_views.PasswordResetView):
    """Links in the email point at ``SITE_URL``, never at whatever Host the request carried."""

    form_class = InvitePasswordResetForm

    def form_valid(self, form):
        self.extra_email_context = {"site_url": settings.SITE_URL}
        return super().form_valid(form)
