"""Celery tasks of the evaluation app (thin: each calls a service)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="evaluation.tasks.pairs_purge_task", ignore_result=True, soft_time_limit=300)
def pairs_purge_task() -> int:
    from evaluation.services.pairs import pairs_purge

    return pairs_purge()


@shared_task(name="evaluation.tasks.judge_pairs_task", ignore_result=True, soft_time_limit=240)
def judge_pairs_task(limit: int = 50) -> int:
    """Label a bounded batch of unjudged pairs with the routers' judge models."""
    from evaluation.services.judge import pairs_judge

    return pairs_judge(limit=limit)
