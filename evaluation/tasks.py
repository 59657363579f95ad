"""Celery tasks of the evaluation app (thin: each calls a service)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="evaluation.tasks.pairs_purge_task", ignore_result=True, soft_time_limit=300)
def pairs_purge_task() -> int:
    from evaluation.services.pairs import pairs_purge

    return pairs_purge()
