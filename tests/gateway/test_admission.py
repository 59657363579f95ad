"""Admission without the network: windows, estimates, counters."""

from __future__ import annotations

import asyncio
import zoneinfo
from datetime import UTC, datetime
from decimal import Decimal

from gateway.admission import estimate, to_nano, window_of
from gateway.counters import Entry, LocalCounters
from gateway.records import ModelRecord
from gateway.resolve import Plan
from tests.records import model_record, price

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")


def test_windows_are_calendar_aligned_in_the_org_timezone():
    # 23:30 UTC on 31 March is already 1 April in Berlin (summer time, UTC+2)
    when = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    label, start, end = window_of("month", when, BERLIN)
    assert label == "month:2026-04-01"
    assert start == datetime(2026, 4, 1, tzinfo=BERLIN) and end == datetime(
        2026, 5, 1, tzinfo=BERLIN
    )
    assert window_of("day", when, UTC)[0] == "day:2026-03-31"
    assert (
        window_of("day", datetime(2026, 6, 1, 18, 45, tzinfo=UTC), KOLKATA)[0] == "day:2026-06-02"
    )
    assert window_of("week", datetime(2026, 12, 31, 12, tzinfo=UTC), UTC)[0] == "week:2026-12-28"
    label, start, end = window_of("quarter", datetime(2026, 11, 15, tzinfo=UTC), UTC)
    assert label == "quarter:2026-10-01" and end == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_day_window_across_a_dst_change_is_23_hours_long():
    _, start, end = window_of("day", datetime(2026, 3, 29, 12, tzinfo=UTC), BERLIN)
    # same-tzinfo subtraction is wall-clock time in Python; the instants are what matter
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 23 * 3600


def _model(name="gpt-4o-mini", max_out=None, **prices) -> ModelRecord:
    cost = price(prices.get("inp", "1"), prices.get("out", "2"), write=prices.get("write"))
    return model_record(name, prices=[cost], max_out=max_out)


def test_estimate_is_an_upper_bound_over_every_deployment_and_direction():
    body = {"messages": [{"role": "user", "content": "hello world"}], "max_tokens": 100}
    cheap, dear = _model(inp="1", out="2"), _model("claude-x", inp="3", out="15", write="3.75")
    cost, prompt = estimate("chat.completions", body, Plan(deployments=[cheap, dear]))
    claude_prompt = len(b"user\n\nhello world") + 4 + 3  # bytes: unknown family
    assert prompt == claude_prompt
    assert cost == claude_prompt * Decimal("3.75") / 1_000_000 + 100 * Decimal("15") / 1_000_000


def test_estimate_falls_back_to_the_models_max_output_tokens():
    body = {"messages": [{"role": "user", "content": "x"}]}
    with_cap, _ = estimate("chat.completions", body, Plan(deployments=[_model(max_out=10)]))
    without, _ = estimate("chat.completions", body, Plan(deployments=[_model()]))
    assert without > with_cap  # 4096 default output tokens when nothing says otherwise


def test_local_counters_reserve_settle_and_refuse_past_the_limit():
    counters = LocalCounters()

    async def scenario():
        budget = Entry(
            "budget", "b1", limit=to_nano(Decimal("1")), amount=to_nano(Decimal("0.4")), seed=0
        )
        first = await counters.admit([budget], lease="a", lease_ttl=60)
        second = await counters.admit([budget], lease="b", lease_ttl=60)
        third = await counters.admit([budget], lease="c", lease_ttl=60)
        assert first.ok and second.ok and not third.ok  # 0.4 + 0.4 reserved, 0.4 more won't fit
        await counters.settle([budget], [to_nano(Decimal("0.1"))], lease="a")
        assert (await counters.admit([budget], lease="d", lease_ttl=60)).ok  # 0.1 spent + 0.8 held
        assert await counters.spent("b1") == to_nano(Decimal("0.1"))

    asyncio.run(scenario())


def test_expired_leases_are_released():
    counters = LocalCounters()

    async def scenario():
        budget = Entry("budget", "b2", limit=10, amount=6, seed=0)
        assert (await counters.admit([budget], lease="crashed", lease_ttl=-1)).ok
        assert (await counters.admit([budget], lease="next", lease_ttl=60)).ok  # lease expired

    asyncio.run(scenario())


def test_all_or_nothing_across_entries():
    counters = LocalCounters()

    async def scenario():
        roomy = Entry("budget", "roomy", limit=100, amount=5, seed=0)
        tight = Entry("budget", "tight", limit=4, amount=5, seed=0)
        verdict = await counters.admit([roomy, tight], lease="x", lease_ttl=60)
        assert not verdict.ok and verdict.failed == 1
        assert counters.windows["roomy"].reserved == 0  # nothing was taken

    asyncio.run(scenario())


def test_parallel_and_rate_limits():
    counters = LocalCounters()

    async def scenario():
        par = Entry("parallel", "p", limit=1)
        assert (await counters.admit([par], lease="1", lease_ttl=60)).ok
        assert not (await counters.admit([par], lease="2", lease_ttl=60)).ok
        await counters.settle([par], [0], lease="1")
        assert (await counters.admit([par], lease="3", lease_ttl=60)).ok
        rpm = Entry("rate", "r", limit=2, amount=1)
        results = [(await counters.admit([rpm], lease=str(i), lease_ttl=60)).ok for i in range(3)]
        assert results == [True, True, False]

    asyncio.run(scenario())
