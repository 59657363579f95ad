"""Reporting services (writes): rollups and their reconciliation with the ledger, alert evaluation
and recording, and delivery (email, webhooks). Reads are in ``reports.selectors``, figures shared
with the pages in ``reports.forecast``, pages in ``reports.pages``, exports in ``reports.exports``.
"""

from reports.services.alerts import budget_alerts_evaluate
from reports.services.rollup import RollupResult, spend_reconcile, usage_rollup

__all__ = [
    "RollupResult",
    "budget_alerts_evaluate",
    "spend_reconcile",
    "usage_rollup",
]
