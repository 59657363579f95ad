"""Reconciliation corrects a budget counter that drifted from the ledger, and records it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.admission import budget_key, to_nano, window_of
from gateway.cache import org_config_load
from gateway.counters import Entry, LocalCounters
from gateway.models import CounterDrift, UsageEvent
from gateway.reconcile import counters_reconcile
from tests import factories as f


def _event(org, team, cost: str) -> UsageEvent:
    now = datetime.now(UTC)
    return UsageEvent.objects.create(
        event_id=uuid.uuid4(),
        request_id=uuid.uuid4().hex,
        started_at=now,
        ended_at=now,
        org_id=org.pk,
        team_id=team.pk,
        status="ok",
        cost=Decimal(cost),
    )


@pytest.mark.django_db(transaction=True)
def test_drift_is_corrected_to_the_ledger_and_recorded():
    org = f.make_org()
    team = f.make_team(org)
    f.make_budget(org, scope="team", team=team, period="month", limit="10")
    _event(org, team, "0.25")
    _event(org, team, "0.50")
    label, _, _ = window_of("month", datetime.now(UTC), org.tz)
    key = budget_key(org_config_load(org.pk).budgets[0], label)
    counters = LocalCounters()

    async def scenario():
        # a counter that missed 0.50 (e.g. a process died before settling)
        entry = Entry("budget", key, to_nano(Decimal("10")), 0, seed=to_nano(Decimal("0.25")))
        assert (await counters.admit([entry], lease="l", lease_ttl=60)).ok
        await counters.settle([entry], [0], lease="l")
        corrected = await counters_reconcile(counters, run_sync=_sync, pause=0.01)
        assert corrected == 1
        assert await counters.spent(key) == to_nano(Decimal("0.75"))
        assert await counters_reconcile(counters, run_sync=_sync, pause=0.01) == 0

    asyncio.run(scenario())
    drift = CounterDrift.objects.get()
    assert drift.counter_nano == to_nano(Decimal("0.25")) and drift.ledger_nano == to_nano(
        Decimal("0.75")
    )


async def _sync(fn, *args):
    return await asyncio.to_thread(fn, *args)
