"""Upstream faults under load: with slow (past the timeout), failing (503) and dripping (slow
stream) upstreams mixed into concurrent traffic, every request ends — served, or an OpenAI-shaped
error — and none is left hanging: the client's own timeout (far above the gateway's worst case)
is never what ends a call. Every attempt is in the ledger.

The test deploys its own models on the farm's simulators, so the cooldowns its failures start
cannot steer another test's calls in the shared gateway."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings

from gateway.models import LLMModel, Provider, UsageEvent
from tests import factories as f

pytestmark = pytest.mark.live

MESSAGES = [{"role": "user", "content": "Are you there?"}]
# (kind, stream): slow times out (3 s latency, 1.0 s timeout), failing answers 503, drip streams
# slowly but within the timeout, failover falls back from 503 to a healthy one.
MIX = [
    ("slow", False),
    ("slow", True),
    ("failing", False),
    ("failing", True),
    ("drip", True),
    ("failover", False),
    ("failover", True),
    ("healthy", False),
    ("healthy", True),
]
CLIENT_TIMEOUT = 60.0  # the gateway's worst case here is 2 attempts x 1.0 s + backoff


def one_call(url: str, key: str, model: str, stream: bool) -> tuple[str, bool, int, str, str]:
    body = {"model": model, "messages": MESSAGES, "stream": stream, "max_tokens": 16}
    headers = {"authorization": f"Bearer {key}"}
    try:
        with (
            httpx.Client(timeout=CLIENT_TIMEOUT) as client,
            client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r,
        ):
            text = r.read().decode()
            return model, stream, r.status_code, text, r.headers.get("x-request-id", "")
    except httpx.TimeoutException:
        return model, stream, -1, "client timeout", ""


def deploy(live) -> dict[str, str]:
    """Fresh models per kind on the farm's simulators, and a failover group: kind -> name."""
    tag = uuid.uuid4().hex[:6]
    with live.blocker.unblock():
        names = {}
        for kind, slug in (("slow", "slow"), ("failing", "failing"), ("drip", "drip")):
            provider = Provider.objects.get(org=live.org, slug=slug)
            names[kind] = f.make_model(live.org, f"uf-{kind}-{tag}", provider=provider).name
        sim = Provider.objects.get(org=live.org, slug="sim")
        names["healthy"] = f.make_model(live.org, f"uf-healthy-{tag}", provider=sim).name
        models = {m.name: m for m in LLMModel.objects.filter(org=live.org)}
        names["failover"] = f.make_group(
            live.org,
            f"uf-failover-{tag}",
            members=[(models[names["failing"]], 1)],
            fallbacks=[models[names["healthy"]]],
        ).name
    deadline = time.monotonic() + 10
    while True:  # until the gateway's config (reloaded on the stamp poll) knows them
        listed = httpx.get(
            f"{live.app.url}/v1/models", headers={"authorization": f"Bearer {live.key_secret}"}
        ).json()
        if set(names.values()) <= {m["id"] for m in listed["data"]}:
            return names
        assert time.monotonic() < deadline, "the new models never became visible"
        time.sleep(0.05)


def test_no_request_hangs_when_upstreams_fail_under_load(live):
    names = deploy(live)
    calls = [(names[kind], kind, stream) for kind, stream in (MIX[i % len(MIX)] for i in range(72))]
    with ThreadPoolExecutor(24) as pool:
        results = list(
            pool.map(lambda c: (c[1], *one_call(live.app.url, live.key_secret, c[0], c[2])), calls)
        )
    hung = [r for r in results if r[3] == -1]
    assert not hung, hung
    for kind, _, stream, status, text, _ in results:
        if kind == "slow":
            # streamed or not, nothing was sent before the timeout: a plain JSON error
            assert status == 504 and "upstream_timeout" in text, (status, text[:200])
        elif kind == "failing":
            assert status in (502, 503) and '"error"' in text, (kind, stream, status, text[:200])
        else:
            assert status == 200, (kind, stream, status, text[:200])
            if stream:
                assert text.rstrip().endswith("data: [DONE]")
    ids = [r[5] for r in results]
    assert all(ids)
    deadline = time.monotonic() + 10 + settings.FINOPS_LEDGER_FLUSH_SECONDS
    while True:
        with live.blocker.unblock():
            metered = set(
                UsageEvent.objects.filter(request_id__in=ids).values_list("request_id", flat=True)
            )
        if metered == set(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert metered == set(ids)  # every call left at least one attempt in the ledger
