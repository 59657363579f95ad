"""Reporting's reads: every tenant-scoped queryset builder of ``reports``.

- ``spend``: the rollup rows and alerts a user may read, spend by dimension (the spend API), the
  rows a budget's scope covers, and the unscoped ``dangerously_*`` readers of the jobs.
- ``invoices``: the providers, imports and policies of invoice reconciliation (admins and
  finance only).
- ``savings``: the savings statement as rows split by lever (the savings API), scoped as spend.
- ``dashboards``: on top of those, which organisations and teams a user may open, and the rows,
  budgets, alerts and labels of one of them (dashboards, team statement).

Import from here (``from reports.selectors import X``); the modules import each other directly.
"""

from reports.selectors.dashboards import (
    budget_dimension_rows,
    dashboard_team_list,
    key_labels,
    org_alert_list,
    org_budget_list,
    org_daily_rows,
    org_dimension_rows,
    org_team_labels,
    overview_org_list,
    statement_budget_list,
    team_alert_list,
    team_budget_list,
    team_daily_rows,
    team_dimension_rows,
)
from reports.selectors.invoices import (
    reconciliation_policy_list_for_user,
    reconciliation_provider_list_for_user,
    report_pull_list_for_user,
)
from reports.selectors.savings import SAVINGS_DIMENSIONS, SavingsQuery, savings_by_dimension
from reports.selectors.spend import (
    DIMENSIONS,
    SpendQuery,
    budget_alert_list_for_user,
    budget_rows,
    daily_dimension_spend_list_for_user,
    daily_spend_list_for_user,
    dangerously_all_budget_alerts,
    dangerously_org_hourly_spend,
    hourly_spend_list_for_user,
    latency_quantile,
    spend_by_dimension,
)

__all__ = [
    "DIMENSIONS",
    "SAVINGS_DIMENSIONS",
    "SavingsQuery",
    "SpendQuery",
    "budget_alert_list_for_user",
    "budget_dimension_rows",
    "budget_rows",
    "daily_dimension_spend_list_for_user",
    "daily_spend_list_for_user",
    "dangerously_all_budget_alerts",
    "dangerously_org_hourly_spend",
    "dashboard_team_list",
    "hourly_spend_list_for_user",
    "key_labels",
    "latency_quantile",
    "org_alert_list",
    "org_budget_list",
    "org_daily_rows",
    "org_dimension_rows",
    "org_team_labels",
    "overview_org_list",
    "savings_by_dimension",
    "spend_by_dimension",
    "statement_budget_list",
    "team_alert_list",
    "team_budget_list",
    "team_daily_rows",
    "team_dimension_rows",
    "reconciliation_policy_list_for_user",
    "reconciliation_provider_list_for_user",
    "report_pull_list_for_user",
]
