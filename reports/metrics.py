"""Budget utilisation on ``/metrics``: spend in each budget's current window over its limit,
from the rollups (the same figure the alerts use), registered with the gateway's scrape sources
at app start."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from reports.forecast import budget_spent
from teams.models import Budget

MAX_BUDGETS = 1000


def budget_utilisation_gauge():
    budgets = GaugeMetricFamily(
        "finops_budget_utilisation_ratio",
        "Spend in the budget's current window / its limit, from the rollups.",
        labels=["org", "budget", "scope", "period", "action"],
    )
    for budget in Budget.objects.select_related("org", "team", "feature", "key")[:MAX_BUDGETS]:
        if not budget.limit_usd:
            continue
        spent = budget_spent(budget).spent
        labels = [budget.org.slug, str(budget.pk), budget.scope, budget.period, budget.action]
        budgets.add_metric(labels, float(spent / budget.limit_usd))
    yield budgets
