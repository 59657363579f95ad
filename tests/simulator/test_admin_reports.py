"""The organisation usage and cost reports over real HTTP: calls made with the official SDKs (and
Azure's path over httpx) are billed with exactly the usage they were answered with, then read
back from OpenAI's ``/v1/organization/usage/*`` and ``/costs`` (the ``openai`` SDK's admin
client, and httpx) and Anthropic's ``usage_report/messages`` and ``cost_report`` (httpx: the
``anthropic`` SDK has no client for them); bucket widths, pages, filters, auth, bad
parameters, injected history and reset.

The trimmed OpenAI schemas of ``tests/data`` do not hold ``UsageResponse``, so the OpenAI bodies
are checked field by field here (and against the schema too when ``OPENAI_OPENAPI_PATH`` points
at the full description)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import time
from decimal import Decimal

import httpx
import openai
import pytest

from simulator import SimConfig
from simulator.billing import DEFAULT_PRICES, load_prices
from simulator.cli import add_arguments, config_from_options
from tests.openai_schema import assert_valid
from tests.simulator.conftest import threaded_sim

ADMIN = "sk-admin-test"
OPENAI_ADMIN = {"authorization": f"Bearer {ADMIN}"}
ANTHROPIC_ADMIN = {"x-api-key": ADMIN, "anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "hello there"}]
DAY = 86_400
MAR_1 = 1_740_787_200  # 2025-03-01T00:00:00Z
M = Decimal(1_000_000)
COMPLETION_FIELDS = {
    "object",
    "input_tokens",
    "input_cached_tokens",
    "input_cache_write_tokens",
    "input_uncached_tokens",
    "output_tokens",
    "input_text_tokens",
    "output_text_tokens",
    "input_cached_text_tokens",
    "input_audio_tokens",
    "input_cached_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "input_cached_image_tokens",
    "output_image_tokens",
    "num_model_requests",
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "batch",
    "service_tier",
}


def key_id(key: str, prefix: str = "key_") -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:16]


def price(model: str, field: str) -> Decimal:
    entry = DEFAULT_PRICES[model]
    return Decimal(entry.get(field, entry["input"]))


@pytest.fixture(scope="module")
def sim():
    with threaded_sim(SimConfig(admin_key=ADMIN)) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(request):
    if "sim" in request.fixturenames:
        sim = request.getfixturevalue("sim")
        assert httpx.post(f"{sim.url}/_sim/reset").status_code == 200


def openai_report(sim, path: str, **params) -> dict:
    response = httpx.get(f"{sim.url}/v1/organization/{path}", params=params, headers=OPENAI_ADMIN)
    assert response.status_code == 200, response.text
    body = json.loads(response.text, parse_float=Decimal)  # costs stay exact
    check_openai_page(body)
    return body


def anthropic_report(sim, path: str, **params) -> dict:
    response = httpx.get(
        f"{sim.url}/v1/organizations/{path}", params=params, headers=ANTHROPIC_ADMIN
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data", "has_more", "next_page"}
    for bucket in body["data"]:
        assert set(bucket) == {"starting_at", "ending_at", "results"}
    return body


def check_openai_page(body: dict) -> None:
    assert body["object"] == "page" and set(body) == {"object", "data", "has_more", "next_page"}
    for bucket in body["data"]:
        assert bucket["object"] == "bucket"
        assert set(bucket) == {"object", "start_time", "end_time", "results"}
        for result in bucket["results"]:
            kind = result["object"]
            if kind == "organization.usage.completions.result":
                assert set(result) == COMPLETION_FIELDS
                assert result["input_tokens"] == (
                    result["input_uncached_tokens"]
                    + result["input_cached_tokens"]
                    + result["input_cache_write_tokens"]
                )
            elif kind == "organization.usage.embeddings.result":
                assert set(result) == {
                    "object",
                    "input_tokens",
                    "num_model_requests",
                    "project_id",
                    "user_id",
                    "api_key_id",
                    "model",
                }
            else:
                assert kind == "organization.costs.result"
                assert result["amount"]["currency"] == "usd"
                assert isinstance(result["amount"]["value"], Decimal | int)
    with contextlib.suppress(KeyError):  # the full description, when OPENAI_OPENAPI_PATH names it
        assert_valid("UsageResponse", json.loads(json.dumps(body, default=float)))


def results(body: dict) -> list[dict]:
    return [r for bucket in body["data"] for r in bucket["results"]]


def by(rows: list[dict], *fields: str) -> dict:
    """Results keyed by their grouped fields, summed over buckets (a test may cross a minute)."""
    out: dict = {}
    for row in rows:
        key = tuple(row[f] for f in fields)
        if key not in out:
            out[key] = dict(row)
            continue
        for name, value in row.items():
            if isinstance(value, int | Decimal) and not isinstance(value, bool):
                out[key][name] += value
    return out


def inject(sim, records: list[dict]) -> httpx.Response:
    return httpx.post(f"{sim.url}/_sim/usage", json=records)


def recent() -> int:
    return int(time.time()) - 3600


def today() -> str:
    return time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 3600))


# --- served calls ----------------------------------------------------------------------------


def test_served_openai_calls_are_reported_per_model_key_and_project(sim):
    projected = sim.openai(project="proj_a")
    plain = sim.openai()
    chat = projected.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    chunks = list(
        projected.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = chunks[-1].usage
    unreported = list(
        projected.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    )
    assert all(c.usage is None for c in unreported)  # billed all the same
    response = plain.responses.create(model="gpt-4o-mini", input="hello there")
    legacy = plain.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi")
    azure = httpx.post(
        f"{sim.url}/openai/deployments/gpt4o-deploy/chat/completions?api-version=2024-10-21",
        json={"messages": HELLO},
        headers={"api-key": "azure-key"},
    ).json()["usage"]

    body = openai_report(
        sim,
        "usage/completions",
        start_time=recent(),
        bucket_width="1h",
        **{"group_by[]": ["model", "api_key_id", "project_id"]},
    )
    rows = by(results(body), "model", "api_key_id", "project_id")
    mini_a = rows.pop(("gpt-4o-mini", key_id("sk-test"), "proj_a"))
    assert mini_a["num_model_requests"] == 3
    assert mini_a["input_tokens"] == chat.usage.prompt_tokens + 2 * streamed.prompt_tokens
    assert mini_a["output_tokens"] == chat.usage.completion_tokens + 2 * streamed.completion_tokens
    mini = rows.pop(("gpt-4o-mini", key_id("sk-test"), "proj_default"))
    assert (mini["input_tokens"], mini["output_tokens"], mini["num_model_requests"]) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
        1,
    )
    instruct = rows.pop(("gpt-3.5-turbo-instruct", key_id("sk-test"), "proj_default"))
    assert (instruct["input_tokens"], instruct["output_tokens"]) == (
        legacy.usage.prompt_tokens,
        legacy.usage.completion_tokens,
    )
    deployed = rows.pop(("gpt4o-deploy", key_id("azure-key"), "proj_default"))
    assert (deployed["input_tokens"], deployed["output_tokens"]) == (
        azure["prompt_tokens"],
        azure["completion_tokens"],
    )
    assert rows == {}
    assert all(r["user_id"] is None and r["batch"] is None for r in results(body))


def test_embeddings_usage_counts_every_input(sim):
    client = sim.openai()
    one = client.embeddings.create(model="text-embedding-3-small", input="abc def ghi")
    many = client.embeddings.create(model="text-embedding-3-small", input=["a", "bcdefgh", "xy"])
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # not an embedding
    body = openai_report(sim, "usage/embeddings", start_time=recent(), group_by="model")
    [row] = by(results(body), "model").values()
    assert row["model"] == "text-embedding-3-small"
    assert row["input_tokens"] == one.usage.prompt_tokens + many.usage.prompt_tokens
    assert row["num_model_requests"] == 2
    assert row["api_key_id"] is None and row["project_id"] is None  # not grouped


def test_cached_and_unreported_tokens_are_billed_as_answered(sim):
    client = sim.openai()
    cached = client.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-sim-cached-tokens": "4"}
    )
    silent = client.with_options(default_headers={"x-sim-no-usage": "1"})
    raw = silent.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert "usage" not in raw.http_response.json()
    rows = by(
        results(openai_report(sim, "usage/completions", start_time=recent(), group_by="model")),
        "model",
    )
    mini = rows["gpt-4o-mini",]
    assert mini["input_cached_tokens"] == mini["input_cached_text_tokens"] == 4
    assert (
        mini["input_uncached_tokens"] == mini["input_text_tokens"] == cached.usage.prompt_tokens - 4
    )
    assert mini["input_tokens"] == cached.usage.prompt_tokens
    plain = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert rows["gpt-4o",]["input_tokens"] == plain.usage.prompt_tokens
    assert rows["gpt-4o",]["output_tokens"] == plain.usage.completion_tokens


def test_costs_are_exact_decimals_per_line_item(sim):
    client = sim.openai(project="proj_a")
    chat = client.chat.completions.create(
        model="gpt-4o-mini-2024-07-18", messages=HELLO, extra_headers={"x-sim-cached-tokens": "2"}
    )
    embedded = client.embeddings.create(model="text-embedding-3-small", input="abc def ghi")
    body = openai_report(
        sim, "costs", start_time=recent(), group_by=["line_item", "project_id", "api_key_id"]
    )
    rows = by(results(body), "line_item")
    model = "gpt-4o-mini-2024-07-18"  # priced as gpt-4o-mini: the date suffix is dropped
    uncached = chat.usage.prompt_tokens - 2
    expected = {
        f"{model}, input_tokens": (uncached, uncached * price("gpt-4o-mini", "input") / M),
        f"{model}, input_cached_tokens": (2, 2 * price("gpt-4o-mini", "cached_input") / M),
        f"{model}, output_tokens": (
            chat.usage.completion_tokens,
            chat.usage.completion_tokens * price("gpt-4o-mini", "output") / M,
        ),
        "text-embedding-3-small, input_tokens": (
            embedded.usage.prompt_tokens,
            embedded.usage.prompt_tokens * price("text-embedding-3-small", "input") / M,
        ),
    }
    assert {k: (r["quantity"], r["amount"]["value"]) for (k,), r in rows.items()} == expected
    assert all(r["quantity_unit"] == "tokens" for r in results(body))
    assert {r["project_id"] for r in results(body)} == {"proj_a"}
    assert {r["api_key_id"] for r in results(body)} == {key_id("sk-test")}
    total = results(openai_report(sim, "costs", start_time=recent()))
    assert sum(r["amount"]["value"] for r in total) == sum(v for _, v in expected.values())
    assert all(r["line_item"] is None and r["quantity"] is None for r in total)


def test_official_sdk_admin_client_reads_the_reports(sim):
    sim.openai().chat.completions.create(model="gpt-4o", messages=HELLO)
    admin = openai.OpenAI(
        base_url=f"{sim.url}/v1", api_key="unused", admin_api_key=ADMIN, max_retries=0
    )
    usage = admin.admin.organization.usage.completions(
        start_time=recent(), group_by=["model", "project_id"]
    )
    [row] = [r for bucket in usage.data for r in bucket.results]
    assert (row.model, row.project_id, row.num_model_requests) == ("gpt-4o", "proj_default", 1)
    query = httpx.get(
        f"{sim.url}/_sim/last", params={"path": "/v1/organization/usage/completions"}
    ).json()["query"]
    assert "group_by%5B%5D=model" in query  # the SDK sends the bracketed form
    costs = admin.admin.organization.usage.costs(start_time=recent(), group_by=["line_item"])
    items = {r.line_item for bucket in costs.data for r in bucket.results}
    assert items == {"gpt-4o, input_tokens", "gpt-4o, output_tokens"}


def test_anthropic_messages_with_cache_tokens_are_reported_in_tokens_and_cents(sim):
    client = sim.anthropic()
    cache = {"x-sim-cache-read-tokens": "3", "x-sim-cache-write-tokens": "2"}
    first = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "hello there, how are you today"}],
        extra_headers=cache,
    )
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=HELLO
    ) as stream:
        streamed = stream.get_final_message()
    client.messages.count_tokens(model="claude-sonnet-4-5", messages=HELLO)  # not billed
    usage = [first.usage, streamed.usage]
    body = anthropic_report(
        sim, "usage_report/messages", starting_at=today(), **{"group_by[]": ["model", "api_key_id"]}
    )
    [row] = results(body)
    assert row == {
        "uncached_input_tokens": sum(u.input_tokens for u in usage),
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 2},
        "cache_read_input_tokens": 3,
        "output_tokens": sum(u.output_tokens for u in usage),
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": key_id("sk-ant-test", "apikey_"),
        "workspace_id": None,
        "model": "claude-sonnet-4-5",
        "service_tier": None,
        "context_window": None,
    }
    costs = anthropic_report(
        sim, "cost_report", starting_at=today(), **{"group_by[]": "description"}
    )
    lines = {r["token_type"]: r for r in results(costs)}
    rates = DEFAULT_PRICES["claude-sonnet-4-5"]
    tokens = {
        "uncached_input_tokens": (row["uncached_input_tokens"], rates["input"], "Input Tokens"),
        "cache_read_input_tokens": (3, rates["cached_input"], "Input Tokens, Cache Hit"),
        "cache_creation.ephemeral_5m_input_tokens": (
            2,
            rates["cache_write"],
            "Input Tokens, Cache Write",
        ),
        "output_tokens": (row["output_tokens"], rates["output"], "Output Tokens"),
    }
    assert set(lines) == set(tokens)
    cents = Decimal(0)
    for token_type, (count, rate, label) in tokens.items():
        line = lines[token_type]
        assert Decimal(line["amount"]) == count * Decimal(rate) / M * 100
        assert line["description"] == f"Claude Sonnet 4.5 Usage - {label}"
        assert (line["currency"], line["cost_type"], line["model"]) == (
            "USD",
            "tokens",
            "claude-sonnet-4-5",
        )
        assert (line["service_tier"], line["context_window"], line["workspace_id"]) == (
            "standard",
            "0-200k",
            None,
        )
        cents += Decimal(line["amount"])
    [total] = results(anthropic_report(sim, "cost_report", starting_at=today()))
    assert Decimal(total["amount"]) == cents
    assert total["description"] is None and total["token_type"] is None


def test_abandoned_stream_is_billed_in_full(sim):
    client = sim.openai().with_options(
        default_headers={"x-sim-chunk-delay-ms": "50", "x-sim-chunks": "20"}
    )
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    next(iter(stream))
    stream.close()
    whole = sim.openai().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the stream is billed once the simulator notices
        rows = results(openai_report(sim, "usage/completions", start_time=recent()))
        if sum(r["num_model_requests"] for r in rows) == 2:
            break
        time.sleep(0.05)
    assert sum(r["num_model_requests"] for r in rows) == 2
    assert sum(r["output_tokens"] for r in rows) == 2 * whole.usage.completion_tokens


def test_errors_counts_models_and_rejected_calls_are_not_billed(sim):
    client = sim.openai()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-sim-status": "500"}
        )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=[])
    client.models.list()
    sim.anthropic().messages.count_tokens(model="claude-sonnet-4-5", messages=HELLO)
    assert (
        httpx.post(f"{sim.url}/v1/embeddings", json={"model": "m", "input": "x"}).status_code == 401
    )
    for path in ("usage/completions", "usage/embeddings", "costs"):
        assert results(openai_report(sim, path, start_time=recent())) == []
    assert results(anthropic_report(sim, "usage_report/messages", starting_at=today())) == []


def test_dropped_connections_and_cut_streams_are_not_billed_broken_bodies_are():
    with threaded_sim(SimConfig(cut_stream_after=1)) as cut:
        with (
            httpx.stream(
                "POST",
                f"{cut.url}/v1/chat/completions",
                json={"model": "gpt-4o", "messages": HELLO, "stream": True},
                headers={"authorization": "Bearer k"},
            ) as response,
            pytest.raises(httpx.HTTPError),
        ):
            response.read()
        cut.openai().chat.completions.create(model="gpt-4o", messages=HELLO)  # a JSON answer
        rows = results(openai_report(cut, "usage/completions", start_time=recent()))
        assert sum(r["num_model_requests"] for r in rows) == 1
    with threaded_sim(SimConfig(malformed_rate=1.0)) as broken:  # served, unreadable: billed
        answer = httpx.post(
            f"{broken.url}/v1/embeddings",
            json={"model": "text-embedding-3-small", "input": "abcd"},
            headers={"authorization": "Bearer k"},
        )
        assert answer.status_code == 200
        rows = results(openai_report(broken, "usage/embeddings", start_time=recent()))
        assert [(r["input_tokens"], r["num_model_requests"]) for r in rows] == [(1, 1)]
    with threaded_sim(SimConfig(reset_rate=1.0)) as dropping:
        with pytest.raises(openai.APIConnectionError):
            dropping.openai().chat.completions.create(model="gpt-4o", messages=HELLO)
        assert results(openai_report(dropping, "usage/completions", start_time=recent())) == []


# --- buckets, pages, filters (injected history) ----------------------------------------------


def test_bucket_widths_return_every_bucket_of_the_range(sim):
    base = {"model": "gpt-4o", "api_key": "sk-test", "input_tokens": 10, "output_tokens": 1}
    assert inject(
        sim,
        [
            {**base, "at": "2025-03-01T10:00:30Z"},
            {**base, "at": MAR_1 + 10 * 3600 + 59},  # the same minute, as unix seconds
            {**base, "at": "2025-03-01T10:02:00+00:00"},
            {**base, "at": "2025-03-01T12:15:00Z", "requests": 3},
            {**base, "at": "2025-03-03T00:00:00Z"},
        ],
    ).json() == {"status": "ok", "recorded": 5}
    start = MAR_1 + 10 * 3600

    def counts(width: str, **params) -> list[tuple[int, int]]:
        body = openai_report(sim, "usage/completions", bucket_width=width, **params)
        out = []
        for bucket in body["data"]:
            assert (
                bucket["end_time"] - bucket["start_time"]
                == {"1m": 60, "1h": 3600, "1d": DAY}[width]
            )
            out.append(
                (bucket["start_time"], sum(r["num_model_requests"] for r in bucket["results"]))
            )
        return out

    assert counts("1m", start_time=start + 5, end_time=start + 180) == [
        (start, 2),
        (start + 60, 0),
        (start + 120, 1),
    ]
    assert counts("1h", start_time=start, end_time=start + 4 * 3600) == [
        (start, 3),
        (start + 3600, 0),
        (start + 7200, 3),
        (start + 3 * 3600, 0),
    ]
    assert counts("1d", start_time=MAR_1 + 5, end_time=MAR_1 + 3 * DAY) == [
        (MAR_1, 6),
        (MAR_1 + DAY, 0),
        (MAR_1 + 2 * DAY, 1),
    ]
    daily = anthropic_report(
        sim, "usage_report/messages", starting_at="2025-03-01T00:00:00Z", limit=3
    )
    assert [b["starting_at"] for b in daily["data"]] == [
        "2025-03-01T00:00:00Z",
        "2025-03-02T00:00:00Z",
        "2025-03-03T00:00:00Z",
    ]
    assert all(b["results"] == [] for b in daily["data"])  # OpenAI usage is not Anthropic's


def test_pages_walk_every_bucket_once(sim):
    inject(
        sim,
        [{"at": MAR_1 + d * DAY + 60, "model": "gpt-4o", "input_tokens": d + 1} for d in range(10)],
    )
    seen, cursor, pages = [], None, 0
    while True:
        params = {"start_time": MAR_1, "end_time": MAR_1 + 10 * DAY, "limit": 3}
        body = openai_report(
            sim, "usage/completions", **params, **({"page": cursor} if cursor else {})
        )
        pages += 1
        seen += [
            (b["start_time"], sum(r["input_tokens"] for r in b["results"])) for b in body["data"]
        ]
        if not body["has_more"]:
            assert body["next_page"] is None
            break
        cursor = body["next_page"]
        assert cursor.startswith("page_")
    assert pages == 4
    assert seen == [(MAR_1 + d * DAY, d + 1) for d in range(10)]
    workspaces = [
        {
            "at": MAR_1 + d * DAY,
            "endpoint": "messages",
            "model": "claude-haiku-4-5",
            "output_tokens": 1,
        }
        for d in range(5)
    ]
    inject(sim, workspaces)
    days, cursor = [], None
    while True:
        params = {"starting_at": "2025-03-01T00:00:00Z", "ending_at": "2025-03-06T00:00:00Z"}
        if cursor:
            params["page"] = cursor
        body = anthropic_report(sim, "cost_report", limit=2, **params)
        days += [b["starting_at"][:10] for b in body["data"] if b["results"]]
        if not body["has_more"]:
            break
        cursor = body["next_page"]
    assert days == [f"2025-03-0{d}" for d in range(1, 6)]


def test_filters_and_both_group_by_forms(sim):
    inject(
        sim,
        [
            {
                "at": MAR_1,
                "model": "gpt-4o",
                "api_key": "sk-a",
                "project": "proj_a",
                "input_tokens": 1,
            },
            {
                "at": MAR_1,
                "model": "gpt-4o",
                "api_key": "sk-b",
                "project": "proj_b",
                "input_tokens": 2,
            },
            {"at": MAR_1, "model": "gpt-4o-mini", "api_key_id": "key_x", "input_tokens": 4},
        ],
    )
    day = {"start_time": MAR_1, "end_time": MAR_1 + DAY}

    def total(**params) -> int:
        return sum(
            r["input_tokens"]
            for r in results(openai_report(sim, "usage/completions", **day, **params))
        )

    assert total() == 7
    assert total(models="gpt-4o") == 3
    assert total(project_ids=["proj_b", "proj_default"]) == 6
    assert total(**{"api_key_ids[]": [key_id("sk-a"), "key_x"]}) == 5
    assert total(user_ids="user-1") == 0  # served calls carry no user
    assert total(batch="true") == 0 and total(batch="false") == 7
    repeated = openai_report(sim, "usage/completions", **day, group_by=["model", "project_id"])
    bracketed = openai_report(
        sim, "usage/completions", **day, **{"group_by[]": ["project_id", "model"]}
    )
    assert repeated == bracketed
    assert {(r["model"], r["project_id"]) for r in results(repeated)} == {
        ("gpt-4o", "proj_a"),
        ("gpt-4o", "proj_b"),
        ("gpt-4o-mini", "proj_default"),
    }
    grouped = results(
        openai_report(sim, "usage/completions", **day, group_by=["batch", "service_tier"])
    )
    assert [(r["batch"], r["service_tier"]) for r in grouped] == [(False, "default")]
    costs = openai_report(sim, "costs", **day, project_ids="proj_a", group_by="project_id")
    assert [r["amount"]["value"] for r in results(costs)] == [price("gpt-4o", "input") / M]


def test_multi_day_history_is_priced_per_day(sim):
    records = [
        {
            "at": f"2025-03-0{d}T08:00:00Z",
            "model": "gpt-4o",
            "project": "proj_a",
            "api_key": "sk-live",
            "input_tokens": 1_000_000 * d,
            "cached_tokens": 500_000,
            "output_tokens": 100_000,
            "requests": 10,
        }
        for d in (1, 2, 3)
    ]
    records.append(
        {
            "at": "2025-03-02T23:59:59Z",
            "endpoint": "messages",
            "model": "claude-sonnet-4-5-20250929",
            "workspace": "wrkspc_eng",
            "api_key": "sk-ant-live",
            "input_tokens": 1000,
            "cache_write_tokens": 2000,
            "output_tokens": 300,
        }
    )
    assert inject(sim, records).json()["recorded"] == 4
    body = openai_report(sim, "costs", start_time=MAR_1, end_time=MAR_1 + 3 * DAY)
    per_day = [sum(r["amount"]["value"] for r in b["results"]) for b in body["data"]]
    assert per_day == [
        Decimal("2.50") * d + Decimal("1.25") / 2 + Decimal("10.00") / 10 for d in (1, 2, 3)
    ]
    usage = openai_report(
        sim, "usage/completions", start_time=MAR_1, end_time=MAR_1 + 3 * DAY, group_by="api_key_id"
    )
    assert {r["api_key_id"] for r in results(usage)} == {key_id("sk-live")}
    assert [r["num_model_requests"] for r in results(usage)] == [10, 10, 10]
    report = anthropic_report(
        sim,
        "cost_report",
        starting_at="2025-03-01T00:00:00Z",
        ending_at="2025-03-04T00:00:00Z",
        **{"group_by[]": "workspace_id"},
    )
    assert [len(b["results"]) for b in report["data"]] == [0, 1, 0]
    [line] = report["data"][1]["results"]
    assert Decimal(line.pop("amount")) == (1000 * 3 + 2000 * Decimal("3.75") + 300 * 15) / M * 100
    assert line == {
        "currency": "USD",
        "workspace_id": "wrkspc_eng",
        "description": None,
        "cost_type": None,
        "context_window": None,
        "model": None,
        "service_tier": None,
        "token_type": None,
    }
    usage = anthropic_report(
        sim,
        "usage_report/messages",
        starting_at="2025-03-02T00:00:00Z",
        ending_at="2025-03-03T00:00:00Z",
        **{"group_by[]": ["workspace_id", "api_key_id"], "workspace_ids[]": "wrkspc_eng"},
    )
    [row] = results(usage)
    assert (row["workspace_id"], row["api_key_id"]) == (
        "wrkspc_eng",
        key_id("sk-ant-live", "apikey_"),
    )
    assert row["cache_creation"]["ephemeral_5m_input_tokens"] == 2000


def test_reset_forgets_the_usage(sim):
    sim.openai().chat.completions.create(model="gpt-4o", messages=HELLO)
    inject(sim, [{"at": MAR_1, "model": "gpt-4o", "input_tokens": 5}])
    assert results(openai_report(sim, "usage/completions", start_time=recent()))
    httpx.post(f"{sim.url}/_sim/reset")
    assert results(openai_report(sim, "usage/completions", start_time=recent())) == []
    assert results(openai_report(sim, "usage/completions", start_time=MAR_1, limit=1)) == []


def test_bad_injected_records_are_refused_whole(sim):
    good = {"at": MAR_1, "model": "gpt-4o", "input_tokens": 5}
    for bad in (
        {"model": "gpt-4o"},
        {**good, "at": "yesterday"},
        {**good, "model": ""},
        {**good, "endpoint": "images"},
        {**good, "input_tokens": -1},
        {**good, "requests": 1.5},
        {**good, "workspace": "wrkspc_x"},
        {**good, "endpoint": "messages", "project": "proj_x"},
        {**good, "api_key": "k", "api_key_id": "key_k"},
    ):
        response = inject(sim, [good, bad])
        assert response.status_code == 400, bad
        assert response.json()["error"]["message"].startswith("record 1: ")
    assert inject(sim, {"not": "a list"}).status_code == 400
    assert httpx.post(f"{sim.url}/_sim/usage", content=b"{").status_code == 400
    assert results(openai_report(sim, "usage/completions", start_time=MAR_1, limit=1)) == []


# --- auth and bad parameters -----------------------------------------------------------------


def test_admin_endpoints_take_only_the_admin_key_in_each_apis_shape(sim):
    url = f"{sim.url}/v1/organization/costs?start_time={recent()}"
    for headers in ({}, {"authorization": "Bearer sk-test"}, {"x-api-key": ADMIN}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and set(error) == {
            "message",
            "type",
            "param",
            "code",
        }
    anthropic_url = f"{sim.url}/v1/organizations/cost_report?starting_at={today()}"
    for headers in (
        {"anthropic-version": "2023-06-01"},
        {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"},
        {"authorization": f"Bearer {ADMIN}", "anthropic-version": "2023-06-01"},
    ):
        response = httpx.get(anthropic_url, headers=headers)
        assert response.status_code == 401
        assert response.json()["type"] == "error"
        assert response.json()["error"]["type"] == "authentication_error"
    missing_version = httpx.get(anthropic_url, headers={"x-api-key": ADMIN})
    assert missing_version.status_code == 400
    assert missing_version.json()["error"]["type"] == "invalid_request_error"
    assert httpx.post(url, headers=OPENAI_ADMIN).status_code == 405
    assert (
        httpx.get(f"{sim.url}/v1/organization/usage/images", headers=OPENAI_ADMIN).status_code
        == 404
    )
    sim.openai().chat.completions.create(model="gpt-4o", messages=HELLO)  # inference keys unchanged
    limited = httpx.get(url, headers={**OPENAI_ADMIN, "x-sim-status": "429"})
    assert limited.status_code == 429 and limited.json()["error"]["type"] == "rate_limit_error"


def test_without_an_admin_key_any_key_reads_the_reports():
    with threaded_sim() as open_sim:
        ok = httpx.get(
            f"{open_sim.url}/v1/organization/usage/completions",
            params={"start_time": recent()},
            headers={"authorization": "Bearer anything"},
        )
        assert ok.status_code == 200
        blank = httpx.get(
            f"{open_sim.url}/v1/organizations/usage_report/messages",
            params={"starting_at": today()},
            headers={"x-api-key": "", "anthropic-version": "2023-06-01"},
        )
        assert blank.status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("usage/completions", {}, "start_time"),
        ("usage/completions", {"start_time": "soon"}, "start_time"),
        ("usage/completions", {"start_time": 100, "end_time": 50}, "end_time"),
        ("usage/completions", {"start_time": 100, "bucket_width": "1w"}, "bucket_width"),
        ("usage/completions", {"start_time": 100, "bucket_width": "1h", "limit": 169}, "limit"),
        ("usage/completions", {"start_time": 100, "limit": 32}, "limit"),
        ("usage/completions", {"start_time": 100, "limit": 0}, "limit"),
        ("usage/completions", {"start_time": 100, "group_by": "line_item"}, "group_by"),
        ("usage/completions", {"start_time": 100, "page": "page_nope"}, "page"),
        ("usage/completions", {"start_time": 100, "batch": "maybe"}, "batch"),
        ("usage/embeddings", {"start_time": 100, "group_by": "batch"}, "group_by"),
        ("costs", {"start_time": 100, "bucket_width": "1h"}, "bucket_width"),
        ("costs", {"start_time": 100, "limit": 181}, "limit"),
        ("costs", {"start_time": 100, "group_by": "model"}, "group_by"),
    ],
)
def test_bad_openai_parameters_are_openai_400s(sim, path, params, param):
    response = httpx.get(f"{sim.url}/v1/organization/{path}", params=params, headers=OPENAI_ADMIN)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("usage_report/messages", {}),
        ("usage_report/messages", {"starting_at": "last tuesday"}),
        (
            "usage_report/messages",
            {"starting_at": "2025-03-02T00:00:00Z", "ending_at": "2025-03-01T00:00:00Z"},
        ),
        ("usage_report/messages", {"starting_at": "2025-03-01T00:00:00Z", "bucket_width": "1w"}),
        (
            "usage_report/messages",
            {"starting_at": "2025-03-01T00:00:00Z", "limit": 1441, "bucket_width": "1m"},
        ),
        (
            "usage_report/messages",
            {"starting_at": "2025-03-01T00:00:00Z", "group_by[]": "project_id"},
        ),
        ("usage_report/messages", {"starting_at": "2025-03-01T00:00:00Z", "page": "page_!!"}),
        ("cost_report", {"starting_at": "2025-03-01T00:00:00Z", "bucket_width": "1h"}),
        ("cost_report", {"starting_at": "2025-03-01T00:00:00Z", "limit": 32}),
        ("cost_report", {"starting_at": "2025-03-01T00:00:00Z", "group_by[]": "model"}),
    ],
)
def test_bad_anthropic_parameters_are_anthropic_400s(sim, path, params):
    response = httpx.get(
        f"{sim.url}/v1/organizations/{path}", params=params, headers=ANTHROPIC_ADMIN
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


# --- prices ----------------------------------------------------------------------------------


def test_price_table_replaces_the_defaults(tmp_path):
    prices = {
        "gpt-4o": {"input": "1", "cached_input": "0.5", "output": "2"},
        "*": {"input": "0.001"},
    }
    with threaded_sim(SimConfig(prices=prices)) as priced:
        inject(
            priced,
            [
                {
                    "at": MAR_1,
                    "model": "gpt-4o-2024-08-06",
                    "input_tokens": 1_000_000,
                    "output_tokens": 10,
                },
                {"at": MAR_1, "model": "gpt-4o-mini", "input_tokens": 3},
            ],
        )
        body = openai_report(
            priced, "costs", start_time=MAR_1, end_time=MAR_1 + DAY, group_by="line_item"
        )
        assert {r["line_item"]: r["amount"]["value"] for r in results(body)} == {
            "gpt-4o-2024-08-06, input_tokens": Decimal(1),
            "gpt-4o-2024-08-06, output_tokens": Decimal("0.00002"),
            "gpt-4o-mini, input_tokens": Decimal("0.000000003"),  # the "*" entry
        }
    with threaded_sim(SimConfig(prices={"gpt-4o": {"input": "1"}})) as sparse:
        inject(sparse, [{"at": MAR_1, "model": "unknown-model", "input_tokens": 5}])
        body = openai_report(sparse, "costs", start_time=MAR_1, end_time=MAR_1 + DAY)
        assert [r["amount"]["value"] for r in results(body)] == [0]  # unknown: billed at 0


def test_prices_flag_loads_a_checked_json_file(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    good = tmp_path / "prices.json"
    good.write_text('{"gpt-4o": {"input": 2.5, "output": "10"}}')
    options = vars(parser.parse_args(["--port", "1", "--prices", str(good), "--admin-key", "k"]))
    config = config_from_options(options)
    assert config.admin_key == "k"
    assert config.prices == {"gpt-4o": {"input": Decimal("2.5"), "output": "10"}}
    for text in ("{", '{"gpt-4o": {"output": "1"}}', '{"gpt-4o": {"input": "-1"}}', "[]"):
        good.write_text(text)
        with pytest.raises(ValueError, match="prices"):
            load_prices(good)
    with pytest.raises(ValueError, match="prices"):
        load_prices(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="prices"):
        SimConfig(prices={"gpt-4o": {"input": "cheap"}})
    help_text = parser.format_help()
    assert "--prices" in help_text and "--admin-key" in help_text
