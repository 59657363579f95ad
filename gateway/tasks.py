"""Celery tasks of the gateway (thin: each calls a service)."""

from __future__ import annotations

import asyncio

from celery import shared_task
from django.conf import settings


@shared_task(name="gateway.tasks.counters_reconcile_task", ignore_result=True, soft_time_limit=120)
def counters_reconcile_task() -> int:
    """With Redis the counters are shared, so any worker can reconcile them; in the embedded
    mode they live inside the gateway process, which reconciles them itself."""
    if not settings.REDIS_URL:
        return 0
    from gateway.counters import RedisCounters
    from gateway.reconcile import counters_reconcile

    async def run() -> int:
        counters = RedisCounters(settings.REDIS_URL)
        try:
            return await counters_reconcile(counters)
        finally:
            await counters.close()

    return asyncio.run(run())


@shared_task(name="gateway.tasks.responses_purge_task", ignore_result=True, soft_time_limit=120)
def responses_purge_task() -> int:
    """Stored Responses API answers past FINOPS_RESPONSES_RETENTION_DAYS go."""
    from gateway.response_store import responses_purge

    return responses_purge()
