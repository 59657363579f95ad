"""The home page: the viewer's organisations and teams with their month-to-date spend, the
budgets at risk (80 % of the current window or more) and the latest alerts, each linking to
the page that explains it. A control-plane page that shows spend, so it lives in reports (like
the keys page); every figure comes from a scoped selector.

Month to date is the organisation's calendar month in its own timezone: a whole-org reader
sees the org's total; anyone else the total of each team they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from finops.money import usd_display
from reports.forecast import budget_spent
from reports.periods import local_date, org_zone
from reports.selectors import (
    budget_alert_list_for_user,
    dashboard_team_list,
    org_daily_rows,
    team_daily_rows,
)
from teams.models import BudgetScope, Role
from teams.selectors import access_for_user, budget_list_for_user, org_list_for_user

AT_RISK_PERCENT = Decimal(80)
RECENT_ALERTS = 10
_ROLE_LABELS = dict(Role.choices)


@dataclass(frozen=True)
class MonthToDate:
    label: str
    url: str
    spent: Decimal

    @property
    def spent_display(self) -> str:
        return usd_display(self.spent)


def _month_to_date(rows, org) -> Decimal:
    first = local_date(timezone.now(), org_zone(org)).replace(day=1)
    total = rows.filter(day__gte=first).aggregate(s=Sum("cost"))["s"]
    return Decimal(total or 0)


def spend_month_to_date(user) -> list[MonthToDate]:
    """One figure per organisation the viewer reads whole, then one per team of theirs in
    another organisation."""
    access = access_for_user(user)
    out = []
    for org in org_list_for_user(user).order_by("slug"):
        if access.reads_whole_org(org.pk):
            out.append(
                MonthToDate(
                    label=org.name,
                    url=reverse("reports:org-overview", args=[org.pk]),
                    spent=_month_to_date(org_daily_rows(user, org), org),
                )
            )
    for team in dashboard_team_list(user).order_by("org__slug", "slug"):
        if access.reads_whole_org(team.org_id):
            continue
        out.append(
            MonthToDate(
                label=f"{team.org.slug}/{team.name}",
                url=reverse("reports:team-dashboard", args=[team.pk]),
                spent=_month_to_date(team_daily_rows(user, team), team.org),
            )
        )
    return out


def budgets_at_risk(user) -> list[dict]:
    """Budgets the viewer may read whose current window is at least 80 % spent, fullest first.
    An org-wide budget counts only for whole-org readers: its spend is the whole org's."""
    access = access_for_user(user)
    rows = []
    for budget in budget_list_for_user(user).select_related("org", "team", "feature", "key"):
        if budget.scope == BudgetScope.ORG and not access.reads_whole_org(budget.org_id):
            continue  # its burn is the whole org's spend (as on the dashboards)
        spend = budget_spent(budget)
        if spend.limit > 0 and spend.percent >= AT_RISK_PERCENT:
            rows.append(
                {
                    "budget": budget,
                    "spent": usd_display(spend.spent),
                    "limit": usd_display(spend.limit),
                    "percent": spend.percent,
                    "team_id": budget.team_id
                    or (budget.feature.team_id if budget.feature_id else None)
                    or (budget.key.team_id if budget.key_id else None),
                }
            )
    return sorted(rows, key=lambda r: r["percent"], reverse=True)


def _role_rows(user):
    access = access_for_user(user)
    orgs = [
        {"org": org, "role": _ROLE_LABELS.get(access.org_role(org.id), "Team member")}
        for org in org_list_for_user(user)
    ]
    teams = []
    for team in dashboard_team_list(user):
        own = access.team_roles.get(team.id)
        if own:
            role = _ROLE_LABELS[own]
        else:
            role = f"{_ROLE_LABELS.get(access.org_role(team.org_id), 'Reader')} (organisation)"
        teams.append({"team": team, "role": role})
    return orgs, teams


@login_required
def home(request):
    user = request.user
    orgs, teams = _role_rows(user)
    alerts = budget_alert_list_for_user(user).order_by("-created_at", "-id")[:RECENT_ALERTS]
    return render(
        request,
        "teams/home.html",
        {
            "orgs": orgs,
            "teams": teams,
            "month_to_date": spend_month_to_date(user),
            "at_risk": budgets_at_risk(user),
            "alerts": list(alerts),
        },
    )
