"""Helpers of the evaluation live tests: routers with shadow traffic on the live gateway."""

from __future__ import annotations

import time
import uuid

import openai

from gateway.models import LLMModel, Provider, Router, UsageEvent
from tests import factories as f

HARD = [
    {
        "role": "user",
        "content": "Prove by induction that 1 + 3 + ... + (2n-1) = n^2 for every natural number "
        "n, and explain each step.",
    }
]


def client(live, secret: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=live.base_url, api_key=secret or live.key_secret, max_retries=0, timeout=30
    )


def farm_model(live, farm: str) -> LLMModel:
    """A model of its own on a farm simulator, so its cooldowns touch no other test."""
    with live.blocker.unblock():
        provider = Provider.objects.get(org=live.org, slug=farm)
        return f.make_model(
            live.org,
            f"{farm}-{uuid.uuid4().hex[:8]}",
            provider=provider,
            upstream_model="gpt-4o-mini",
        )


def shadow_router(live, *, strong: str, weak: str, **fields) -> str:
    """A router with shadow traffic; threshold 0 always picks strong. Returns its model name
    once the gateway sees it."""
    name = f"shadow-{uuid.uuid4().hex[:8]}"
    with live.blocker.unblock():
        Router.objects.create(
            org=live.org,
            name=name,
            strong=LLMModel.objects.get(org=live.org, name=strong),
            weak=LLMModel.objects.get(org=live.org, name=weak),
            threshold=fields.pop("threshold", 0.0),
            shadow_rate=fields.pop("shadow_rate", 1.0),
            **fields,
        )
    model = f"router:{name}"
    deadline = time.monotonic() + 10
    while model not in {m.id for m in client(live).models.list()}:
        assert time.monotonic() < deadline, "the new router never became visible"
        time.sleep(0.1)
    return model


SETTLE_SECONDS = 1.5


def rows_settled(live, request_id: str, *, timeout: float = 20.0) -> list[UsageEvent]:
    """A request's ledger rows once the last one is final (ok, or an error not followed by
    another attempt within ``SETTLE_SECONDS``: a retry comes after a 0.1 s backoff and shows up
    at the writer's next flush, 0.25 s later)."""
    deadline = time.monotonic() + timeout
    last: list = []
    stable_since = time.monotonic()
    with live.blocker.unblock():
        while time.monotonic() < deadline:
            rows = list(UsageEvent.objects.filter(request_id=request_id).order_by("attempt"))
            if [r.pk for r in rows] != [r.pk for r in last]:
                last, stable_since = rows, time.monotonic()
            elif rows and (
                rows[-1].status == "ok" or time.monotonic() - stable_since > SETTLE_SECONDS
            ):
                return rows
            time.sleep(0.1)
    return last
