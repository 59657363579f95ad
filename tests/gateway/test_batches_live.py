"""The Batch APIs through the live gateway with the official SDKs: an OpenAI batch and an
Anthropic message batch from upload to ledger rows at batch prices (``saved_usd`` exact),
budgets blocking a batch that does not fit (and a held reservation counting against the
next), cancel metering what ran and releasing the rest, tenants kept apart, malformed input
refused naming the line, and the poller metering a batch nobody asks about."""

from __future__ import annotations

import io
import json
import time
from contextlib import contextmanager
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from gateway.models import Batch, BatchFile, UsageEvent
from teams.models import Budget, Organization
from teams.services import key_mint
from tests import factories as f
from tests.live import live_database_url, start_app

pytestmark = pytest.mark.live

M = Decimal(1_000_000)
TERMINAL = ("completed", "failed", "expired", "cancelled")
# the live world's catalog: (input, output) USD per million tokens
MINI = (Decimal("0.15"), Decimal("0.60"))
SONNET = (Decimal("3.00"), Decimal("15.00"))


def oa(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def claude(url: str, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)


def chat_line(
    custom_id: str, text: str = "Summarise the week.", model="gpt-4o-mini", max_tokens=24
) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {**body, "max_tokens": max_tokens},
    }


def jsonl(lines: list) -> io.BytesIO:
    raw = (json.dumps(x) if not isinstance(x, str) else x for x in lines)
    return io.BytesIO("\n".join(raw).encode() + b"\n")


def upload(client: openai.OpenAI, lines: list):
    return client.files.create(file=("nightly.jsonl", jsonl(lines)), purpose="batch")


def wait_openai(client: openai.OpenAI, batch_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        assert time.monotonic() < deadline, batch.status
        time.sleep(0.1)


def wait_anthropic(client: anthropic.Anthropic, batch_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, batch.processing_status
        time.sleep(0.1)


def rows_of(live, batch_id: str, count: int, timeout: float = 10.0) -> list[UsageEvent]:
    deadline = time.monotonic() + timeout
    with live.blocker.unblock():
        while True:
            rows = list(UsageEvent.objects.filter(batch_id=batch_id).order_by("request_id"))
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


def at_batch_prices(prices, prompt: int, completion: int) -> Decimal:
    """Half the synchronous price (the catalog sets no batch price: the default)."""
    inp, out = prices
    return (prompt * inp / M / 2 + completion * out / M / 2).quantize(Decimal("1e-12"))


@contextmanager
def sim_batch_delay(live, seconds: float):
    """Batches the live simulator starts meanwhile take ``seconds`` to end."""
    url = f"{live.simulator.url}/_sim/batches"
    assert httpx.post(url, json={"delay": seconds}).status_code == 200
    try:
        yield
    finally:
        httpx.post(url, json={"delay": None})


@pytest.fixture
def team_key(live):
    """A fresh team with its own key, for one test's budgets."""
    with live.blocker.unblock():
        team = f.make_team(live.org)
        minted = key_mint(team=team, name="batcher")
    yield team, minted.secret
    with live.blocker.unblock():
        Budget.objects.filter(team=team).delete()


def wait_until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --- from upload to ledger rows ---------------------------------------------------------------


def test_openai_batch_from_upload_to_ledger_rows_at_batch_prices(live):
    client = oa(live.app.url, live.key_secret)
    lines = [chat_line("q-1", "One line on revenue."), chat_line("q-2"), chat_line("q-3", "Hi")]
    file = upload(client, lines)
    assert file.purpose == "batch" and file.id.startswith("file-")
    assert client.files.retrieve(file.id).bytes == file.bytes
    assert json.loads(client.files.content(file.id).text.splitlines()[0]) == lines[0]
    created = client.batches.with_raw_response.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"feature": "nightly-digest", "run": "42"},
    )
    batch = created.parse()
    assert batch.status in ("validating", "in_progress") and batch.id.startswith("batch_")
    assert Decimal(created.headers["x-finops-reserved"]) > 0
    done = wait_openai(client, batch.id)
    assert done.status == "completed" and done.completed_at
    assert done.request_counts.model_dump() == {"total": 3, "completed": 3, "failed": 0}
    assert done.metadata == {"feature": "nightly-digest", "run": "42"}
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(x["custom_id"] for x in out) == ["q-1", "q-2", "q-3"]
    assert {x["response"]["body"]["model"] for x in out} == {"gpt-4o-mini"}
    rows = {r.request_id: r for r in rows_of(live, batch.id, 3)}
    assert len(rows) == 3
    total = saved = Decimal(0)
    for line in out:
        usage = line["response"]["body"]["usage"]
        row = rows[line["response"]["request_id"]]
        assert (row.prompt_tokens, row.completion_tokens) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        expected = at_batch_prices(MINI, row.prompt_tokens, row.completion_tokens)
        assert row.cost == expected and row.saved_usd == expected  # half off: saved = paid
        assert (row.status, row.saving_lever, row.batch_id) == ("ok", "batch", batch.id)
        assert (row.feature, row.api, row.model, row.key_id) == (
            "nightly-digest",
            "chat.completions",
            "gpt-4o-mini",
            live.key.pk,
        )
        total += row.cost
        saved += row.saved_usd
    again = client.batches.with_raw_response.retrieve(batch.id)
    assert Decimal(again.headers["x-finops-cost"]) == total
    assert Decimal(again.headers["x-finops-saved"]) == saved
    listed = client.batches.list(limit=5)
    assert batch.id in [b.id for b in listed.data]
    assert done.output_file_id in [x.id for x in client.files.list(purpose="batch_output")]


def test_embeddings_batch_is_metered_per_line(live):
    client = oa(live.app.url, live.key_secret)
    line = {
        "custom_id": "emb-1",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": "quarterly report"},
    }
    file = upload(client, [line])
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_openai(client, batch.id)
    (out,) = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    (row,) = rows_of(live, batch.id, 1)
    assert (
        row.api == "embeddings"
        and row.prompt_tokens == out["response"]["body"]["usage"]["prompt_tokens"]
    )
    assert row.cost == (row.prompt_tokens * Decimal("0.02") / M / 2).quantize(Decimal("1e-12"))


def test_anthropic_message_batch_from_create_to_ledger_rows_at_batch_prices(live):
    client = claude(live.app.url, live.key_secret)
    requests = [
        {
            "custom_id": f"m{i}",
            "params": {
                "model": "claude-sonnet",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"Question {i}: what changed?"}],
            },
        }
        for i in range(2)
    ]
    batch = client.messages.batches.create(requests=requests)
    assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
    done = wait_anthropic(client, batch.id)
    assert done.request_counts.succeeded == 2 and done.results_url
    results = list(client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == ["m0", "m1"]
    assert {r.result.message.model for r in results} == {"claude-sonnet"}
    rows = rows_of(live, batch.id, 2)
    by_usage = {
        (r.result.message.usage.input_tokens, r.result.message.usage.output_tokens) for r in results
    }
    assert {(r.prompt_tokens, r.completion_tokens) for r in rows} == by_usage
    for row in rows:
        expected = at_batch_prices(SONNET, row.prompt_tokens, row.completion_tokens)
        assert row.cost == expected and row.saved_usd == expected
        assert (row.api, row.model, row.upstream_model, row.saving_lever) == (
            "messages",
            "claude-sonnet",
            "claude-sonnet-4-5",
            "batch",
        )
    listed = client.messages.batches.list(limit=20)
    assert batch.id in [b.id for b in listed.data]


# --- budgets ----------------------------------------------------------------------------------


def test_budgets_block_a_batch_that_does_not_fit_and_hold_a_running_ones_reservation(
    live, team_key
):
    team, key = team_key
    client = oa(live.app.url, key)
    # a cap far above what the lines will bill: the reservation is mostly the cap
    file = upload(client, [chat_line("b1", max_tokens=2000), chat_line("b2", max_tokens=2000)])
    with live.blocker.unblock():
        budget = Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="month",
            limit_usd=Decimal("0.000001"),
            action="block",
        )

    def create():
        return client.batches.with_raw_response.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )

    wait_until(lambda: remaining(live, key) == 0)  # the budget has reached the gateway
    with pytest.raises(openai.RateLimitError) as caught:
        create()
    assert caught.value.code == "budget_exceeded"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "budget" in caught.value.message.lower()
    with live.blocker.unblock():
        assert not Batch.objects.filter(team_id=team.pk).exists()  # nothing was sent
    with sim_batch_delay(live, 60):
        set_limit(live, budget, Decimal("1"))
        first = retry(create)  # admitted once the new limit has reached the gateway
        reserved = Decimal(first.headers["x-finops-reserved"])
        first = first.parse()
        # room for one reservation and a half: the same batch again does not fit
        set_limit(live, budget, reserved * 3 / 2)
        wait_until(lambda: remaining(live, key) < Decimal("0.5"))
        with pytest.raises(openai.RateLimitError):
            create()
        client.batches.cancel(first.id)
        assert wait_openai(client, first.id).status == "cancelled"
        # settled at what its one line cost: the rest of the reservation is free again
        second = create().parse()
        client.batches.cancel(second.id)
        wait_openai(client, second.id)


def set_limit(live, budget, limit: Decimal) -> None:
    with live.blocker.unblock():
        budget.limit_usd = limit
        budget.save()  # the config stamp: every gateway reloads its budgets


def retry(fn, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "still refused"
            time.sleep(0.05)


def remaining(live, key: str) -> Decimal:
    """The tightest budget's room, as a small chat call reports it (0 when refused)."""
    response = httpx.post(
        f"{live.app.url}/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 4,
        },
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    if response.status_code == 429:
        return Decimal(0)
    return Decimal(response.headers.get("x-finops-budget-remaining", "1e9"))


def test_cancel_meters_what_ran_and_releases_the_rest(live):
    client = oa(live.app.url, live.key_secret)
    file = upload(client, [chat_line("c1"), chat_line("c2"), chat_line("c3")])
    with sim_batch_delay(live, 60):
        batch = client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert client.batches.retrieve(batch.id).status == "in_progress"
        client.batches.cancel(batch.id)
        done = wait_openai(client, batch.id)
    assert done.status == "cancelled"
    assert done.request_counts.model_dump() == {"total": 3, "completed": 1, "failed": 2}
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert [x["custom_id"] for x in out] == ["c1"]
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert sorted((x["custom_id"], x["error"]["code"]) for x in errors) == [
        ("c2", "batch_cancelled"),
        ("c3", "batch_cancelled"),
    ]
    rows = rows_of(live, batch.id, 3)
    billed = [r for r in rows if r.status == "ok"]
    assert len(billed) == 1 and billed[0].cost > 0
    assert {(r.status, r.error_code, r.cost) for r in rows if r.status != "ok"} == {
        ("error", "batch_cancelled", Decimal(0))
    }
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_an_expired_batch_meters_its_first_half(live):
    client = oa(live.app.url, live.key_secret)
    file = upload(client, [chat_line(f"x{i}") for i in range(4)])
    url = f"{live.simulator.url}/_sim/batches"
    assert httpx.post(url, json={"expire": True}).status_code == 200
    try:
        batch = client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    finally:
        httpx.post(url, json={"expire": False})
    done = wait_openai(client, batch.id)
    assert done.status == "expired" and done.expired_at
    assert done.request_counts.model_dump() == {"total": 4, "completed": 2, "failed": 2}
    rows = rows_of(live, batch.id, 4)
    assert sorted((r.status, r.error_code) for r in rows) == [
        ("error", "batch_expired"),
        ("error", "batch_expired"),
        ("ok", ""),
        ("ok", ""),
    ]


def test_anthropic_cancel_ends_with_the_rest_canceled(live):
    client = claude(live.app.url, live.key_secret)
    requests = [
        {
            "custom_id": f"k{i}",
            "params": {
                "model": "claude-sonnet",
                "max_tokens": 32,
                "messages": [{"role": "user", "content": "hello"}],
            },
        }
        for i in range(2)
    ]
    with sim_batch_delay(live, 60):
        batch = client.messages.batches.create(requests=requests)
        canceling = client.messages.batches.cancel(batch.id)
        assert canceling.processing_status in ("canceling", "ended")
        done = wait_anthropic(client, batch.id)
    assert (done.request_counts.succeeded, done.request_counts.canceled) == (1, 1)
    kinds = {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}
    assert kinds == {"k0": "succeeded", "k1": "canceled"}
    rows = rows_of(live, batch.id, 2)
    assert sorted(r.status for r in rows) == ["error", "ok"]


# --- tenancy and input ------------------------------------------------------------------------


def test_another_orgs_key_and_another_key_get_404_on_files_and_batches(live):
    client = oa(live.app.url, live.key_secret)
    file = upload(client, [chat_line("t1")])
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    message_batch = claude(live.app.url, live.key_secret).messages.batches.create(
        requests=[
            {
                "custom_id": "t",
                "params": {
                    "model": "claude-sonnet",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": "x"}],
                },
            }
        ]
    )
    with live.blocker.unblock():
        outsider_org = f.make_org("batch-outsider")
        outsider = key_mint(team=f.make_team(outsider_org), name="intruder").secret
        sibling = key_mint(team=live.team, name="sibling").secret
    try:
        for key in (outsider, sibling):
            other = oa(live.app.url, key)
            for attempt in (
                lambda o=other: o.files.retrieve(file.id),
                lambda o=other: o.files.content(file.id),
                lambda o=other: o.files.delete(file.id),
                lambda o=other: o.batches.retrieve(batch.id),
                lambda o=other: o.batches.cancel(batch.id),
                lambda o=other: o.batches.create(
                    input_file_id=file.id,
                    endpoint="/v1/chat/completions",
                    completion_window="24h",
                ),
            ):
                with pytest.raises(openai.NotFoundError) as caught:
                    attempt()
                assert caught.value.body["type"] == "invalid_request_error"
            assert batch.id not in [b.id for b in other.batches.list()]
            assert file.id not in [x.id for x in other.files.list()]
            intruder = claude(live.app.url, key)
            with pytest.raises(anthropic.NotFoundError):
                intruder.messages.batches.retrieve(message_batch.id)
            with pytest.raises(anthropic.NotFoundError):
                list(intruder.messages.batches.results(message_batch.id))
        # the ids were never the outsiders' to see: the owner's batch is untouched
        assert wait_openai(client, batch.id).status == "completed"
    finally:
        with live.blocker.unblock():
            Organization.objects.filter(pk=outsider_org.pk).delete()


@pytest.mark.parametrize(
    ("lines", "line", "needle"),
    [
        ([chat_line("a"), "{not json"], 2, "not valid JSON"),
        ([{"method": "POST", "url": "/v1/chat/completions", "body": {}}], 1, "custom_id"),
        ([chat_line("a"), chat_line("a")], 2, "not unique"),
        ([{**chat_line("a"), "method": "GET"}], 1, "method"),
        ([{**chat_line("a"), "url": "/v1/images"}], 1, "url"),
        ([chat_line("a"), {**chat_line("b"), "url": "/v1/embeddings"}], 2, "one endpoint"),
        ([{**chat_line("a"), "body": {**chat_line("a")["body"], "stream": True}}], 1, "stream"),
        ([{**chat_line("a"), "body": {"model": "gpt-4o-mini", "messages": []}}], 1, "messages"),
    ],
)
def test_malformed_jsonl_is_refused_naming_the_line(live, lines, line, needle):
    client = oa(live.app.url, live.key_secret)
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, lines)
    error = caught.value.body
    assert error["message"].startswith(f"Line {line}:") and needle in error["message"]
    assert error["param"] == f"line {line}"


def test_a_line_on_an_unknown_model_or_on_two_providers_is_refused_at_create(live):
    client = oa(live.app.url, live.key_secret)
    for lines, needle in (
        ([chat_line("a"), chat_line("b", model="no-such-model")], "Line 2: The model"),
        (
            [chat_line("a"), chat_line("b", model="gpt-native")],
            "Line 2: 'gpt-native' is served by provider 'sim-native', the batch's first "
            "request (line 1) by 'sim'",
        ),
        ([chat_line("a", model="claude-sonnet")], "Line 1: 'claude-sonnet' is served by a "),
        ([chat_line("a", model="azure-gpt-4o")], "Line 1: 'azure-gpt-4o' is served by a "),
    ):
        file = upload(client, lines)
        with pytest.raises(openai.APIStatusError) as caught:
            client.batches.create(
                input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        assert caught.value.status_code in (400, 404)
        assert caught.value.body["message"].startswith(needle), caught.value.body
    bad = httpx.post(
        f"{live.app.url}/v1/messages/batches",
        json={"requests": [{"custom_id": "has space", "params": {}}]},
        headers={"x-api-key": live.key_secret, "anthropic-version": "2023-06-01"},
    )
    assert bad.status_code == 400 and bad.json()["type"] == "error"
    assert bad.json()["error"]["message"].startswith("requests[0]: 'custom_id'")


def test_only_batch_files_are_accepted(live):
    client = oa(live.app.url, live.key_secret)
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("x.jsonl", jsonl([chat_line("a")])), purpose="assistants")
    assert caught.value.body["param"] == "purpose"


# --- a second gateway: the poller, and the bounds ---------------------------------------------


@pytest.fixture(scope="module")
def polling_app(live):
    """Another gateway process on the same database, polling every 0.2 s, with small bounds."""
    with live.blocker.unblock():
        database_url = live_database_url()
    app = start_app(
        live.app.log_path.parent,
        database_url=database_url,
        FINOPS_BATCH_POLL_SECONDS="0.2",
        FINOPS_BATCH_MAX_BYTES="4096",
        FINOPS_BATCH_MAX_LINES="5",
    )
    yield app
    app.stop()


def test_the_poller_meters_a_batch_no_client_asks_about(live, polling_app):
    client = oa(polling_app.url, live.key_secret)
    file = upload(client, [chat_line("p1"), chat_line("p2")])
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    rows = rows_of(live, batch.id, 2, timeout=15)  # no GET: the poller saw it end
    assert len(rows) == 2 and {r.status for r in rows} == {"ok"}
    with live.blocker.unblock():
        row = Batch.objects.get(batch_id=batch.id)
        assert row.metered_at is not None and row.cost_usd == sum(r.cost for r in rows)
        assert BatchFile.objects.filter(file_id=row.output_file_id).exists()
    # the other gateway reads the same batch, metered once
    assert oa(live.app.url, live.key_secret).batches.retrieve(batch.id).status == "completed"
    assert len(rows_of(live, batch.id, 3, timeout=1)) == 2


def test_a_file_over_the_bounds_is_a_clear_400(live, polling_app):
    client = oa(polling_app.url, live.key_secret)
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, [chat_line("big", "x" * 5000)])
    assert caught.value.body["code"] == "file_too_large"
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, [chat_line(f"n{i}", "y") for i in range(6)])
    assert caught.value.body["code"] == "too_many_lines"
