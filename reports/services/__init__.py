"""Reporting services (writes): rollups, reconciliation, alerts and their delivery."""

from reports.services.alerts import budget_alerts_evaluate, budget_spent
from reports.services.rollup import RollupResult, spend_reconcile, usage_rollup

__all__ = [
    "RollupResult",
    "budget_alerts_evaluate",
    "budget_spent",
    "spend_reconcile",
    "usage_rollup",
]
