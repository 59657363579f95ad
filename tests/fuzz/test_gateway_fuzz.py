# ruff: noqa: E501  (raw request bodies are kept on one line each)
"""Bad input to the gateway over real HTTP (uvicorn + the upstream simulator, the ``live``
fixture): malformed and hostile bodies, wrong types for every known field, oversized bodies,
broken keys and headers.

Whatever arrives, the gateway answers in time, never with a 5xx for the caller's mistake, and
every error is OpenAI-shaped (``{"error": {"message", "type", "param", "code"}}``). A request
refused before the upstream writes no ledger row; any row a request did write costs exactly
what its tokens cost at the model's price.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from gateway.models import LLMModel, UsageEvent
from tests.fuzz.profiles import fuzz

pytestmark = pytest.mark.live

MTOK = Decimal(1_000_000)
MAX_BODY = 256 * 1024  # FINOPS_MAX_REQUEST_BYTES of the live app (tests/conftest.py)
TIMEOUT = httpx.Timeout(20.0)
FUZZ = fuzz(max_examples=25, suppress=HealthCheck)
GOOD = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}

# Every request sent by this module: (request id, status, went upstream?)
SENT: list[tuple[str, int, bool]] = []


@dataclass(frozen=True)
class Gateway:
    """What the fuzzers need of the ``live`` world (its repr touches no database, so
    hypothesis can print a failing example)."""

    url: str
    port: int
    key_secret: str = field(repr=False)


@pytest.fixture(scope="module")
def gw(live) -> Gateway:
    return Gateway(url=live.app.url, port=live.app.port, key_secret=live.key_secret)


@pytest.fixture(scope="module")
def http(gw):
    with httpx.Client(base_url=gw.url, timeout=TIMEOUT) as client:
        yield client


def post(
    http: httpx.Client,
    live,  # the live world or a Gateway: anything with ``key_secret``
    content: bytes,
    *,
    headers: dict | None = None,
    auth: str | None = "default",
    path: str = "/v1/chat/completions",
) -> httpx.Response:
    hdrs = {"content-type": "application/json"}
    if auth == "default":
        hdrs["authorization"] = f"Bearer {live.key_secret}"
    elif auth is not None:
        hdrs["authorization"] = auth
    hdrs.update(headers or {})
    response = http.post(path, content=content, headers=hdrs)
    SENT.append(
        (
            response.headers.get("x-request-id", ""),
            response.status_code,
            "x-finops-attempts" in response.headers,
        )
    )
    return response


def assert_openai_error(response: httpx.Response, *statuses: int) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)
    assert response.headers.get("x-request-id")
    return error


def assert_answered(response: httpx.Response) -> None:
    """Either served (the value was acceptable) or refused as the caller's mistake."""
    if response.status_code == 200:
        assert response.json()["object"] == "chat.completion"
    else:
        assert_openai_error(response)


def _dumps(body) -> bytes:
    """JSON with integers of any size (orjson refuses those above 64 bits; clients need not)."""
    return json.dumps(body).encode()


# --- malformed bodies ------------------------------------------------------------------------

_valid_bytes = orjson.dumps(GOOD)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
malformed_bodies = st.one_of(
    st.binary(max_size=200),
    st.binary(min_size=1, max_size=50).map(lambda b: b"\xff\xfe" + b),  # not UTF-8
    st.integers(0, len(_valid_bytes) - 1).map(lambda n: _valid_bytes[:n]),  # truncated
    json_values.filter(lambda v: not isinstance(v, dict)).map(orjson.dumps),  # not an object
    json_values.filter(lambda v: isinstance(v, dict)).map(orjson.dumps),  # an object, no model
    st.sampled_from(
        [
            b"[" * 100_000 + b"]" * 100_000,  # deeply nested
            b'{"model": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            b'{"model": "' + b"x" * 200_000 + b'", "messages": [{"role": "user"}]}',
            b'{"model": "gpt-4o-mini", "messages": "' + b"\\u0000" * 10_000 + b'"}',
            b'{"model": "gpt-4o-mini", "model": 1, "messages": []}',
            b'\xef\xbb\xbf{"model": "gpt-4o-mini"}',  # BOM
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e999}',
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
            b"NaN",
            b'{"model": NaN}',
            b"   ",
        ]
    ),
)


@FUZZ
@given(body=malformed_bodies)
def test_malformed_bodies_get_an_openai_error_never_a_5xx(http, gw, body):
    response = post(http, gw, body)
    error = assert_openai_error(response)
    assert "x-finops-attempts" not in response.headers, error


# --- wrong types for every known field -----------------------------------------------------------

WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
FIELDS = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "n",
    "metadata",
    "user",
    "stop",
    "response_format",
    "seed",
    "logit_bias",
]


@FUZZ
@given(field=st.sampled_from(FIELDS), value=WRONG)
def test_wrong_types_for_known_chat_fields_are_served_or_refused_cleanly(http, gw, field, value):
    body = {**GOOD, field: value}
    if field == "stream" and value is True:
        body["stream"] = "yes"  # a stream is not this test's business
    response = post(http, gw, _dumps(body))
    assert_answered(response)


@FUZZ
@given(
    message=st.one_of(
        WRONG,
        st.fixed_dictionaries({"role": WRONG, "content": st.just("hi")}),
        st.fixed_dictionaries({"role": st.just("user"), "content": WRONG}),
        st.fixed_dictionaries(
            {"role": st.just("user"), "content": st.lists(st.fixed_dictionaries({"type": WRONG}))}
        ),
    )
)
def test_wrong_messages_are_served_or_refused_cleanly(http, gw, message):
    response = post(http, gw, _dumps({**GOOD, "messages": [message]}))
    assert_answered(response)


@FUZZ
@given(
    field=st.sampled_from(["model", "input", "encoding_format", "dimensions", "user"]), value=WRONG
)
def test_wrong_types_for_embedding_fields_are_served_or_refused_cleanly(http, gw, field, value):
    body = {"model": "text-embedding-3-small", "input": "hello", field: value}
    response = post(http, gw, _dumps(body), path="/v1/embeddings")
    if response.status_code != 200:
        assert_openai_error(response)


@pytest.mark.parametrize(
    "model",
    ["no-such-model", "GPT-4O-MINI", "router:nope", "x" * 5000, "../admin", "gpt\u00e9"],
)
def test_unknown_models_are_a_404_without_a_ledger_row(http, live, model):
    response = post(http, live, orjson.dumps({**GOOD, "model": model}))
    error = assert_openai_error(response, 400, 404)
    assert error["param"] == "model"
    assert "x-finops-attempts" not in response.headers


def test_a_body_over_the_limit_is_a_413(http, live):
    big = orjson.dumps({**GOOD, "messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]})
    error = assert_openai_error(post(http, live, big), 413)
    assert error["code"] == "request_too_large"
    # refused by size before the key is even looked at
    assert_openai_error(post(http, live, big, auth="Bearer sk-fo-wrong"), 413)


def test_a_body_just_under_the_limit_is_not_refused_for_its_size(http, live):
    pad = MAX_BODY - len(_valid_bytes) - 100
    body = orjson.dumps({**GOOD, "padding": " " * pad})
    assert len(body) <= MAX_BODY
    assert post(http, live, body).status_code == 200


# --- keys and headers ----------------------------------------------------------------------------


def _sendable(value: str) -> bool:
    """What an HTTP client can put in a header value: the server strips surrounding blanks and
    refuses control characters at the protocol level (tested separately below)."""
    return value == value.strip() and all(c.isprintable() for c in value)


auth_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).filter(_sendable),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60).map(
        lambda s: f"Bearer sk-fo-{s}"
    ),
    st.sampled_from(
        [
            "Bearer",
            "bearer sk-fo-",
            "Basic dXNlcjpwYXNz",
            "Bearer sk-fo-" + "A" * 8000,
            "Bearer sk-sim-test",  # the upstream's key is not a gateway key
            "Bearer  sk-fo-x",
        ]
    ),
)


@FUZZ
@given(auth=auth_values)
def test_invalid_keys_are_a_401(http, gw, auth):
    response = post(http, gw, _valid_bytes, auth=auth)
    error = assert_openai_error(response, 401)
    assert error["type"] == "authentication_error"
    assert gw.key_secret not in response.text


def test_a_missing_or_non_ascii_authorization_header_is_a_401(http, live):
    assert_openai_error(post(http, live, _valid_bytes, auth=None), 401)
    for raw in ("Bearer sk-fo-\u00e9\u00e9".encode(), "Bearer sk-fo-\u2603".encode()):
        assert_openai_error(post(http, live, _valid_bytes, auth=raw), 401)


header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50).filter(_sendable),
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1, max_size=30)
    .filter(_sendable)
    .map(lambda s: s.encode("latin-1")),
    st.text(
        st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"]), min_size=1, max_size=20
    )
    .filter(_sendable)
    .map(str.encode),
    st.integers(1, 6000).map(lambda n: "f" * n),
)


@FUZZ
@given(feature=header_values, endpoint=header_values)
def test_odd_attribution_headers_are_served_and_stored_cleanly(http, gw, feature, endpoint):
    # (NUL/CR/LF cannot be sent by a client; they are refused at the protocol level, below)
    response = post(
        http,
        gw,
        _valid_bytes,
        headers={"x-finops-feature": feature, "x-finops-endpoint": endpoint},
    )
    assert response.status_code == 200, response.text[:300]
    for name, value in response.headers.items():
        assert "\n" not in value and "\r" not in value, (name, value)


def _raw_request(live, header_lines: list[bytes], body: bytes = _valid_bytes) -> bytes:
    """Send bytes no well-behaved client would: the server must refuse them, not pass them on."""
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
        + f"authorization: Bearer {live.key_secret}\r\n".encode()
        + b"content-type: application/json\r\nconnection: close\r\n"
        + b"".join(line + b"\r\n" for line in header_lines)
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", live.app.port), timeout=20) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "line",
    [
        b"x-finops-feature: a\rset-cookie: pwned=1",
        b"x-finops-feature: a\x00b",
        b"x-finops-feature: a\x01b\x7f",
        b"x-finops-endpoint: /a\rx-finops-feature: b",
        b"x-finops-feature : spaced-name",
        b"x-finops-feature\xff: x",
    ],
)
def test_header_injection_is_refused_at_the_protocol_level(live, line):
    raw = _raw_request(live, [line])
    status_line, _, rest = raw.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 4"), raw[:300]
    head = rest.split(b"\r\n\r\n", 1)[0].lower()
    assert b"pwned" not in head and b"set-cookie" not in head


def test_a_header_split_by_crlf_is_just_another_header(live):
    """``a\\r\\nset-cookie: x`` on the wire is two headers; the second is ignored, never echoed,
    and the feature label is only ``a``."""
    raw = _raw_request(live, [b"x-finops-feature: crlf-probe", b"set-cookie: pwned=1"])
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    assert b"pwned" not in head.lower()
    request_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-request-id:")
    )
    [row] = live.events(request_id)
    assert row.feature == "crlf-probe"


def test_control_characters_in_metadata_never_reach_the_ledger(http, live):
    response = post(
        http,
        live,
        orjson.dumps(
            {
                **GOOD,
                "user": "eve\r\nX-Injected: 1\x1b[31m",
                "metadata": {"feature": "meta\nfeature", "endpoint": "/e\r\n\x00p"},
            }
        ),
    )
    assert response.status_code == 200, response.text
    [row] = live.events(response.headers["x-request-id"])
    for label in (row.feature, row.endpoint, row.end_user):
        assert label.isprintable(), repr(label)
    assert len(row.feature) <= 64 and len(row.endpoint) <= 200 and len(row.end_user) <= 200


# --- the ledger ---------------------------------------------------------------------------------


def _expected_cost(row: UsageEvent, prices: dict) -> Decimal:
    price = prices[row.model]
    inp = price.input_usd_per_mtok
    cached = price.cached_input_usd_per_mtok if price.cached_input_usd_per_mtok is not None else inp
    write = price.cache_write_usd_per_mtok if price.cache_write_usd_per_mtok is not None else inp
    uncached = row.prompt_tokens - row.cached_tokens - row.cache_write_tokens
    return (
        uncached * inp
        + row.cached_tokens * cached
        + row.cache_write_tokens * write
        + row.completion_tokens * price.output_usd_per_mtok
    ) / MTOK


def test_zz_no_refused_request_wrote_a_row_and_every_row_costs_its_tokens(http, live):
    """Runs last in this module: checks every request the fuzzers above sent."""
    assert len(SENT) > 100
    # the ledger is one FIFO queue: once this request's row is stored, all earlier ones are
    marker = post(http, live, _valid_bytes)
    assert live.events(marker.headers["x-request-id"])
    with live.blocker.unblock():
        prices = {
            m.name: m.prices.order_by("-effective_from").first()
            for m in LLMModel.objects.filter(org=live.org)
        }
        ids = [rid for rid, _, _ in SENT if rid]
        rows = list(UsageEvent.objects.filter(request_id__in=ids))
    by_request: dict[str, list[UsageEvent]] = {}
    for row in rows:
        by_request.setdefault(row.request_id, []).append(row)
    refused = [rid for rid, _, upstream in SENT if rid and not upstream]
    assert refused, "no request was refused before the upstream"
    assert not [rid for rid in refused if rid in by_request]
    served = [rid for rid, status, _ in SENT if status == 200]
    assert served and all(rid in by_request for rid in served)
    for row in rows:
        assert row.org_id == live.org.pk
        assert row.cost == _expected_cost(row, prices), (row.request_id, row.model, row.cost)
        assert row.cost == (
            row.input_cost + row.cached_input_cost + row.cache_write_cost + row.output_cost
        )
        if row.status != "ok":
            assert row.completion_tokens == 0 or row.streamed


def test_sent_requests_are_json_serialisable_for_the_report():
    # keeps SENT importable/inspectable when a run fails half-way (debug aid)
    json.dumps(SENT)
