"""Routing policy without a network: strategies, cooldowns (closed / open / half-open), backoff
arithmetic, Retry-After parsing, context-window skipping; and the shared state on a real Redis
when ``REDIS_URL`` is set."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings

from gateway import proxy
from gateway.balancer import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Balancer,
    Health,
    backoff_delay,
    retry_after_seconds,
)
from gateway.balancer import (
    balancer as shared_balancer,
)
from gateway.errors import GatewayError
from gateway.pricing import Price
from gateway.providers.base import CHAT
from gateway.records import GroupRecord, ModelRecord, ProviderRecord
from gateway.resolve import Plan

PROVIDER = ProviderRecord(slug="p", kind="openai", base_url="http://x", api_key="", api_version="")


def model(name: str, *, inp="1", out="2", window: int | None = None) -> ModelRecord:
    price = Price.per_mtok(
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        input_usd_per_mtok=Decimal(inp),
        output_usd_per_mtok=Decimal(out),
        cached_input_usd_per_mtok=None,
        cache_write_usd_per_mtok=None,
    )
    return ModelRecord(
        name=name,
        upstream_model="gpt-4o-mini",
        mode="chat",
        max_output_tokens=None,
        provider=PROVIDER,
        prices=(price,),
        context_window=window,
        uid=f"unit-{name}-{uuid.uuid4().hex}",  # never shared with an earlier run
    )


def group(strategy: str, members, fallbacks=()) -> GroupRecord:
    return GroupRecord(
        name=f"g-{strategy}", strategy=strategy, members=list(members), fallbacks=list(fallbacks)
    )


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def routing(settings):
    settings.FINOPS_COOLDOWN_FAILURES = 3
    settings.FINOPS_COOLDOWN_SECONDS = 30.0
    settings.FINOPS_RETRY_BACKOFF_SECONDS = 0.1
    settings.FINOPS_RETRY_BACKOFF_MAX_SECONDS = 2.0
    settings.FINOPS_RETRY_AFTER_MAX_SECONDS = 5.0
    settings.FINOPS_UPSTREAM_TIMEOUT = 10.0
    return settings


# --- the circuit -----------------------------------------------------------------------------


def test_health_opens_after_n_failures_in_a_row_then_half_opens_for_one_probe():
    h = Health()
    now = 1000.0
    assert not h.failed(now, threshold=3, period=30)
    assert not h.failed(now, threshold=3, period=30)
    assert h.state(now) == CLOSED
    assert h.failed(now, threshold=3, period=30)  # the third in a row starts the cooldown
    assert h.state(now + 29.9) == OPEN
    assert h.state(now + 30) == HALF_OPEN
    assert h.claim_probe(now + 30, ttl=5)
    assert h.state(now + 31) == OPEN  # the probe is out: everyone else still skips it
    assert not h.claim_probe(now + 31, ttl=5)
    assert h.state(now + 35) == HALF_OPEN  # a lost probe frees itself after its ttl


def test_a_success_between_failures_resets_the_count():
    h = Health()
    h.failed(1.0, threshold=3, period=30)
    h.failed(2.0, threshold=3, period=30)
    assert h.succeeded()
    assert not h.failed(3.0, threshold=3, period=30)
    assert h.state(3.0) == CLOSED and h.fails == 1


def test_failed_probe_cools_down_again_and_successful_probe_restores(routing):
    clock = Clock()
    b = Balancer(rng=random.Random(1), clock=clock)
    m = model("a")
    for _ in range(3):
        dep = b.begin(m)
        b.failed(dep)
        b.end(dep)
    assert b.state(m) == OPEN and not b.usable(m)
    assert asyncio.run(b.admit(m)) is False
    clock.now += 30
    assert b.state(m) == HALF_OPEN and b.usable(m)
    assert asyncio.run(b.admit(m)) is True  # claims the probe
    assert asyncio.run(b.admit(m)) is False  # only one
    b.failed(b.get(m))  # the probe failed: a new full cooldown
    assert b.state(m) == OPEN
    clock.now += 29
    assert b.state(m) == OPEN
    clock.now += 1
    assert asyncio.run(b.admit(m)) is True
    b.succeeded(b.get(m), 0.05)
    assert b.state(m) == CLOSED and b.get(m).health.fails == 0
    assert asyncio.run(b.admit(m)) is True


# --- strategies ------------------------------------------------------------------------------


def test_weighted_first_pick_follows_the_weights_and_fallbacks_come_last():
    b = Balancer(rng=random.Random(7))
    a, c, fb = model("a"), model("c"), model("fb")
    g = group("weighted", [(a, 3), (c, 1)], [fb])
    firsts = Counter()
    for _ in range(4000):
        order = b.group_order(1, g)
        assert order[-1] is fb and len(order) == 3
        firsts[order[0].name] += 1
    assert 0.70 < firsts["a"] / 4000 < 0.80


def test_a_fallback_that_is_also_a_member_is_tried_once():
    b = Balancer()
    a, c = model("a"), model("c")
    assert [m.name for m in b.group_order(1, group("weighted", [(a, 1)], [a, c]))] == ["a", "c"]


def test_round_robin_rotates_per_org_and_group():
    b = Balancer()
    a, c, d = model("a"), model("c"), model("d")
    g = group("round_robin", [(a, 1), (c, 1), (d, 1)])
    firsts = [b.group_order(1, g)[0].name for _ in range(6)]
    assert firsts == ["a", "c", "d", "a", "c", "d"]
    assert b.group_order(2, g)[0].name == "a"  # another org has its own counter


def test_least_busy_prefers_the_member_with_fewest_calls_in_flight():
    b = Balancer(rng=random.Random(3))
    a, c = model("a"), model("c")
    g = group("least_busy", [(a, 1), (c, 1)])
    b.begin(a)
    b.begin(a)
    b.begin(c)
    assert [m.name for m in b.group_order(1, g)] == ["c", "a"]
    b.get(c).remote_inflight = 5  # what the other processes reported
    assert [m.name for m in b.group_order(1, g)] == ["a", "c"]


def test_lowest_latency_measures_unknown_members_first_then_prefers_the_fastest():
    b = Balancer(rng=random.Random(5))
    fast, slow, new = model("fast"), model("slow"), model("new")
    g = group("lowest_latency", [(slow, 1), (fast, 1), (new, 1)])
    for _ in range(5):
        b.succeeded(b.get(fast), 0.050)
        b.succeeded(b.get(slow), 0.400)
    assert [m.name for m in b.group_order(1, g)] == ["new", "fast", "slow"]
    b.succeeded(b.get(new), 0.200)
    assert [m.name for m in b.group_order(1, g)] == ["fast", "new", "slow"]
    # a timeout counts as its full length
    b.failed(b.get(fast), 3.0)
    assert b.get(fast).latency_ms() == pytest.approx(50 + 0.2 * (3000 - 50))
    assert [m.name for m in b.group_order(1, g)][0] == "new"


def test_lowest_latency_shares_traffic_between_members_within_the_buffer():
    b = Balancer(rng=random.Random(11))
    a, c = model("a"), model("c")
    b.succeeded(b.get(a), 0.100)
    b.succeeded(b.get(c), 0.105)  # within 10 %
    firsts = Counter(
        b.group_order(1, group("latency", [(a, 1), (c, 1)]))[0].name for _ in range(400)
    )
    assert min(firsts.values()) > 120


def test_ewma_blends_with_what_other_processes_saw():
    b = Balancer()
    a = model("a")
    dep = b.get(a)
    b.succeeded(dep, 0.100)
    dep.remote_ewma_ms, dep.remote_samples = 300.0, 1
    assert dep.latency_ms() == pytest.approx(200.0)


def test_lowest_cost_orders_by_the_current_price():
    b = Balancer(rng=random.Random(2))
    dear, cheap, mid = (
        model("dear", inp="5", out="15"),
        model("cheap", inp="0.15", out="0.6"),
        model("mid", inp="1", out="4"),
    )
    g = group("lowest_cost", [(dear, 10), (cheap, 1), (mid, 1)])
    assert [m.name for m in b.group_order(1, g)] == ["cheap", "mid", "dear"]


def test_unknown_strategy_behaves_as_weighted():
    b = Balancer(rng=random.Random(1))
    a, c = model("a"), model("c")
    assert {m.name for m in b.group_order(1, group("future", [(a, 1), (c, 1)]))} == {"a", "c"}


# --- backoff and Retry-After -----------------------------------------------------------------


def test_backoff_is_exponential_with_equal_jitter_and_capped(routing):
    rng = random.Random(0)
    for retry, full in ((1, 0.1), (2, 0.2), (3, 0.4), (6, 2.0), (10, 2.0)):
        for _ in range(200):
            delay = backoff_delay(retry, rng=rng)
            assert full / 2 <= delay <= full


def test_retry_after_is_honoured_up_to_the_cap(routing):
    assert backoff_delay(1, 1.5) == 1.5
    assert backoff_delay(3, 0.0) == 0.0
    assert backoff_delay(1, 5.0) == 5.0
    assert backoff_delay(1, 5.01) is None  # longer than we wait: move on to the next


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "0.5"}) == 0.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "-3"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after_seconds({"retry-after": when}) <= 30


# --- context window and the route ------------------------------------------------------------


def call_for(deployments, *, content: str = "hi", max_tokens: int | None = None):
    body = {"model": "x", "messages": [{"role": "user", "content": content}]}
    if max_tokens:
        body["max_tokens"] = max_tokens
    return SimpleNamespace(api=CHAT, body=body, plan=Plan(deployments=list(deployments)))


def test_context_window_skips_models_too_small_for_the_prompt():
    small, big, unknown = model("small", window=100), model("big", window=100_000), model("u")
    call = call_for([small, big, unknown], content="word " * 400)
    assert [m.name for m in proxy._fitting(call, call.plan.deployments)] == ["big", "u"]
    # the output asked for counts too
    call = call_for([small, big], content="hi", max_tokens=200)
    assert [m.name for m in proxy._fitting(call, call.plan.deployments)] == ["big"]


def test_no_model_large_enough_is_a_400():
    small, smaller = model("small", window=100), model("smaller", window=50)
    call = call_for([smaller, small], content="word " * 400)
    with pytest.raises(GatewayError) as exc:
        proxy._fitting(call, call.plan.deployments)
    assert (exc.value.status, exc.value.code, exc.value.param) == (400, "invalid_value", "messages")
    assert "maximum context length is 100 tokens" in exc.value.message


def test_route_skips_cooling_models_but_never_refuses_for_cooldown_alone(routing):
    a, c = model("a"), model("c")
    for _ in range(3):
        shared_balancer.failed(shared_balancer.get(a))

    async def walk(deployments):
        route = proxy._Route(call_for(deployments))
        names = []
        while (m := await route.next()) is not None:
            names.append(m.name)
        return names

    assert asyncio.run(walk([a, c])) == ["c"]
    for _ in range(3):
        shared_balancer.failed(shared_balancer.get(c))
    shared_balancer.get(a).health.last_fail -= 10  # a failed longest ago
    assert asyncio.run(walk([c, a])) == ["a"]


# --- shared state on Redis -------------------------------------------------------------------

needs_redis = pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL")


async def _settle(b: Balancer) -> None:
    while b._tasks:
        await asyncio.sleep(0.01)


@needs_redis
def test_processes_share_cooldowns_load_and_latency_through_redis(routing):
    async def scenario():
        one, two = Balancer(), Balancer()
        await one.start(django_settings.REDIS_URL)
        await two.start(django_settings.REDIS_URL)
        try:
            m = model("shared")
            dep = one.begin(m)
            one.succeeded(dep, 0.120)
            for _ in range(3):
                one.failed(one.get(m))
            await _settle(one)
            two.get(m)  # two knows the deployment (it is in its config)
            await one.sync()
            await two.sync()
            assert two.state(m) == OPEN
            assert two.get(m).remote_inflight == 1
            assert two.get(m).latency_ms() == pytest.approx(120.0)
            # only one of them gets the half-open probe
            for b in (one, two):
                b.get(m).health.cool_until = b.clock() - 1
            shared = await one._redis.hget(f"finops:route:h:{m.uid}", "cool")
            assert int(shared) > 0
            await one._redis.hset(f"finops:route:h:{m.uid}", "cool", int(one.clock() * 1000) - 1)
            assert [await one.admit(m), await two.admit(m)] == [True, False]
            one.succeeded(one.get(m))
            await _settle(one)
            await two.sync()
            assert two.state(m) == CLOSED and two.get(m).health.fails == 0
        finally:
            await one.stop()
            await two.stop()

    asyncio.run(scenario())


def test_unreachable_redis_never_fails_a_call(routing):
    async def scenario():
        b = Balancer()
        await b.start("redis://127.0.0.1:1/0")
        try:
            m = model("r")
            for _ in range(3):
                b.failed(b.get(m))  # the fire-and-forget write fails; local state holds
            await _settle(b)
            assert b.state(m) == OPEN
            await b.sync()  # skipped while Redis is considered down
            b.get(m).health.cool_until = b.clock() - 1
            assert await b.admit(m) is True  # probe claimed locally
        finally:
            await b.stop()

    asyncio.run(scenario())


# --- a key's default fallback chain --------------------------------------------------------------


def test_a_keys_fallbacks_follow_the_groups_chain_without_repeats_or_unknown_names():
    from gateway.records import OrgConfig
    from gateway.resolve import resolve

    a, b, c, d = (model(n) for n in "abcd")
    g = group("weighted", [(a, 1)], [b])
    config = OrgConfig(
        org_id=1, models={m.name: m for m in (a, b, c, d)}, groups={g.name: g}, routers={}
    )
    plan = resolve(config, g.name, api=CHAT, fallbacks=("c", "a", "gone", "d"))
    assert [m.name for m in plan.deployments] == ["a", "b", "c", "d"]
    # Resolving again does not carry the chain over: every plan is a fresh list.
    assert [m.name for m in resolve(config, g.name, api=CHAT).deployments] == ["a", "b"]
    assert [m.name for m in resolve(config, "c", api=CHAT, fallbacks=("d",)).deployments] == [
        "c",
        "d",
    ]
