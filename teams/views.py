from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from teams.selectors import org_list_for_user, team_list_for_user


@login_required
def home(request):
    return render(
        request,
        "teams/home.html",
        {"orgs": org_list_for_user(request.user), "teams": team_list_for_user(request.user)},
    )
