"""A block budget holds against a provider that bills everything a request allows, and one
that bills more is caught.

The first upstream is the simulator with ``--bill-max``: each of a request's ``n`` choices as
long as its token cap, every tool schema, every image by OpenAI's tile rule (linked images at
their largest). Whatever a hostile client sends (a hundred choices, 200 KB of tool schemas: the
live app takes 256 KB, dozens of images, no output cap at all) the team's spend in the ledger
never passes the limit, one call after another or fifty at once. The second bills 5,000
completion tokens for ``max_tokens=16``: the row keeps what it billed, flagged, the metric
counts it and the deployment is cooled at once.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from gateway.models import LLMModel, Provider, UsageEvent
from teams.models import Budget
from teams.services import key_mint
from tests import factories as f
from tests.live import start_simulator

pytestmark = pytest.mark.live

MODEL = "billmax-4o"
LIMIT = Decimal("0.05")
TEXT = [{"type": "text", "text": "Compare these charts."}]


def _png(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    raw = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + crc + b"\x00" * 16
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def _tool(i: int) -> dict:
    return {
        "type": "function",
        "function": {"name": f"t{i}", "description": "lookup " * 1200, "parameters": {}},
    }


SHAPES = {
    "n": {"n": 100, "max_tokens": 300},
    "tools": {"tools": [_tool(i) for i in range(25)], "max_tokens": 16},
    "linked-images": {
        "content": [
            *TEXT,
            *[
                {"type": "image_url", "image_url": {"url": f"https://x.test/{i}"}}
                for i in range(30)
            ],
        ],
        "max_tokens": 16,
    },
    "inline-images": {
        "content": [*TEXT, *[{"type": "image_url", "image_url": {"url": _png(1024, 1024)}}] * 40],
        "max_tokens": 16,
    },
    "no-cap": {},
}


@pytest.fixture(scope="module")
def billmax(live, live_tmp):
    sim = start_simulator(live_tmp, "--bill-max")
    with live.blocker.unblock():
        teams = {shape: _capped(live, shape) for shape in [*SHAPES, "burst"]}
        provider = Provider.objects.create(
            org=live.org,
            slug=f"billmax-{uuid.uuid4().hex[:6]}",
            kind="openai",
            base_url=f"{sim.url}/v1",
            api_key_env="FINOPS_SIM_KEY",
        )
        f.make_model(
            live.org,
            MODEL,
            provider=provider,
            upstream_model="gpt-4o",
            input_per_mtok="2.50",
            output_per_mtok="10.00",
        )
    deadline = time.monotonic() + 10
    while MODEL not in _model_ids(live):
        assert time.monotonic() < deadline, "the model never became visible"
        time.sleep(0.1)
    # the budgets came before the model: the config that shows the model enforces them
    yield sim, teams
    sim.stop()


def _model_ids(live) -> set[str]:
    response = httpx.get(
        f"{live.base_url}/models", headers={"authorization": f"Bearer {live.key_secret}"}
    )
    return {m["id"] for m in response.json()["data"]}


def _capped(live, shape: str):
    """A team with a block budget of ``LIMIT`` and a key (inside ``live.blocker.unblock()``)."""
    team = f.make_team(live.org, f"bound-{shape}-{uuid.uuid4().hex[:6]}")
    secret = key_mint(team=team, name="hostile").secret
    Budget.objects.create(
        org=live.org, scope="team", team=team, period="month", limit_usd=LIMIT, action="block"
    )
    return team, secret


def _body(shape: str) -> dict:
    spec = dict(SHAPES[shape])
    content = spec.pop("content", "Compare these charts.")
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **spec}


def _call(live, secret: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{live.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )


def _spent(live, team, ids) -> Decimal:
    deadline = time.monotonic() + 10
    with live.blocker.unblock():
        while UsageEvent.objects.filter(request_id__in=ids).count() < len(ids):
            assert time.monotonic() < deadline, "ledger rows missing"
            time.sleep(0.05)
        time.sleep(0.4)  # a flush more: no stray row
        return UsageEvent.objects.filter(team_id=team.pk).aggregate(s=Sum("cost"))["s"] or 0


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_one_call_after_another_never_passes_a_block_budget(live, billmax, shape):
    team, secret = billmax[1][shape]
    ok = []
    for _ in range(60):
        response = _call(live, secret, _body(shape))
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "budget_exceeded"
            break
        assert response.status_code == 200, response.text
        ok.append(response.headers["x-request-id"])
    else:
        pytest.fail("the budget never refused a call")
    assert _spent(live, team, ok) <= LIMIT


def test_fifty_hostile_calls_at_once_never_pass_a_block_budget(live, billmax):
    team, secret = billmax[1]["burst"]
    bodies = [_body(shape) for shape in sorted(SHAPES) for _ in range(10)]
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda body: _call(live, secret, body), bodies))
    assert {r.status_code for r in responses} <= {200, 429}
    ok = [r.headers["x-request-id"] for r in responses if r.status_code == 200]
    assert _spent(live, team, ok) <= LIMIT


def test_the_gateway_caps_the_output_it_reserved_for(live, billmax):
    """No cap from the client or the model: the gateway sends the one it reserved, so the
    provider cannot bill past it."""
    response = _call(live, live.key_secret, _body("no-cap"))
    assert response.status_code == 200
    last = httpx.get(f"{billmax[0].url}/_sim/last").json()
    assert last["body"]["max_completion_tokens"] == 4096
    assert response.json()["usage"]["completion_tokens"] == 4096


@pytest.fixture(scope="module")
def overbiller(live, live_tmp):
    """A group whose member answers with 5,000 completion tokens whatever ``max_tokens`` says,
    with the live world's healthy ``gpt-4o-mini`` as its fallback."""
    sim = start_simulator(live_tmp, "--completion-tokens", "5000")
    suffix = uuid.uuid4().hex[:6]
    with live.blocker.unblock():
        provider = Provider.objects.create(
            org=live.org,
            slug=f"overbill-{suffix}",
            kind="openai",
            base_url=f"{sim.url}/v1",
            api_key_env="FINOPS_SIM_KEY",
        )
        rogue = f.make_model(
            live.org, f"overbill-{suffix}", provider=provider, upstream_model="gpt-4o-mini"
        )
        healthy = LLMModel.objects.get(org=live.org, name="gpt-4o-mini")
        group = f.make_group(
            live.org, f"overbill-pool-{suffix}", members=[(rogue, 1)], fallbacks=[healthy]
        )
    deadline = time.monotonic() + 10
    while group.name not in _model_ids(live):
        assert time.monotonic() < deadline, "the group never became visible"
        time.sleep(0.1)
    yield rogue.name, group.name
    sim.stop()


def test_an_upstream_billing_past_the_request_is_flagged_counted_and_cooled(live, overbiller):
    rogue, group = overbiller
    body = {"model": group, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    first = _call(live, live.key_secret, body)
    assert first.status_code == 200
    assert first.headers["x-finops-model"] == rogue
    [row] = live.events(first.headers["x-request-id"])
    # the ledger keeps what was billed, and says it was more than the request allowed
    assert (row.completion_tokens, row.usage_exceeded_bound) == (5000, True)
    # the deployment is cooled at once: the next call goes to the fallback
    second = _call(live, live.key_secret, body)
    assert second.status_code == 200
    assert second.headers["x-finops-model"] == "gpt-4o-mini"
    [ok] = live.events(second.headers["x-request-id"])
    assert ok.usage_exceeded_bound is False
    scrape = httpx.get(f"{live.app.url}/metrics").text
    assert f'finops_gateway_usage_over_bound_total{{model="{rogue}"}} 1.0' in scrape
