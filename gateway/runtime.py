"""The gateway's per-process runtime: shared upstream client, caches, ledger writer, pollers.

Started and stopped by the ASGI ``lifespan`` (see ``finops.asgi``). Nothing here holds state that
another process needs: keys and config are caches of the database, spend lives in the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from django.conf import settings

from gateway import metrics
from gateway.admission import Admitter, ledger_spent
from gateway.balancer import balancer
from gateway.cache import KeyCache, key_record_load, org_config_load
from gateway.counters import LocalCounters, RedisCounters
from gateway.egress import EgressConnector
from gateway.leases import LeaseKeeper, completed_requests
from gateway.ledger import LedgerWriter
from gateway.records import KeyRecord, OrgConfig
from gateway.tokens import encodings_load

log = logging.getLogger(__name__)
SHADOW_DRAIN_SECONDS = 10.0


class Runtime:
    def __init__(self) -> None:
        self.keys = KeyCache()
        self.configs: dict[int, OrgConfig] = {}
        self.ledger = LedgerWriter()
        self.session: aiohttp.ClientSession | None = None
        self.db = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-db")
        self._stamps: dict[str, int] | None = None
        self._poller: asyncio.Task | None = None
        self._reconciler: asyncio.Task | None = None
        self._leases: asyncio.Task | None = None
        self.keeper: LeaseKeeper | None = None
        self._loading: dict[int, asyncio.Future] = {}
        self.started = False
        self.stopping = False
        self.admitter: Admitter | None = None
        self._lock_file = None
        self.shadows: set[asyncio.Task] = set()  # shadow calls in flight (gateway.shadow)
        # loops of packages the runtime must not import (they import it): name -> factory of
        # the coroutine, registered at their import (gateway.batches.poller)
        self._loops: dict[str, Callable[[], Coroutine]] = {}
        self._loop_tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        if self.started:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.db, encodings_load)
        # every upstream connection passes the egress rule, at the address it connects to
        connector = EgressConnector(
            limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=settings.FINOPS_UPSTREAM_CONNECT_TIMEOUT,
                sock_read=settings.FINOPS_UPSTREAM_TIMEOUT,
            ),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            # a stream line may be a whole answer (a native Responses ``response.completed``):
            # lines up to 2 x 4 MiB, not aiohttp's default 128 KiB
            read_bufsize=4 * 1024 * 1024,
        )
        self._claim_single_process()
        metrics.stale_cleanup(settings.FINOPS_METRICS_DIR)
        self.admitter = Admitter(self._counters(), self._seed)
        self.ledger.start()
        self._stamps = await self._read_stamps()
        self._poller = asyncio.create_task(self._poll_stamps(), name="gateway-stamp-poller")
        await balancer.start(settings.REDIS_URL)
        if not settings.REDIS_URL:
            # in-process counters: only this process can reconcile them
            self._reconciler = asyncio.create_task(self._reconcile_loop(), name="gateway-reconcile")
        else:
            self.keeper = LeaseKeeper(self.admitter.counters)
            await self._leases_tend()  # beat before serving; claim what dead peers left
            self._leases = asyncio.create_task(self._leases_loop(), name="gateway-leases")
        self._loop_tasks = [
            asyncio.create_task(factory(), name=name) for name, factory in self._loops.items()
        ]
        self.started = True
        # Everything loaded so far (Django, models, encodings) lives for the whole process: keep
        # it out of the collector's generations so a full collection does not stall the loop.
        gc.collect()
        gc.freeze()
        log.info("gateway runtime started")

    async def stop(self) -> None:
        if not self.started:
            return
        self.stopping = True
        for task in (self._poller, self._reconciler, self._leases, *self._loop_tasks):
            if task is not None:
                task.cancel()
        await self._shadows_drain()
        if self.keeper is not None:
            with contextlib.suppress(Exception):
                await self.keeper.retire()
        await balancer.stop()
        if self.session:
            await self.session.close()
        if self.admitter is not None:
            await self.admitter.counters.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.ledger.stop)
        self.db.shutdown(wait=False)
        self.started = False
        log.info("gateway runtime stopped; ledger drained")

    async def _shadows_drain(self) -> None:
        """Give shadow calls in flight a bounded time to finish, so their rows are metered."""
        if not self.shadows:
            return
        _, pending = await asyncio.wait(set(self.shadows), timeout=SHADOW_DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("%d shadow calls cancelled at shutdown", len(pending))

    def loop_register(self, name: str, factory: Callable[[], Coroutine]) -> None:
        """Run ``factory()`` as a background task of every started runtime, cancelled at stop
        (each loop catches its own errors)."""
        self._loops[name] = factory

    def _counters(self):
        if settings.REDIS_URL:
            return RedisCounters(settings.REDIS_URL)
        return LocalCounters()

    def _claim_single_process(self) -> None:
        """Without Redis, budgets and limits are counted in process: a second gateway process
        on the same data would double every limit, so it is refused."""
        if settings.REDIS_URL:
            return
        import fcntl

        path = settings.VAR_DIR / "gateway.lock"
        self._lock_file = open(path, "w")  # noqa: SIM115 - held for the process's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(
                f"another gateway process holds {path}: without REDIS_URL only one process "
                "(uvicorn --workers 1) may serve the gateway, or budgets and limits would not "
                "hold; set REDIS_URL to run several"
            ) from None

    async def _leases_tend(self) -> None:
        """Heartbeat and renew this process's leases; meter the calls dead peers left."""
        try:
            await self.keeper.renew()
            lost = await self.keeper.claim_dead()
        except Exception as exc:  # noqa: BLE001 - Redis down: the next beat tries again
            log.warning("could not renew leases (%s)", type(exc).__name__)
            return
        if not lost:
            return
        loop = asyncio.get_running_loop()
        ids = [event["request_id"] for event in lost]
        try:
            done = await loop.run_in_executor(self.db, completed_requests, ids)
        except Exception as exc:  # noqa: BLE001 - database down: meter them all (an overstatement)
            log.warning("could not check lost calls against the ledger (%s)", type(exc).__name__)
            done = set()
        for event in lost:
            if event["request_id"] not in done:
                metrics.LOST_CALLS.inc()
                self.ledger.submit(event)

    async def _leases_loop(self) -> None:
        while True:
            await asyncio.sleep(settings.FINOPS_LEASE_RENEW_SECONDS)
            await self._leases_tend()

    async def _reconcile_loop(self) -> None:
        from gateway.reconcile import counters_reconcile

        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(settings.FINOPS_RECONCILE_INTERVAL_SECONDS)
            try:
                await counters_reconcile(
                    self.admitter.counters,
                    run_sync=lambda fn, *a: loop.run_in_executor(self.db, _fresh, fn, *a),
                )
            except Exception:  # noqa: BLE001 - try again next interval
                log.exception("counter reconciliation failed")

    async def _seed(self, budget, start, end):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.db, ledger_spent, budget, start, end)

    # --- keys and config, filled off the event loop ----------------------------------------
    async def key_lookup(self, secret: str) -> KeyRecord | None:
        digest, record, known_bad = self.keys.get(secret)
        if record is not None or known_bad:
            return record
        loop = asyncio.get_running_loop()
        record = await loop.run_in_executor(self.db, key_record_load, secret)
        self.keys.put(digest, record)
        return record

    async def org_config(self, org_id: int) -> OrgConfig:
        config = self.configs.get(org_id)
        if config is not None:
            return config
        pending = self._loading.get(org_id)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = asyncio.ensure_future(loop.run_in_executor(self.db, org_config_load, org_id))
            self._loading[org_id] = pending
            try:
                config = await pending
            finally:
                self._loading.pop(org_id, None)
            self.configs[org_id] = config
            return config
        return await pending

    # --- invalidation ----------------------------------------------------------------------
    async def _read_stamps(self) -> dict[str, int] | None:
        from gateway.services.stamps import stamps_read

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.db, _stamps_read_fresh, stamps_read)
        except Exception as exc:  # noqa: BLE001 - keep serving from cache; retry next tick
            log.warning("could not read config stamps (%s)", type(exc).__name__)
            return None

    async def _poll_stamps(self) -> None:
        interval = settings.FINOPS_KEY_CACHE_POLL_SECONDS
        while True:
            await asyncio.sleep(interval)
            stamps = await self._read_stamps()
            if stamps is None or stamps == self._stamps:
                continue
            old = self._stamps or {}
            if stamps.get("keys") != old.get("keys"):
                self.keys.clear()
            if stamps.get("config") != old.get("config"):
                self.configs.clear()
            self._stamps = stamps


def _fresh(fn, *args):
    from django.db import close_old_connections

    close_old_connections()
    return fn(*args)


def _stamps_read_fresh(reader):
    from django.db import close_old_connections

    close_old_connections()
    return reader()


runtime = Runtime()
