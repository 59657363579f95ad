"""The gateway over real HTTP: uvicorn + the upstream simulator on loopback, the official
``openai`` SDK as the client, the ledger checked row by row."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import httpx
import openai
import orjson
import pytest
from django.utils import timezone

from gateway.models import UsageEvent
from teams.models import Feature
from teams.services import key_mint, key_revoke
from tests.openai_schema import assert_valid

pytestmark = pytest.mark.live

MTOK = Decimal(1_000_000)


def client(live, key: str | None = None, **kw) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=live.base_url, api_key=key or live.key_secret, max_retries=0, **kw
    )


def expected_cost(
    prompt: int,
    completion: int,
    in_mtok: str,
    out_mtok: str,
    cached: int = 0,
    cached_mtok: str | None = None,
) -> Decimal:
    cached_price = Decimal(cached_mtok if cached_mtok is not None else in_mtok)
    return (
        (prompt - cached) * Decimal(in_mtok)
        + cached * cached_price
        + completion * Decimal(out_mtok)
    ) / MTOK


def raw_post(
    live, path: str, body, *, key: str | None = None, headers: dict | None = None
) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
    hdrs = {"authorization": f"Bearer {key or live.key_secret}", "content-type": "application/json"}
    hdrs.update(headers or {})
    return httpx.post(f"{live.app.url}{path}", content=content, headers=hdrs, timeout=30)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert_valid("ErrorResponse", body)
    assert body["error"]["code"] == code
    assert response.headers["x-request-id"]
    return body


MESSAGES = [{"role": "user", "content": "Summarise the quarterly spend report in one line."}]


def test_chat_completion_is_metered_to_the_cent(live):
    raw = client(live).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        user="alice",
        extra_headers={"X-FinOps-Feature": "summarize", "X-FinOps-Endpoint": "/reports/summary"},
    )
    completion = raw.parse()
    assert_valid("CreateChatCompletionResponse", orjson.loads(raw.http_response.content))
    usage = completion.usage
    cost = expected_cost(usage.prompt_tokens, usage.completion_tokens, "0.15", "0.60")
    assert Decimal(raw.headers["x-finops-cost"]) == cost
    assert "e" not in raw.headers["x-finops-cost"].lower()
    assert raw.headers["x-finops-model"] == "gpt-4o-mini"
    assert raw.headers["x-finops-attempts"] == "1"
    [row] = live.events(raw.headers["x-request-id"])
    assert row.status == "ok"
    assert (row.prompt_tokens, row.completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert row.cost == cost
    assert row.input_cost + row.output_cost == cost
    assert (row.feature, row.endpoint, row.end_user) == ("summarize", "/reports/summary", "alice")
    assert (row.org_id, row.team_id, row.key_id) == (live.org.pk, live.team.pk, live.key.pk)
    assert row.provider == "sim" and row.model == "gpt-4o-mini" and not row.estimated


def test_upstream_receives_the_upstream_model_name_and_unknown_fields(live):
    client(live).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_body={"custom_field": {"x": 1}}, temperature=0.2
    )
    last = httpx.get(
        f"{live.simulator.url}/_sim/last", params={"path": "/v1/chat/completions"}
    ).json()
    body = last["body"] if isinstance(last.get("body"), dict) else orjson.loads(last["body"])
    assert body["model"] == "gpt-4o"
    assert body["custom_field"] == {"x": 1}
    assert body["temperature"] == 0.2


def test_stream_with_usage_carries_the_cost_in_its_final_chunk(live):
    with httpx.stream(
        "POST",
        f"{live.base_url}/chat/completions",
        headers={"authorization": f"Bearer {live.key_secret}"},
        json={
            "model": "gpt-4o",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    final = chunks[-1]
    assert final["choices"] == []
    usage = final["usage"]
    cost = expected_cost(usage["prompt_tokens"], usage["completion_tokens"], "2.50", "10.00")
    assert Decimal(str(usage["cost"])) == cost
    [row] = live.events(request_id)
    assert row.streamed and row.status == "ok" and row.cost == cost
    assert row.first_byte_at is not None


def test_stream_without_usage_option_strips_the_usage_chunk_but_still_meters(live):
    stream = client(live).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    request_id = stream.headers["x-request-id"]
    chunks = list(stream.parse())
    assert chunks and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [row] = live.events(request_id)
    assert row.completion_tokens > 0 and row.cost > 0 and not row.estimated


def test_sdk_stream_with_include_usage(live):
    stream = client(live).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_embeddings_are_metered(live):
    raw = client(live).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["first text", "second text"], encoding_format="float"
    )
    result = raw.parse()
    assert_valid("CreateEmbeddingResponse", orjson.loads(raw.http_response.content))
    assert len(result.data) == 2
    cost = expected_cost(result.usage.prompt_tokens, 0, "0.02", "0")
    assert Decimal(raw.headers["x-finops-cost"]) == cost
    [row] = live.events(raw.headers["x-request-id"])
    assert row.api == "embeddings" and row.cost == cost


def test_model_list_shows_models_groups_and_routers(live):
    raw = client(live).models.with_raw_response.list()
    assert_valid("ListModelsResponse", orjson.loads(raw.http_response.content))
    ids = {m.id for m in raw.parse()}
    assert {"gpt-4o", "gpt-4o-mini", "chat-pool", "router:smart"} <= ids


def test_model_list_respects_the_keys_allowed_models(live):
    with live.blocker.unblock():
        minted = key_mint(team=live.team, name="restricted", allowed_models=["gpt-4o-mini"])
    ids = {m.id for m in client(live, minted.secret).models.list()}
    assert ids == {"gpt-4o-mini"}


def test_group_falls_back_and_every_attempt_is_in_the_ledger(live):
    raw = client(live).chat.completions.with_raw_response.create(
        model="failover", messages=MESSAGES
    )
    # the failing member is tried and retried once (FINOPS_RETRIES=1), then the fallback
    assert raw.headers["x-finops-attempts"] == "3"
    assert raw.headers["x-finops-model"] == "gpt-4o-mini"
    first, retry, last = live.events(raw.headers["x-request-id"], count=3)
    for row in (first, retry):
        assert (row.status, row.http_status, row.model) == ("error", 503, "failing-model")
        assert row.cost == 0
    assert (last.status, last.model, last.attempt) == ("ok", "gpt-4o-mini", 3)
    assert Decimal(raw.headers["x-finops-cost"]) == last.cost


def test_unreachable_upstream_gives_502_upstream_error(live):
    response = raw_post(live, "/v1/chat/completions", {"model": "broken", "messages": MESSAGES})
    assert_error(response, 502, "upstream_error")
    assert response.headers["x-finops-attempts"] == "2"  # one retry
    rows = live.events(response.headers["x-request-id"], count=2)
    assert [(r.status, r.error_code, r.cost) for r in rows] == [
        ("error", "upstream_connection_error", 0)
    ] * 2


def test_slow_upstream_gives_504_upstream_timeout(live):
    response = raw_post(live, "/v1/chat/completions", {"model": "slow-model", "messages": MESSAGES})
    assert_error(response, 504, "upstream_timeout")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        ({"messages": MESSAGES}, 400, "missing_field"),
        ({"model": "gpt-4o-mini"}, 400, "missing_field"),
        ({"model": 42, "messages": MESSAGES}, 400, "invalid_value"),
        ({"model": "gpt-4o-mini", "messages": "hi"}, 400, "invalid_value"),
        ({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": "yes"}, 400, "invalid_value"),
        ({"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": -1}, 400, "invalid_value"),
        ({"model": "gpt-4o-mini", "messages": MESSAGES, "n": 129}, 400, "invalid_value"),
        ({"model": "gpt-4o-mini", "messages": MESSAGES, "n": 0}, 400, "invalid_value"),
        ({"model": "gpt-4o-mini", "messages": MESSAGES, "n": "3"}, 400, "invalid_value"),
        ({"model": "text-embedding-3-small", "messages": MESSAGES}, 400, "invalid_value"),
        ({"model": "no-such-model", "messages": MESSAGES}, 404, "model_not_found"),
        ({"model": "router:nope", "messages": MESSAGES}, 404, "model_not_found"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(live, body, status, code):
    assert_error(raw_post(live, "/v1/chat/completions", body), status, code)


def test_embeddings_without_input_is_missing_field(live):
    assert_error(
        raw_post(live, "/v1/embeddings", {"model": "text-embedding-3-small"}), 400, "missing_field"
    )


def test_request_too_large_is_413(live):
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 300_000}]}
    assert_error(raw_post(live, "/v1/chat/completions", big), 413, "request_too_large")


def test_sdk_raises_typed_errors(live):
    with pytest.raises(openai.AuthenticationError) as exc:
        client(live, "sk-fo-" + "A" * 52).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    assert exc.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as exc:
        client(live).chat.completions.create(model="nope", messages=MESSAGES)
    assert exc.value.code == "model_not_found"


def test_missing_and_malformed_keys_are_invalid_api_key(live):
    response = httpx.post(
        f"{live.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
    )
    assert_error(response, 401, "invalid_api_key")
    assert_error(
        raw_post(live, "/v1/chat/completions", {}, key="not-a-key"), 401, "invalid_api_key"
    )


def test_wrong_secret_with_a_real_lookup_prefix_is_rejected(live):
    forged = live.key_secret[:-4] + ("AAAA" if not live.key_secret.endswith("AAAA") else "BBBB")
    assert_error(
        raw_post(
            live, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES}, key=forged
        ),
        401,
        "invalid_api_key",
    )


def test_model_not_allowed_for_the_key(live):
    with live.blocker.unblock():
        minted = key_mint(team=live.team, name="mini-only", allowed_models=["gpt-4o-mini"])
    response = raw_post(
        live, "/v1/chat/completions", {"model": "gpt-4o", "messages": MESSAGES}, key=minted.secret
    )
    body = assert_error(response, 403, "model_not_allowed")
    assert body["error"]["type"] == "permission_error"


def test_expired_key_is_refused(live):
    with live.blocker.unblock():
        minted = key_mint(
            team=live.team, name="expired", expires_at=timezone.now() - timedelta(minutes=1)
        )
    assert_error(
        raw_post(
            live,
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": MESSAGES},
            key=minted.secret,
        ),
        401,
        "key_expired",
    )


def test_key_minted_while_running_works_and_revoked_key_is_refused_within_a_second(live):
    with live.blocker.unblock():
        minted = key_mint(team=live.team, name="fresh")
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert raw_post(live, "/v1/chat/completions", body, key=minted.secret).status_code == 200
    with live.blocker.unblock():
        key_revoke(key=minted.key)
    revoked_at = time.monotonic()
    while True:
        response = raw_post(live, "/v1/chat/completions", body, key=minted.secret)
        if response.status_code == 401:
            break
        assert time.monotonic() - revoked_at < 1.0, "revoked key still accepted after a second"
        time.sleep(0.05)
    assert_error(response, 401, "key_revoked")


def test_unknown_feature_is_recorded_and_created_unclaimed(live):
    raw = client(live).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, metadata={"feature": "Brand New Feature"}
    )
    [row] = live.events(raw.headers["x-request-id"])
    assert row.feature == "brand-new-feature"
    deadline = time.monotonic() + 10
    with live.blocker.unblock():
        while not Feature.objects.filter(team=live.team, slug="brand-new-feature").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert not Feature.objects.get(team=live.team, slug="brand-new-feature").claimed


def test_client_disconnect_mid_stream_is_still_metered(live):
    with httpx.stream(
        "POST",
        f"{live.base_url}/chat/completions",
        headers={"authorization": f"Bearer {live.key_secret}"},
        json={"model": "drip-model", "messages": MESSAGES, "stream": True},
        timeout=30,
    ) as response:
        request_id = response.headers["x-request-id"]
        received = 0
        for line in response.iter_lines():
            if line.startswith("data: "):
                received += 1
            if received >= 4:
                break
    [row] = live.events(request_id, timeout=15)
    assert row.status == "client_abort"
    assert row.completion_tokens > 0 and row.cost > 0
    assert row.estimated


def test_healthz_and_readyz(live):
    assert httpx.get(f"{live.app.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{live.app.url}/readyz").status_code == 200


def test_no_secret_in_the_server_log(live):
    client(live).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert live.key_secret not in live.app.log()
    with live.blocker.unblock():
        assert UsageEvent.objects.filter(org_id=live.org.pk, status="ok").exists()


def test_a_body_that_drips_in_too_slowly_gets_a_408_in_openais_shape(live):
    """Slowloris on the body: the headers promise 100 bytes, 10 arrive, then nothing. The live
    app allows 2 s (FINOPS_BODY_READ_SECONDS) before answering 408 instead of waiting forever."""
    import socket

    with socket.create_connection(("127.0.0.1", live.app.port), timeout=15) as conn:
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {live.key_secret}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            + b'{"model": '
        )
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    error = orjson.loads(body)["error"]
    assert (error["code"], error["type"]) == ("request_timeout", "invalid_request_error")
