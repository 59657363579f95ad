"""Periodic reporting tasks (scheduled in ``finops/celery.py``). Thin: each calls a service.

Both are idempotent: the rollup recomputes whole buckets under the watermark's row lock (a
second worker skips), and alerts are recorded once by key and sent once by a conditional claim.
"""

from __future__ import annotations

from celery import shared_task

from reports.invoices.pull import invoices_pull_due
from reports.services import budget_alerts_evaluate, usage_rollup


@shared_task(name="reports.tasks.rollup_task", ignore_result=True, soft_time_limit=240)
def rollup_task() -> str:
    return str(usage_rollup(periodic=True))


@shared_task(name="reports.tasks.budget_check_task", ignore_result=True, soft_time_limit=240)
def budget_check_task() -> str:
    return str(budget_alerts_evaluate())


@shared_task(name="reports.tasks.invoices_pull_task", ignore_result=True, soft_time_limit=240)
def invoices_pull_task() -> str:
    return f"{invoices_pull_due()} provider report(s) pulled"
