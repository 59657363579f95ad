"""Redis unreachable under load: the gateway keeps serving by each budget's policy (a
fail-closed budget refuses with ``budget_unavailable``, a fail-open one serves), comes back by
itself when Redis returns, and reconciliation brings the counters back to the ledger.

Redis is reached through a loopback forwarder the test cuts and restores (``tests.tcp_proxy``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings

from gateway.models import CounterDrift
from teams.models import Budget
from teams.services import key_mint
from tests import factories as f
from tests.live import live_database_url, start_app
from tests.tcp_proxy import TcpProxy

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL"),
]
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "outage?"}],
    "max_tokens": 8,
}


class Load:
    """Calls from a few threads until stopped; every outcome is kept with its phase.

    A call that straddles a phase change (sent before the cut, admitted after it) belongs to
    neither phase: it is kept as ``"between"`` and asserted only to have ended cleanly.
    """

    def __init__(self, url: str, keys: dict[str, str]) -> None:
        self.url, self.keys = url, keys
        self.phase = "before"
        self.results: list[tuple[str, str, int, str, str]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(name,), daemon=True)
            for name in keys
            for _ in range(2)
        ]

    def _run(self, name: str) -> None:
        with httpx.Client(timeout=15) as client:
            while not self._stop.is_set():
                started = self.phase
                try:
                    r = client.post(
                        f"{self.url}/v1/chat/completions",
                        json=BODY,
                        headers={"authorization": f"Bearer {self.keys[name]}"},
                    )
                    code = r.json().get("error", {}).get("code", "") if r.status_code != 200 else ""
                    rid = r.headers.get("x-request-id", "")
                    phase = started if self.phase == started else "between"
                    self.results.append((phase, name, r.status_code, code, rid))
                except httpx.HTTPError as exc:  # a hang or a dropped connection is a failure
                    self.results.append((started, name, -1, type(exc).__name__, ""))
                time.sleep(0.02)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def outcomes(self, phase: str, name: str) -> Counter:
        return Counter((s, c) for p, n, s, c, _ in self.results if p == phase and n == name)


def test_redis_outage_under_load_follows_each_budgets_policy_and_recovers(live, live_tmp):
    redis_url = urlsplit(settings.REDIS_URL)
    proxy = TcpProxy(redis_url.hostname or "127.0.0.1", redis_url.port or 6379).start()
    proxied = settings.REDIS_URL.replace(redis_url.netloc, f"127.0.0.1:{proxy.port}")
    with live.blocker.unblock():
        teams = {name: f.make_team(live.org) for name in ("closed", "open")}
        keys = {name: key_mint(team=t, name=f"outage-{name}").secret for name, t in teams.items()}
        budgets = {
            name: Budget.objects.create(
                org=live.org,
                scope="team",
                team=t,
                period="month",
                limit_usd=Decimal("100"),
                action="block",
                fail_open=name == "open",
            )
            for name, t in teams.items()
        }
        database_url = live_database_url()
    app = start_app(live_tmp, database_url=database_url, REDIS_URL=proxied)
    try:
        with Load(app.url, keys) as load:
            time.sleep(1.5)
            load.phase = "outage"
            proxy.cut()
            time.sleep(3.0)
            load.phase = "after"
            proxy.restore()
            deadline = time.monotonic() + 20
            while load.outcomes("after", "closed")[(200, "")] < 5:
                assert time.monotonic() < deadline, "never recovered after Redis came back"
                time.sleep(0.1)
        for name in keys:
            assert set(load.outcomes("before", name)) == {(200, "")}, load.outcomes("before", name)
        # Outage: the fail-open budget kept serving, the fail-closed one refused cleanly.
        assert set(load.outcomes("outage", "open")) == {(200, "")}, load.outcomes("outage", "open")
        closed = load.outcomes("outage", "closed")
        assert closed[(503, "budget_unavailable")] > 0, closed
        assert set(closed) <= {(200, ""), (503, "budget_unavailable")}, closed
        assert all(s != -1 and s < 500 or s == 503 for _, _, s, _, _ in load.results)
    finally:
        app.stop()
        proxy.cut()

    # Reconciliation (what the Celery beat task runs) makes the counters agree with the ledger.
    from gateway.admission import budget_key, ledger_spent, to_nano, window_of
    from gateway.cache import org_config_load
    from gateway.counters import RedisCounters
    from gateway.reconcile import counters_reconcile

    async def reconcile_and_read():
        counters = RedisCounters(settings.REDIS_URL)
        try:
            run = _unblocked(live)
            config = await run(org_config_load, live.org.pk)
            await counters_reconcile(counters, run_sync=run, pause=0.5)
            out = {}
            for name, budget in budgets.items():
                record = next(b for b in config.budgets if b.id == budget.pk)
                label, start, end = window_of(record.period, _now(), live.org.tz)
                ledger = await run(ledger_spent, record, start, end)
                out[name] = (await counters.spent(budget_key(record, label)), to_nano(ledger))
            return out
        finally:
            await counters.close()

    time.sleep(settings.FINOPS_LEDGER_FLUSH_SECONDS + 0.5)
    after = asyncio.run(reconcile_and_read())
    for name, (counter, ledger) in after.items():
        assert ledger > 0
        assert counter == ledger, (name, counter, ledger)
    with live.blocker.unblock():
        # calls served while the counters were unreachable were missing from the open budget's
        assert CounterDrift.objects.filter(budget_id=budgets["open"].pk).exists()


def _unblocked(live):
    async def run(fn, *args):
        def call():
            from django.db import connection

            try:
                with live.blocker.unblock():
                    return fn(*args)
            finally:
                connection.close()  # this thread's connection would block the test DB's drop

        return await asyncio.to_thread(call)

    return run


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
