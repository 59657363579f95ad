"""The egress rule in the running gateway: a provider whose host is an internal address nobody
listed (here ``127.0.x.y``, while the embedded mode lists only ``127.0.0.1``, ``localhost``,
``::1`` and ``*``) is not contacted when the gateway connects. The client gets a 502
``egress_refused`` naming the rule, in OpenAI's shape, after one attempt; the attempt's ledger
row records it; the log says it once, with the host and no secret; a fallback still serves.

Such a row could only exist from before the save-time rule, or by a DNS name answering an
internal address: the address literal takes the place of a name whose DNS we do not control.
"""

from __future__ import annotations

import random
import time
import uuid

import httpx
import openai
import pytest

from gateway.models import LLMModel, Provider
from tests import factories as f
from tests.openai_schema import assert_valid

pytestmark = pytest.mark.live

MESSAGES = [{"role": "user", "content": "Where does this call go?"}]


@pytest.fixture(scope="module")
def refused(live):
    """A model whose provider points at an unlisted loopback address, and a group that falls
    back from it to a healthy model: (model, group, host)."""
    rng = random.Random()  # noqa: S311 - a unique host, not a secret
    host = f"127.0.{rng.randrange(1, 255)}.{rng.randrange(2, 255)}"
    suffix = uuid.uuid4().hex[:8]
    with live.blocker.unblock():
        # objects.create skips the save-time check, as an older row would have
        provider = Provider.objects.create(
            org=live.org,
            slug=f"egress-{suffix}",
            kind="openai",
            base_url=f"http://{host}:{live.simulator.port}/v1",
            api_key_env="FINOPS_SIM_KEY",
        )
        model = f.make_model(
            live.org, f"egress-{suffix}", provider=provider, upstream_model="gpt-4o-mini"
        )
        mini = LLMModel.objects.get(org=live.org, name="gpt-4o-mini")
        group = f.make_group(
            live.org, f"egress-group-{suffix}", members=[(model, 1)], fallbacks=[mini]
        )
    names = {model.name, group.name}
    deadline = time.monotonic() + 10
    client = openai.OpenAI(base_url=live.base_url, api_key=live.key_secret, max_retries=0)
    while not names <= {m.id for m in client.models.list()}:
        assert time.monotonic() < deadline, f"{names} never became visible"
        time.sleep(0.05)
    return model.name, group.name, host


def post(live, body) -> httpx.Response:
    return httpx.post(
        f"{live.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {live.key_secret}"},
        timeout=30,
    )


def refusal_lines(live, host: str) -> list[str]:
    return [
        line
        for line in live.app.log().splitlines()
        if "provider egress refused" in line and f"host {host} " in line
    ]


def test_an_unlisted_internal_provider_is_refused_at_connect_with_the_rule(live, refused):
    model, _, host = refused
    before = len(refusal_lines(live, host))
    response = post(live, {"model": model, "messages": MESSAGES})
    assert response.status_code == 502, response.text
    body = response.json()
    assert_valid("ErrorResponse", body)
    error = body["error"]
    assert (error["code"], error["type"]) == ("egress_refused", "api_error")
    assert f"host {host} is an internal address (loopback)" in error["message"]
    assert "FINOPS_PROVIDER_HOSTS as written" in error["message"]
    assert response.headers["x-finops-attempts"] == "1"  # no retry: the answer would not change
    [row] = live.events(response.headers["x-request-id"])
    assert (row.status, row.error_code, row.model, row.http_status) == (
        "error",
        "egress_refused",
        model,
        None,
    )
    deadline = time.monotonic() + 5
    while len(refusal_lines(live, host)) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = refusal_lines(live, host)[before:]
    assert len(lines) == 1, lines
    assert "WARNING" in lines[0] and response.headers["x-request-id"] in lines[0]
    assert "sk-sim-test" not in live.app.log()  # the provider's credential is never logged


def test_a_stream_is_refused_the_same_way_before_its_first_byte(live, refused):
    model, _, _ = refused
    response = post(live, {"model": model, "messages": MESSAGES, "stream": True})
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "egress_refused"
    [row] = live.events(response.headers["x-request-id"])
    assert (row.error_code, row.streamed) == ("egress_refused", True)


def test_a_group_falls_back_past_a_refused_deployment(live, refused):
    _, group, _ = refused
    response = post(live, {"model": group, "messages": MESSAGES})
    assert response.status_code == 200, response.text
    assert response.headers["x-finops-model"] == "gpt-4o-mini"
    assert response.headers["x-finops-attempts"] == "2"
    first, second = live.events(response.headers["x-request-id"], count=2)
    assert (first.error_code, second.status) == ("egress_refused", "ok")
