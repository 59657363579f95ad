"""The cost router over real HTTP: the openai SDK calls ``router:smart`` on the live gateway
(uvicorn + the upstream simulator); the ledger row carries the router, scorer, score, threshold
and decision; the response says which model answered; a cooling strong model falls back to the
weak one; the prompt lands in the router's sample; a feature's or key's default model can
name the router."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest

from gateway.models import LLMModel, Provider, Router, RouterPrompt
from teams.models import Feature
from teams.services import key_update
from tests import factories as f

pytestmark = pytest.mark.live

TRIVIAL = [{"role": "user", "content": "translate 'cat' to French"}]
HARD = [
    {
        "role": "user",
        "content": "Prove by induction that 1 + 3 + ... + (2n-1) = n^2 for every natural number "
        "n, and explain each step.",
    }
]


def client(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.base_url, api_key=live.key_secret, max_retries=0)


def create(live, model: str, messages):
    return client(live).chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=16
    )


def test_router_sends_a_trivial_prompt_to_the_weak_model_and_says_so(live):
    raw = create(live, "router:smart", TRIVIAL)
    assert raw.headers["x-finops-model"] == "gpt-4o-mini"
    assert raw.headers["x-finops-router-decision"] == "weak"
    assert raw.parse().choices[0].message.content
    [row] = live.events(raw.headers["x-request-id"])
    assert (row.model, row.status, row.requested_model) == ("gpt-4o-mini", "ok", "router:smart")
    assert (row.router, row.router_scorer, row.router_decision) == ("smart", "heuristic", "weak")
    assert row.router_threshold == 0.5
    assert 0.0 <= row.router_score < 0.5


def test_router_sends_a_hard_prompt_to_the_strong_model(live):
    raw = create(live, "router:smart", HARD)
    assert raw.headers["x-finops-model"] == "gpt-4o"
    assert raw.headers["x-finops-router-decision"] == "strong"
    [row] = live.events(raw.headers["x-request-id"])
    assert (row.model, row.router, row.router_decision) == ("gpt-4o", "smart", "strong")
    assert row.router_scorer == "heuristic" and row.router_score >= 0.5
    assert row.router_threshold == 0.5


def test_router_prompts_are_kept_for_calibration(live):
    marker = f"marker-{uuid.uuid4().hex}"
    create(live, "router:smart", [{"role": "user", "content": f"hello {marker}"}])
    deadline = time.monotonic() + 10  # side effects are written every couple of seconds
    with live.blocker.unblock():
        while True:
            newest = (
                RouterPrompt.objects.filter(router__org=live.org)
                .select_related("router")
                .order_by("-id")[:20]
            )
            row = next((r for r in newest if marker in r.messages[0]["content"]), None)
            if row is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert row is not None
    assert row.router.name == "smart" and row.scorer == "heuristic" and row.score < 0.5


def test_a_cooling_strong_model_falls_back_to_the_weak_one(live):
    suffix = uuid.uuid4().hex[:8]
    with live.blocker.unblock():
        failing = Provider.objects.get(org=live.org, slug="failing")  # the farm's 503 simulator
        strong = f.make_model(
            live.org, f"rt-strong-{suffix}", provider=failing, upstream_model="gpt-4o-mini"
        )
        weak = LLMModel.objects.get(org=live.org, name="gpt-4o-mini")
        Router.objects.create(org=live.org, name=f"cool-{suffix}", strong=strong, weak=weak)
    name = f"router:cool-{suffix}"
    deadline = time.monotonic() + 10
    while name not in {m.id for m in client(live).models.list()}:
        assert time.monotonic() < deadline, "the new router never became visible"
        time.sleep(0.1)

    tried = []
    for _ in range(3):
        raw = create(live, name, HARD)
        assert raw.headers["x-finops-model"] == "gpt-4o-mini"
        assert raw.headers["x-finops-router-decision"] == "strong"
        count = int(raw.headers["x-finops-attempts"])
        rows = live.events(raw.headers["x-request-id"], count=count)
        tried.append([r.model for r in rows])
        assert {(r.router_decision, r.router_scorer) for r in rows} == {("strong", "heuristic")}
        assert rows[-1].status == "ok" and rows[-1].model == "gpt-4o-mini"
    strong_name = strong.name
    # a failure and its retry, then the third failure in a row starts the cooldown: the
    # fallback at once; then the cooling strong model is skipped
    assert tried == [
        [strong_name, strong_name, "gpt-4o-mini"],
        [strong_name, "gpt-4o-mini"],
        ["gpt-4o-mini"],
    ]


def test_a_feature_or_key_default_model_can_name_the_router(live):
    suffix = uuid.uuid4().hex[:8]
    with live.blocker.unblock():
        feature = Feature.objects.create(
            team=live.team, slug=f"triage-{suffix}", name="triage", default_model="router:smart"
        )
        minted = f.make_key(live.team, f"router-default-{suffix}")
        key_update(key=minted.key, default_model="gpt-4o")
    secret = minted.secret
    headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    url = f"{live.app.url}/v1/chat/completions"
    # the model "default" with the feature's header: the feature's default, the router
    r = httpx.post(
        url,
        json={"model": "default", "messages": HARD, "max_tokens": 8},
        headers={**headers, "x-finops-feature": feature.slug},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert (r.headers["x-finops-model"], r.headers["x-finops-router-decision"]) == (
        "gpt-4o",
        "strong",
    )
    [row] = live.events(r.headers["x-request-id"])
    assert (row.requested_model, row.router, row.feature) == ("router:smart", "smart", feature.slug)
    # no model at all and no feature default: the key's default, a plain model
    r = httpx.post(url, json={"messages": TRIVIAL, "max_tokens": 8}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-finops-model"] == "gpt-4o" and "x-finops-router-decision" not in r.headers
    # a key without a default still needs a model
    r = httpx.post(
        url,
        json={"messages": TRIVIAL},
        headers={**headers, "authorization": f"Bearer {live.key_secret}"},
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_field"
