"""Reconciliation: budget counters re-derived from the ledger, the source of truth.

A counter can drift from the ledger when a process dies between settling and writing, when
Redis loses data, or when calls went through while the counters were unreachable. The ledger
lags by its flush interval, so a difference is corrected only when it is the same in two looks
taken longer than that apart (a real drift, not calls in flight); the correction is an atomic
increment, so settlements racing with it are kept. Every correction is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db import close_old_connections

from gateway.admission import budget_key, ledger_spent, to_nano, window_of
from gateway.cache import org_config_load

log = logging.getLogger("gateway.reconcile")


def _current_windows() -> list[tuple]:
    from teams.models import Organization

    close_old_connections()
    now = datetime.now(UTC)
    out = []
    for org in Organization.objects.all():
        config = org_config_load(org.pk)
        for budget in config.budgets:
            label, start, end = window_of(budget.period, now, org.tz)
            out.append((budget, label, budget_key(budget, label), start, end))
    return out


def _record(budget_id: int, window: str, counter: int, ledger: int) -> None:
    from gateway.models import CounterDrift

    CounterDrift.objects.create(
        budget_id=budget_id, window=window, counter_nano=counter, ledger_nano=ledger
    )


async def counters_reconcile(counters, *, run_sync=None, pause: float | None = None) -> int:
    """Correct every current budget window whose counter disagrees with the ledger.
    Returns how many were corrected. ``run_sync`` runs blocking ORM work off the loop."""
    loop = asyncio.get_running_loop()
    run = run_sync or (lambda fn, *a: loop.run_in_executor(None, fn, *a))
    pause = pause if pause is not None else max(2.0, 4 * settings.FINOPS_LEDGER_FLUSH_SECONDS)

    async def look(windows):
        out = {}
        for budget, _label, key, start, end in windows:
            spent = await counters.spent(key)
            if spent is not None:
                out[key] = spent - to_nano(await run(ledger_spent, budget, start, end))
        return out

    windows = await run(_current_windows)
    first = await look(windows)
    await asyncio.sleep(pause)
    second = await look(windows)
    corrected = 0
    for budget, label, key, _start, _end in windows:
        drift = second.get(key)
        if drift and drift == first.get(key):
            counter = await counters.spent(key)
            await counters.adjust(key, -drift)
            await run(_record, budget.id, label, counter, counter - drift)
            log.warning(
                "budget %s %s: counter drifted %+d nUSD from the ledger; corrected",
                budget.id,
                label,
                drift,
            )
            corrected += 1
    return corrected
