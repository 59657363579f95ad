"""The Redis admission counters survive a lost reply: each step is tried twice and an admission
or settlement that already ran is not applied again (a fail-closed budget would otherwise
refuse at a blip, or a retry would hold or charge twice)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.counters import Entry, RedisCounters

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
NANO_MILLION_USD = 10**15  # nano-USD: past 14 significant digits, kept exactly


class ReplyLost:
    """Runs the script, then fails the first call as if the reply never came back."""

    def __init__(self, script) -> None:
        self.script, self.calls = script, 0

    async def __call__(self, **kwargs):
        self.calls += 1
        out = await self.script(**kwargs)
        if self.calls == 1:
            raise RedisConnectionError("reply lost")
        return out


def _budget(**kw) -> Entry:
    key = f"test:budget:{uuid.uuid4().hex}"
    return Entry("budget", key, limit=2 * NANO_MILLION_USD, expire_at=2**31, seed=0, **kw)


def test_an_admission_whose_reply_is_lost_is_retried_and_reserves_once():
    async def scenario():
        counters = RedisCounters(settings.REDIS_URL)
        try:
            budget = _budget(amount=NANO_MILLION_USD + 7)
            counters._admit = ReplyLost(counters._admit)
            verdict = await counters.admit([budget], lease="lost-reply", lease_ttl=60)
            assert verdict.ok and counters._admit.calls == 2
            held = await counters.client.hget(budget.key, "reserved")
            assert int(held) == NANO_MILLION_USD + 7
            # a third try of the same lease is still the same admission
            again = await counters.admit([budget], lease="lost-reply", lease_ttl=60)
            assert again.seen == verdict.seen
            assert int(await counters.client.hget(budget.key, "reserved")) == NANO_MILLION_USD + 7
            # the budget is full for any other call
            other = await counters.admit([budget], lease="other", lease_ttl=60)
            assert not other.ok
        finally:
            await counters.close()

    asyncio.run(scenario())


def test_a_settlement_whose_reply_is_lost_charges_once():
    async def scenario():
        counters = RedisCounters(settings.REDIS_URL)
        try:
            budget = _budget(amount=1_000)
            assert (await counters.admit([budget], lease="settle-twice", lease_ttl=60)).ok
            counters._settle = ReplyLost(counters._settle)
            await counters.settle([budget], [600], lease="settle-twice")
            assert counters._settle.calls == 2
            await counters.settle([budget], [600], lease="settle-twice")
            assert await counters.spent(budget.key) == 600
            assert int(await counters.client.hget(budget.key, "reserved")) == 0
        finally:
            await counters.close()

    asyncio.run(scenario())


def test_redis_down_fails_after_the_second_try():
    async def scenario():
        counters = RedisCounters("redis://127.0.0.1:1/0", timeout=0.2)
        try:
            with pytest.raises(RedisConnectionError):
                await counters.admit([_budget(amount=1)], lease="down", lease_ttl=60)
        finally:
            await counters.close()

    asyncio.run(scenario())


def _draft() -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "started_at": "2026-12-01T10:00:00+00:00",
        "org_id": 1,
        "team_id": 2,
        "key_id": 3,
        "feature": "f",
        "endpoint": "",
        "end_user": "",
        "api": "chat.completions",
        "requested_model": "m",
        "model": "m",
        "upstream_model": "m-up",
        "provider": "p",
        "streamed": True,
        "cost": "0.001234567891",
        "prompt": 42,
    }


def test_a_dead_process_calls_are_claimed_once_released_and_charged_at_their_bound(settings):
    from gateway.leases import LeaseKeeper

    settings.FINOPS_GATEWAY_CLUSTER = f"unit-{uuid.uuid4().hex[:8]}"
    settings.FINOPS_GATEWAY_DEAD_SECONDS = 0.2

    async def scenario():
        dead, alive = RedisCounters(settings.REDIS_URL), RedisCounters(settings.REDIS_URL)
        try:
            budget = _budget(amount=1_234_567_891)
            dead_keeper, alive_keeper = LeaseKeeper(dead), LeaseKeeper(alive)
            await dead_keeper.renew()
            lost, done = _draft(), _draft()
            assert (await dead.admit([budget], lease="lost-1", lease_ttl=60, draft=lost)).ok
            assert (await dead.admit([budget], lease="done-1", lease_ttl=60, draft=done)).ok
            await dead.settle([budget], [1_000], lease="done-1")  # finished: not in flight
            assert await alive_keeper.claim_dead() == []  # the dead one beat just now
            await asyncio.sleep(0.3)
            await alive_keeper.renew()
            events = await alive_keeper.claim_dead()
            assert [e["request_id"] for e in events] == [lost["request_id"]]
            event = events[0]
            assert event["status"] == "lost" and event["estimated"] and event["streamed"]
            assert str(event["cost"]) == "0.001234567891" and event["prompt_tokens"] == 42
            assert await alive_keeper.claim_dead() == []  # claimed once
            counter = await alive.client.hgetall(budget.key)
            assert int(counter[b"reserved"]) == 0 and b"l:lost-1" not in counter
            assert int(counter[b"spent"]) == 1_000 + 1_234_567_891
        finally:
            await dead.close()
            await alive.close()

    asyncio.run(scenario())


def test_renewal_pushes_a_live_calls_lease_out(settings):
    from gateway.leases import LeaseKeeper

    settings.FINOPS_GATEWAY_CLUSTER = f"unit-{uuid.uuid4().hex[:8]}"
    settings.FINOPS_LEASE_SECONDS = 600

    async def scenario():
        counters = RedisCounters(settings.REDIS_URL)
        try:
            budget = _budget(amount=10)
            assert (await counters.admit([budget], lease="long", lease_ttl=1, draft=_draft())).ok
            assert await LeaseKeeper(counters).renew() == 1
            expiry = await counters.client.zscore(budget.key + ":leases", "long")
            assert expiry > time.time() + 500
        finally:
            await counters.close()

    asyncio.run(scenario())
