"""A gateway killed with calls in flight: a fresh process on a fresh disk meters every one of them
as ``lost`` (cost = its reserved upper bound, estimated) and releases their reservations, with no
Celery worker and without the dead process or its disk coming back (``gateway.leases``)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

import httpx
import pytest
from django.conf import settings

from gateway.admission import budget_key, to_nano, window_of
from gateway.cache import org_config_load
from gateway.models import UsageEvent
from teams.models import Budget
from teams.services import key_mint
from tests import factories as f
from tests.live import live_database_url, start_app

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not settings.REDIS_URL, reason="calls in flight are tracked in Redis"),
]
STREAMS = 12
# seconds: the production defaults are 60 / 15 / 45 (a lost call is metered within 2 minutes)
FAST_LEASES = {
    "FINOPS_LEASE_SECONDS": "3",
    "FINOPS_LEASE_RENEW_SECONDS": "0.3",
    "FINOPS_GATEWAY_DEAD_SECONDS": "1.5",
}


def _stream(url: str, key: str, started: threading.Barrier) -> None:
    body = {
        "model": "drip-model",
        "messages": [{"role": "user", "content": "a long answer, please"}],
        "stream": True,
    }
    try:
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        ) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            next(lines)
            started.wait(10)
            for _ in lines:
                pass
    except (httpx.HTTPError, threading.BrokenBarrierError):
        pass  # the gateway died under it


def _redis_budget(live, budget):
    import redis

    record = next(b for b in org_config_load(live.org.pk).budgets if b.id == budget.pk)
    label, _, _ = window_of(record.period, datetime.now(UTC), live.org.tz)
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return client.hgetall(budget_key(record, label))
    finally:
        client.close()


def test_a_killed_gateways_calls_in_flight_are_metered_as_lost_by_a_fresh_process(live, live_tmp):
    with live.blocker.unblock():
        team = f.make_team(live.org)
        key = key_mint(team=team, name="doomed")
        budget = Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="month",
            limit_usd=Decimal("1000"),
            action="block",
        )
        database_url = live_database_url()
    cluster = {"FINOPS_GATEWAY_CLUSTER": f"test-{uuid.uuid4().hex[:8]}", **FAST_LEASES}
    doomed = start_app(live_tmp, database_url=database_url, **cluster)
    started = threading.Barrier(STREAMS + 1)
    threads = [
        threading.Thread(target=_stream, args=(doomed.url, key.secret, started), daemon=True)
        for _ in range(STREAMS)
    ]
    for thread in threads:
        thread.start()
    started.wait(20)  # every stream has its first chunk: all twelve are in flight upstream
    with live.blocker.unblock():
        held = {
            name.decode()[2:]: int(value)
            for name, value in _redis_budget(live, budget).items()
            if name.startswith(b"l:")
        }
    assert len(held) == STREAMS
    doomed.stop(signal.SIGKILL)
    for thread in threads:
        thread.join(10)

    fresh = start_app(live_tmp, database_url=database_url, **cluster)  # its own, empty var dir
    try:
        deadline = time.monotonic() + 60
        while True:
            with live.blocker.unblock():
                lost = list(UsageEvent.objects.filter(key_id=key.key.pk, status="lost"))
            if len(lost) >= STREAMS or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(lost) == STREAMS, fresh.log()[-3000:]
        assert all(row.estimated and row.error_code == "gateway_lost" for row in lost)
        assert all(
            row.streamed and row.model == "drip-model" and row.team_id == team.pk for row in lost
        )
        # each lost call costs exactly the upper bound it had reserved
        assert sorted(to_nano(row.cost, ROUND_CEILING) for row in lost) == sorted(held.values())
        with live.blocker.unblock():
            counter = _redis_budget(live, budget)
        assert int(counter[b"reserved"]) == 0
        assert not [name for name in counter if name.startswith(b"l:")]
        assert int(counter[b"spent"]) == sum(held.values())
        with live.blocker.unblock():
            rows = UsageEvent.objects.filter(key_id=key.key.pk)
            assert rows.count() == STREAMS  # nothing else was metered for them, and only once
        # the budget serves the next call at once
        after = httpx.post(
            f"{fresh.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {key.secret}"},
            timeout=10,
        )
        assert after.status_code == 200, after.text
    finally:
        fresh.stop()


def test_a_clean_stop_leaves_nothing_to_claim(live, live_tmp):
    with live.blocker.unblock():
        database_url = live_database_url()
    cluster = f"test-{uuid.uuid4().hex[:8]}"
    app = start_app(
        live_tmp, database_url=database_url, FINOPS_GATEWAY_CLUSTER=cluster, **FAST_LEASES
    )
    response = httpx.post(
        f"{app.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {live.key_secret}"},
        timeout=10,
    )
    assert response.status_code == 200
    app.stop()  # SIGTERM: graceful

    async def members():
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            return await client.zrange(f"finops:gateways:{cluster}", 0, -1)
        finally:
            await client.aclose()

    assert asyncio.run(members()) == []
