"""Each gateway process looks at the open batches every ``FINOPS_BATCH_POLL_SECONDS``: the
ones no process has looked at for that long become this one's to ask the provider about (a
conditional ``UPDATE`` of ``checked_at``, so N processes do not ask N times), and an ended one
is metered (``service.batch_meter``, claimed the same way). Completion is so metered within the
interval plus a call, in every mode (the embedded one included), whether or not a client asks.

Registered with the runtime when this module is imported (``gateway.batches.routes``, which
``gateway.asgi`` imports): the runtime starts it with its other loops and cancels it at stop.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.batches import knob, store
from gateway.batches.service import batch_fail_stale, batch_refresh, batches_rehold, run_db
from gateway.runtime import runtime

log = logging.getLogger(__name__)
PER_ROUND = 100


async def batches_poll() -> int:
    """One round; how many batches it looked at."""
    taken, stale = await run_db(store.batches_due, knob("FINOPS_BATCH_POLL_SECONDS"), PER_ROUND)
    for batch in stale:
        log.warning("batch %s was never sent upstream: failing it", batch.batch_id)
        await batch_fail_stale(batch)
    for batch in taken:
        try:
            await batch_refresh(batch)
        except Exception:  # noqa: BLE001 - one batch must not stop the others
            log.exception("batch %s could not be refreshed", batch.batch_id)
    return len(taken)


async def batches_poll_loop() -> None:
    try:
        held = await batches_rehold()
        if held:
            log.info("held the reservations of %d open batches again", held)
    except Exception:  # noqa: BLE001 - a database outage at start: serve anyway
        log.exception("could not hold the open batches' reservations again")
    while True:
        await asyncio.sleep(knob("FINOPS_BATCH_POLL_SECONDS"))
        try:
            await batches_poll()
        except Exception:  # noqa: BLE001 - the database is down: try again next round
            log.exception("batch poll failed")


runtime.loop_register("gateway-batch-poller", batches_poll_loop)
