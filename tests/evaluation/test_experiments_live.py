"""A/B experiments over real HTTP: an active experiment on a route for a key sends about
``share`` of its calls to the candidate (the route's models stay as fallbacks); every call of
that key on that route is marked with the experiment and its arm in the ledger; other keys'
calls are untouched."""

from __future__ import annotations

import time
import uuid

import pytest

from evaluation.models import Experiment
from gateway.models import LLMModel, UsageEvent
from tests import factories as f
from tests.evaluation.live_eval import client

pytestmark = pytest.mark.live

PROMPT = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def cleanup(live):
    """Experiments protect their candidate model: removed before the live world is."""
    yield
    with live.blocker.unblock():
        Experiment.objects.filter(org=live.org).delete()


def test_an_experiment_splits_a_keys_calls_between_its_arms(live, cleanup):
    suffix = uuid.uuid4().hex[:8]
    name = f"ab-{suffix}"
    with live.blocker.unblock():
        minted = f.make_key(live.team, f"ab-{suffix}")
        Experiment.objects.create(
            org=live.org,
            name=name,
            route="gpt-4o-mini",
            candidate=LLMModel.objects.get(org=live.org, name="gpt-4o"),
            share=0.5,
            key=minted.key,
        )
    sdk = client(live, minted.secret)

    def call():
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=PROMPT, max_tokens=4
        )
        return raw.headers["x-request-id"], raw.headers["x-finops-model"]

    # the gateway reloads its config within a poll interval of the save
    deadline = time.monotonic() + 10
    while True:
        request_id, _ = call()
        [row] = live.events(request_id)
        if row.experiment == name:
            break
        assert time.monotonic() < deadline, "the experiment never took effect"
        time.sleep(0.2)

    calls = dict(call() for _ in range(40))
    with live.blocker.unblock():
        deadline = time.monotonic() + 10
        while len(rows := list(UsageEvent.objects.filter(request_id__in=calls))) < len(calls):
            assert time.monotonic() < deadline, "the ledger rows never arrived"
            time.sleep(0.1)
    arms = {r.request_id: (r.experiment, r.experiment_arm, r.model) for r in rows}
    assert {a[0] for a in arms.values()} == {name}
    counted = {
        arm: sum(1 for a in arms.values() if a[1] == arm) for arm in ("control", "candidate")
    }
    assert counted["control"] > 0 and counted["candidate"] > 0, counted
    for request_id, (_, arm, model) in arms.items():
        assert model == ("gpt-4o" if arm == "candidate" else "gpt-4o-mini")
        assert calls[request_id] == model  # x-finops-model says which arm answered

    # another key's calls on the same route are outside the experiment
    raw = client(live).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=PROMPT, max_tokens=4
    )
    [row] = live.events(raw.headers["x-request-id"])
    assert (row.experiment, row.experiment_arm, row.model) == ("", "", "gpt-4o-mini")
