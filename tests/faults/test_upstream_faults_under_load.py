"""Upstream faults under load: with slow (past the timeout), failing (503) and dripping (slow
stream) upstreams mixed into concurrent traffic, every request ends — served, or an OpenAI-shaped
error — and none is left hanging: the client's own timeout (far above the gateway's worst case)
is never what ends a call. Every attempt is in the ledger."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings

from gateway.models import UsageEvent

pytestmark = pytest.mark.live

MESSAGES = [{"role": "user", "content": "Are you there?"}]
# (model, stream): slow-model times out (3 s latency, 1.5 s timeout), failing-model answers 503,
# drip-model streams slowly but within the timeout, failover falls back from 503 to a healthy one.
MIX = [
    ("slow-model", False),
    ("slow-model", True),
    ("failing-model", False),
    ("failing-model", True),
    ("drip-model", True),
    ("failover", False),
    ("failover", True),
    ("gpt-4o-mini", False),
    ("gpt-4o-mini", True),
]
CLIENT_TIMEOUT = 60.0  # the gateway's worst case here is 2 attempts x 1.5 s + backoff


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


def test_no_request_hangs_when_upstreams_fail_under_load(live):
    calls = [MIX[i % len(MIX)] for i in range(72)]
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda c: one_call(live.app.url, live.key_secret, *c), calls))
    hung = [r for r in results if r[2] == -1]
    assert not hung, hung
    for model, stream, status, text, _ in results:
        if model == "slow-model":
            # streamed or not, nothing was sent before the timeout: a plain JSON error
            assert status == 504 and "upstream_timeout" in text, (status, text[:200])
        elif model == "failing-model":
            assert status in (502, 503) and '"error"' in text, (model, stream, status, text[:200])
        else:
            assert status == 200, (model, stream, status, text[:200])
            if stream:
                assert text.rstrip().endswith("data: [DONE]")
    ids = [r[4] for r in results]
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
