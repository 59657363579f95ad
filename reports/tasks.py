"""Periodic reporting tasks. Thin: each calls a service and returns.

The rollup and budget-evaluation services arrive with the reporting issue; until then the tasks
run and report that there is nothing to do, so the schedule is exercised end to end.
"""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="reports.tasks.rollup_task", ignore_result=True)
def rollup_task() -> str:
    try:
        from reports.services import usage_rollup
    except ImportError:
        log.debug("rollup: not available yet")
        return "skipped"
    return str(usage_rollup(periodic=True))


@shared_task(name="reports.tasks.budget_check_task", ignore_result=True)
def budget_check_task() -> str:
    try:
        from reports.services import budget_alerts_evaluate
    except ImportError:
        log.debug("budget check: not available yet")
        return "skipped"
    return str(budget_alerts_evaluate())
