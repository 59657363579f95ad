"""The simulator's batch APIs over real HTTP with the official SDKs: OpenAI's files and batches
(upload, create, the status sequence, output and error files, cancel, expiry, validation
errors, lists) and Anthropic's Message Batches (create, results, cancel, errors), each line
billed as batch usage at half the synchronous price in the admin reports."""

from __future__ import annotations

import io
import json
import time
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from simulator import SimConfig
from simulator.billing import DEFAULT_PRICES
from tests.simulator.conftest import threaded_sim

ADMIN = {"authorization": "Bearer sk-admin", "x-api-key": "sk-admin"}
M = Decimal(1_000_000)
TERMINAL = ("completed", "failed", "expired", "cancelled")


@pytest.fixture(scope="module")
def sim():
    with threaded_sim(SimConfig(batch_delay=0.3)) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(sim):
    assert httpx.post(f"{sim.url}/_sim/reset").status_code == 200


def chat_line(custom_id: str, text: str = "hello", **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 30,
            **body,
        },
    }


def jsonl(lines: list) -> io.BytesIO:
    return io.BytesIO(
        b"".join((json.dumps(x) if not isinstance(x, str) else x).encode() + b"\n" for x in lines)
    )


def upload(client: openai.OpenAI, lines: list):
    return client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")


def wait_openai(client: openai.OpenAI, batch_id: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        batch = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if batch.status in TERMINAL:
            return batch, seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines() if x]


def usage_rows(sim, **params) -> list[dict]:
    response = httpx.get(
        f"{sim.url}/v1/organization/usage/completions",
        params={"start_time": int(time.time()) - 3600, "bucket_width": "1h", **params},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    return [r for bucket in response.json()["data"] for r in bucket["results"]]


def openai_cost(sim) -> Decimal:
    response = httpx.get(
        f"{sim.url}/v1/organization/costs",
        params={"start_time": int(time.time()) - 86400},
        headers=ADMIN,
    )
    body = json.loads(response.text, parse_float=Decimal)
    return sum((r["amount"]["value"] for b in body["data"] for r in b["results"]), Decimal(0))


def half_price(model: str, uncached: int, output: int) -> Decimal:
    entry = DEFAULT_PRICES[model]
    return (uncached * Decimal(entry["input"]) + output * Decimal(entry["output"])) / M / 2


# --- OpenAI -----------------------------------------------------------------------------------


def test_openai_batch_runs_every_line_and_bills_it_as_batch_at_half_price(sim):
    client = sim.openai()
    file = upload(client, [chat_line("a", "one"), chat_line("b", "two words"), chat_line("c")])
    assert (file.purpose, file.status, file.bytes) == ("batch", "processed", file.bytes)
    batch = client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.status == "validating" and batch.metadata == {"job": "nightly"}
    done, seen = wait_openai(client, batch.id)
    assert seen[-1] == "completed" and "validating" not in seen[1:]
    assert done.request_counts.model_dump() == {"total": 3, "completed": 3, "failed": 0}
    assert done.completed_at and done.in_progress_at and done.error_file_id is None
    out = lines_of(client, done.output_file_id)
    assert [x["custom_id"] for x in out] == ["a", "b", "c"]
    uncached = output = 0
    for line in out:
        assert line["response"]["status_code"] == 200 and line["error"] is None
        body = line["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
        uncached += body["usage"]["prompt_tokens"]
        output += body["usage"]["completion_tokens"]
    rows = usage_rows(sim, group_by=["batch"])
    assert [(r["batch"], r["num_model_requests"]) for r in rows] == [(True, 3)]
    assert usage_rows(sim, batch="false") == []
    assert rows[0]["input_tokens"] == uncached and rows[0]["output_tokens"] == output
    assert openai_cost(sim) == half_price("gpt-4o-mini", uncached, output)


def test_embeddings_batch_bills_its_input(sim):
    client = sim.openai()
    line = {
        "custom_id": "e1",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": ["alpha", "beta gamma"]},
    }
    file = upload(client, [line])
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done, _ = wait_openai(client, batch.id)
    (out,) = lines_of(client, done.output_file_id)
    body = out["response"]["body"]
    assert body["object"] == "list" and len(body["data"]) == 2
    response = httpx.get(
        f"{sim.url}/v1/organization/usage/embeddings",
        params={"start_time": int(time.time()) - 3600, "bucket_width": "1h"},
        headers=ADMIN,
    )
    results = [r for b in response.json()["data"] for r in b["results"]]
    assert results[0]["input_tokens"] == body["usage"]["prompt_tokens"]


def test_a_line_the_endpoint_refuses_lands_in_the_error_file(sim):
    client = sim.openai()
    bad = chat_line("bad")
    bad["body"]["messages"] = []
    file = upload(client, [chat_line("ok"), bad])
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done, _ = wait_openai(client, batch.id)
    assert done.request_counts.model_dump() == {"total": 2, "completed": 1, "failed": 1}
    (error,) = lines_of(client, done.error_file_id)
    assert error["custom_id"] == "bad" and error["response"]["status_code"] == 400
    assert "messages" in error["response"]["body"]["error"]["message"]
    assert [x["custom_id"] for x in lines_of(client, done.output_file_id)] == ["ok"]
    assert [r["num_model_requests"] for r in usage_rows(sim)] == [1]


def test_a_file_of_invalid_lines_fails_the_batch_naming_them(sim):
    client = sim.openai()
    file = upload(client, [chat_line("a"), "not json", chat_line("a")])
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done, _ = wait_openai(client, batch.id)
    assert done.status == "failed" and done.output_file_id is None
    assert [(e.code, e.line) for e in done.errors.data] == [
        ("invalid_json_line", 2),
        ("invalid_custom_id", 3),
    ]
    assert usage_rows(sim) == []


def test_cancel_keeps_what_ran_and_cancels_the_rest(sim):
    client = sim.openai()
    file = upload(client, [chat_line("first"), chat_line("second")])
    batch = client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers={"x-sim-batch-delay-ms": "60000"},
    )
    assert client.batches.retrieve(batch.id).status == "in_progress"
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    assert done.request_counts.model_dump() == {"total": 2, "completed": 1, "failed": 1}
    assert [x["custom_id"] for x in lines_of(client, done.output_file_id)] == ["first"]
    (cancelled,) = lines_of(client, done.error_file_id)
    assert cancelled["custom_id"] == "second" and cancelled["error"]["code"] == "batch_cancelled"
    assert [r["num_model_requests"] for r in usage_rows(sim)] == [1]
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_an_expiring_batch_runs_its_first_half(sim):
    assert httpx.post(f"{sim.url}/_sim/batches", json={"expire": True}).status_code == 200
    client = sim.openai()
    file = upload(client, [chat_line(f"r{i}") for i in range(4)])
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done, _ = wait_openai(client, batch.id)
    assert done.status == "expired" and done.expired_at
    assert [x["custom_id"] for x in lines_of(client, done.output_file_id)] == ["r0", "r1"]
    codes = [x["error"]["code"] for x in lines_of(client, done.error_file_id)]
    assert codes == ["batch_expired", "batch_expired"]


def test_files_and_batches_are_listed_newest_first_with_pages(sim):
    client = sim.openai()
    files = [upload(client, [chat_line("x")]) for _ in range(3)]
    listed = [f.id for f in client.files.list(purpose="batch")]
    assert listed[:3] == [f.id for f in reversed(files)]
    assert client.files.retrieve(files[0].id).id == files[0].id
    assert client.files.delete(files[0].id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(files[0].id)
    batches = [
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        for f in files[1:]
    ]
    page = client.batches.list(limit=1)
    assert [b.id for b in page.data] == [batches[-1].id] and page.has_more
    assert [b.id for b in client.batches.list(limit=1, after=batches[-1].id).data] == [
        batches[0].id
    ]
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_batch_knobs_are_checked(sim):
    assert httpx.post(f"{sim.url}/_sim/batches", json={"delay": -1}).status_code == 400
    assert httpx.post(f"{sim.url}/_sim/batches", json={"expire": "yes"}).status_code == 400
    knobs = httpx.post(f"{sim.url}/_sim/batches", json={"delay": 2}).json()
    assert knobs == {"delay": 2, "expire": False}
    assert httpx.post(f"{sim.url}/_sim/reset").status_code == 200
    assert httpx.get(f"{sim.url}/_sim/batches").json() == {"delay": 0.3, "expire": False}


# --- Anthropic --------------------------------------------------------------------------------


def message_request(custom_id: str, text: str = "hi") -> dict:
    return {
        "custom_id": custom_id,
        "params": {
            "model": "claude-sonnet-4-5",
            "max_tokens": 40,
            "messages": [{"role": "user", "content": text}],
        },
    }


def wait_anthropic(client: anthropic.Anthropic, batch_id: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_message_batch_ends_with_results_billed_as_batch_tier_at_half_price(sim):
    client = sim.anthropic()
    batch = client.messages.batches.create(
        requests=[message_request("q1", "first"), message_request("q2", "second one")]
    )
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 2
    done = wait_anthropic(client, batch.id)
    assert done.results_url and done.ended_at
    assert done.request_counts.succeeded == 2 and done.request_counts.processing == 0
    results = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == ["q1", "q2"]
    uncached = sum(r.result.message.usage.input_tokens for r in results)
    output = sum(r.result.message.usage.output_tokens for r in results)
    assert all(r.result.message.usage.service_tier == "batch" for r in results)
    headers = {"x-api-key": "sk-admin", "anthropic-version": "2023-06-01"}
    day = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
    usage = httpx.get(
        f"{sim.url}/v1/organizations/usage_report/messages",
        params={"starting_at": day, "group_by[]": "service_tier"},
        headers=headers,
    ).json()
    rows = [r for b in usage["data"] for r in b["results"]]
    assert [(r["service_tier"], r["output_tokens"]) for r in rows] == [("batch", output)]
    costs = httpx.get(
        f"{sim.url}/v1/organizations/cost_report",
        params={"starting_at": day, "group_by[]": "description"},
        headers=headers,
    ).json()
    items = [r for b in costs["data"] for r in b["results"]]
    assert {r["service_tier"] for r in items} == {"batch"}
    cents = sum(Decimal(r["amount"]) for r in items)
    assert cents / 100 == half_price("claude-sonnet-4-5", uncached, output)


def test_message_batch_cancel_leaves_the_rest_canceled(sim):
    client = sim.anthropic()
    batch = client.messages.batches.create(
        requests=[message_request("a"), message_request("b"), message_request("c")],
        extra_headers={"x-sim-batch-delay-ms": "60000"},
    )
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at
    done = client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended"
    counts = done.request_counts
    assert (counts.succeeded, counts.canceled) == (1, 2)
    kinds = [r.result.type for r in client.messages.batches.results(batch.id)]
    assert kinds == ["succeeded", "canceled", "canceled"]
    assert client.messages.batches.delete(batch.id).id == batch.id
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_message_batch_requests_are_checked_in_anthropics_shape(sim):
    for requests, needle in (
        ([message_request("bad id!")], "requests.0.custom_id"),
        ([message_request("x"), message_request("x")], "duplicate"),
        ([{"custom_id": "y"}], "params"),
    ):
        response = httpx.post(
            f"{sim.url}/v1/messages/batches",
            json={"requests": requests},
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        )
        assert response.status_code == 400
        body = response.json()
        assert body["type"] == "error" and needle in body["error"]["message"]


def test_a_request_the_messages_endpoint_refuses_is_errored(sim):
    client = sim.anthropic()
    bad = message_request("bad")
    del bad["params"]["max_tokens"]
    batch = client.messages.batches.create(requests=[message_request("ok"), bad])
    wait_anthropic(client, batch.id)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["ok"].type == "succeeded" and results["bad"].type == "errored"
    assert "max_tokens" in results["bad"].error.error.message


def test_message_batches_list_pages(sim):
    client = sim.anthropic()
    made = [client.messages.batches.create(requests=[message_request("z")]) for _ in range(3)]
    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == [made[2].id, made[1].id] and first.has_more
    rest = client.messages.batches.list(limit=2, after_id=made[1].id)
    assert rest.data[0].id == made[0].id  # then the older batches of this module
    newer = client.messages.batches.list(limit=5, before_id=made[0].id)
    assert [b.id for b in newer.data] == [made[2].id, made[1].id] and not newer.has_more
