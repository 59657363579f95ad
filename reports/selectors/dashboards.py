"""Tenant-scoped reads behind the dashboards and a team's statement, on top of
``reports.selectors.spend`` and ``teams.selectors``: which organisations and teams a user may
open, and the rollup rows, budgets, alerts and labels of one of them.

Every queryset here starts from a scoped selector and is only narrowed further, so a lead never
reads another team's rows: the organisation overview is for whole-org readers (admin, finance,
superusers as admin); a team page for the team's leads and members and its org's whole-org
readers. Anything else is simply absent (the views answer 404).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from reports.models import BudgetAlert, DailyDimensionSpend, DailySpend, Dimension
from reports.selectors.spend import (
    budget_alert_list_for_user,
    daily_dimension_spend_list_for_user,
    daily_spend_list_for_user,
)
from teams.models import Budget, BudgetScope, Organization, Team
from teams.selectors import (
    access_for_user,
    budget_list_for_user,
    key_list_for_user,
    org_list_for_user,
    team_list_for_user,
)


def overview_org_list(user) -> QuerySet[Organization]:
    """Organisations whose overview ``user`` may open: those they read whole."""
    access = access_for_user(user)
    whole = [org_id for org_id in access.org_roles if access.reads_whole_org(org_id)]
    return org_list_for_user(user).filter(id__in=whole)


def dashboard_team_list(user) -> QuerySet[Team]:
    """Teams whose page ``user`` may open (their own teams; every team of a whole-org reader)."""
    return team_list_for_user(user)


def org_daily_rows(user, org: Organization) -> QuerySet[DailySpend]:
    """Every day rollup row of ``org`` (team-less org-level spend included) for a whole-org
    reader; nothing for anyone else."""
    if not access_for_user(user).reads_whole_org(org.pk):
        return DailySpend.objects.none()
    return daily_spend_list_for_user(user).filter(org_id=org.pk)


def team_daily_rows(user, team: Team) -> QuerySet[DailySpend]:
    """The day rollup rows of one team, through the user's scope (empty if not theirs)."""
    return daily_spend_list_for_user(user).filter(org_id=team.org_id, team_id=team.pk)


def org_dimension_rows(user, org: Organization) -> QuerySet[DailyDimensionSpend]:
    """``org_daily_rows`` as per-dimension marginals (what the dashboards read): every team of
    ``org``, team-less spend included, for a whole-org reader; nothing for anyone else."""
    if not access_for_user(user).reads_whole_org(org.pk):
        return DailyDimensionSpend.objects.none()
    return daily_dimension_spend_list_for_user(user).filter(org_id=org.pk)


def team_dimension_rows(user, team: Team) -> QuerySet[DailyDimensionSpend]:
    """``team_daily_rows`` as per-dimension marginals (empty if not the user's)."""
    return daily_dimension_spend_list_for_user(user).filter(org_id=team.org_id, team_id=team.pk)


def budget_dimension_rows(budget: Budget) -> QuerySet[DailyDimensionSpend]:
    """The marginal rows whose sum by day is the spend of the budget's scope (the same days and
    sums as ``reports.selectors.budget_rows``, in a few rows a day). Not user-scoped:
    callers pass budgets from the user's scoped budget list."""
    rows = DailyDimensionSpend.objects.filter(org_id=budget.org_id)
    if budget.scope == BudgetScope.TEAM:
        return rows.filter(dimension=Dimension.TEAM, team_id=budget.team_id)
    if budget.scope == BudgetScope.FEATURE:
        return rows.filter(
            dimension=Dimension.FEATURE,
            team_id=budget.feature.team_id,
            value=budget.feature.slug,
        )
    if budget.scope == BudgetScope.KEY:
        return rows.filter(dimension=Dimension.KEY, value=str(budget.key_id))
    return rows.filter(dimension=Dimension.TEAM)


def org_budget_list(user, org: Organization) -> QuerySet[Budget]:
    """The organisation-wide budgets, for a whole-org reader (their burn reads every org row)."""
    if not access_for_user(user).reads_whole_org(org.pk):
        return Budget.objects.none()
    return budget_list_for_user(user).filter(org_id=org.pk, scope=BudgetScope.ORG).order_by("id")


def team_budget_list(user, team: Team) -> QuerySet[Budget]:
    """The budgets on the team itself, on its features and on its keys."""
    return (
        budget_list_for_user(user)
        .filter(
            Q(scope=BudgetScope.TEAM, team_id=team.pk)
            | Q(scope=BudgetScope.FEATURE, feature__team_id=team.pk)
            | Q(scope=BudgetScope.KEY, key__team_id=team.pk)
        )
        .select_related("team__org", "feature__team__org", "key__team")
        .order_by("scope", "id")
    )


def statement_budget_list(user, team: Team) -> QuerySet[Budget]:
    """The budgets a team's statement shows: on the team, its features and its keys."""
    return (
        budget_list_for_user(user)
        .filter(
            Q(scope=BudgetScope.TEAM, team=team)
            | Q(scope=BudgetScope.FEATURE, feature__team=team)
            | Q(scope=BudgetScope.KEY, key__team=team)
        )
        .order_by("scope", "period", "id")
    )


def org_alert_list(user, org: Organization) -> QuerySet[BudgetAlert]:
    return budget_alert_list_for_user(user).filter(org_id=org.pk)


def team_alert_list(user, team: Team) -> QuerySet[BudgetAlert]:
    return budget_alert_list_for_user(user).filter(team_id=team.pk)


def org_team_labels(user, org: Organization) -> dict[int, Team]:
    return {t.pk: t for t in team_list_for_user(user).filter(org_id=org.pk)}


def key_labels(user, ids) -> dict[int, str]:
    return dict(key_list_for_user(user).filter(id__in=list(ids)).values_list("id", "name"))
