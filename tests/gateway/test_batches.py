"""The Batch APIs without the network: the multipart parser, line checks, model resolution and
the bound at batch prices, per-line metering (exact costs and savings, lines never run, hostile
results), the batch reservation in the admission counters, the metering claim, and the admin.
The wire end to end is in ``test_batches_live.py``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import orjson
import pytest
from django.test import TransactionTestCase
from django.urls import reverse
from django.utils import timezone

from gateway.admission import Admitter
from gateway.batches import multipart, store
from gateway.batches.lines import (
    anthropic_lines,
    openai_lines,
    price_snapshot,
    resolve_lines,
    served_snapshot,
)
from gateway.batches.metering import meter_anthropic, meter_openai, row_id
from gateway.counters import LocalCounters
from gateway.errors import GatewayError
from gateway.models import Batch
from gateway.records import BudgetRecord, OrgConfig
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.records import model_record, price, provider_record

M = Decimal(1_000_000)
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def chat(custom_id: str, **body) -> bytes:
    line = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "mini", "messages": [{"role": "user", "content": "hi"}], **body},
    }
    return orjson.dumps(line)


# --- multipart --------------------------------------------------------------------------------


def form(*parts: tuple[str, str | None, bytes], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_multipart_reads_the_fields_and_the_file_as_the_sdks_send_them():
    body = form(
        ("purpose", None, b"batch"), ("file", "in.jsonl", b"a\r\nb\n"), ("empty", None, b"")
    )
    parts = multipart.parse(body, 'multipart/form-data; boundary="b0undary"')
    assert parts["purpose"].data == b"batch" and parts["purpose"].filename is None
    assert parts["file"].data == b"a\r\nb\n" and parts["file"].filename == "in.jsonl"
    assert parts["empty"].data == b""


ZZ = "multipart/form-data; boundary=zz"


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"{}", "application/json", "multipart/form-data"),
        (b"x", "multipart/form-data", "no boundary"),
        (b"nothing here", "multipart/form-data; boundary=zz", "does not occur"),
        (b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--", ZZ, "no Content-Disp"),
        (b"--zz\r\nContent-Disposition: form-data; name=a\r\n\r\nx", ZZ, "closing boundary"),
    ],
)  # fmt: skip
def test_a_malformed_multipart_body_is_a_400(body, content_type, needle):
    with pytest.raises(GatewayError) as caught:
        multipart.parse(body, content_type)
    assert caught.value.status == 400 and needle in caught.value.message


def test_multipart_refuses_too_many_parts():
    body = form(*[(f"f{i}", None, b"x") for i in range(multipart.MAX_PARTS + 1)])
    with pytest.raises(GatewayError, match="more than"):
        multipart.parse(body, "multipart/form-data; boundary=b0undary")


# --- lines ------------------------------------------------------------------------------------


def test_openai_lines_skip_blank_lines_and_keep_numbers():
    lines = openai_lines(chat("a") + b"\n\n" + chat("b") + b"\r\n", max_lines=10)
    assert [(x.number, x.custom_id) for x in lines] == [(1, "a"), (3, "b")]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "no request lines"),
        (b"[1]", "Line 1: must be a JSON object"),
        (chat("a") + b"\n" + chat("b", n=0), "Line 2: 'n'"),
        (chat("a", max_tokens=True), "Line 1: 'max_tokens'"),
        (chat("a", user=3), "Line 1: 'user'"),
        (chat("a", model=""), "Line 1: 'model'"),
        (chat("a") + b"\n" + chat("b") + b"\n" + chat("c"), "more than 2 requests"),
    ],
)
def test_openai_lines_are_refused_naming_the_first_bad_one(data, needle):
    with pytest.raises(GatewayError) as caught:
        openai_lines(data, max_lines=2)
    assert caught.value.status == 400 and needle in caught.value.message


def test_anthropic_requests_are_translated_for_the_bound_and_checked():
    body = {
        "requests": [
            {
                "custom_id": "r1",
                "params": {
                    "model": "claude",
                    "max_tokens": 10,
                    "system": "Be brief.",
                    "messages": [{"role": "user", "content": "hi"}],
                },
            }
        ]
    }
    (line,) = anthropic_lines(body, max_lines=5)
    assert line.chat["messages"][0] == {"role": "system", "content": "Be brief."}
    params = {"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": 5}]}
    bad = {"requests": [{"custom_id": "r1", "params": params}]}
    with pytest.raises(GatewayError, match=r"requests\[0\]: params: 'messages\[0\].content'"):
        anthropic_lines(bad, max_lines=5)
    with pytest.raises(GatewayError, match="at most 0"):
        anthropic_lines(body, max_lines=0)


def _config(*models, budgets=()) -> OrgConfig:
    return OrgConfig(
        org_id=1, models={m.name: m for m in models}, groups={}, routers={}, budgets=list(budgets)
    )


def _record(**kwargs):
    return SimpleNamespace(
        key_id=7,
        team_id=3,
        org_tz=UTC,
        allowed_models=frozenset(),
        default_model="",
        feature_models={},
        **kwargs,
    )


def test_resolution_rewrites_the_model_and_bounds_each_line_at_batch_prices():
    sim = provider_record(slug="sim")
    mini = model_record(
        "mini", upstream="gpt-4o-mini", provider=sim, prices=[price("0.15", "0.60")]
    )
    lines = openai_lines(chat("a", max_tokens=100) + b"\n" + chat("b"), max_lines=5)
    resolved = resolve_lines(
        lines, config=_config(mini), record=_record(), feature="", api="openai", when=T0
    )
    first, second = resolved
    assert first.upstream_body["model"] == "gpt-4o-mini" and first.requested == "mini"
    assert "max_completion_tokens" not in first.upstream_body  # the client's cap stands
    assert second.upstream_body["max_completion_tokens"] == 4096  # the cap the bound assumed
    # input at the highest input-side price (cache reads keep theirs), output at half
    p = first.bound.prompt
    assert first.bound_usd == p * Decimal("0.15") / M + 100 * Decimal("0.30") / M
    snapshot = served_snapshot(resolved, T0)
    assert snapshot["mini"]["upstream"] == "gpt-4o-mini"
    assert snapshot["mini"]["price"]["batch_output"] == format(Decimal("0.30") / M, "f")


def test_resolution_refuses_two_providers_other_kinds_and_models_the_key_may_not_use():
    mini = model_record("mini", provider=provider_record(slug="sim"))
    other = model_record("other", provider=provider_record(slug="elsewhere"))
    azure = model_record("az", provider=provider_record("azure", slug="az"))
    config = _config(mini, other, azure)
    two = openai_lines(chat("a") + b"\n" + chat("b", model="other"), max_lines=5)
    with pytest.raises(GatewayError, match="Line 2: 'other' is served by provider 'elsewhere'"):
        resolve_lines(two, config=config, record=_record(), feature="", api="openai", when=T0)
    kind = openai_lines(chat("a", model="az"), max_lines=5)
    with pytest.raises(GatewayError, match="kind 'azure'"):
        resolve_lines(kind, config=config, record=_record(), feature="", api="openai", when=T0)
    record = _record()
    record.allowed_models = frozenset({"other"})
    with pytest.raises(GatewayError) as caught:
        resolve_lines(two, config=config, record=record, feature="", api="openai", when=T0)
    assert caught.value.status == 403 and caught.value.message.startswith("Line 1:")


def test_a_line_without_a_model_takes_the_features_default():
    mini = model_record("mini", provider=provider_record(slug="sim"))
    record = _record()
    record.feature_models = {"digest": "mini"}
    line = orjson.dumps(
        {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}
    )
    embed = model_record("mini", provider=provider_record(slug="sim"))
    embed.mode = "embedding"
    (resolved,) = resolve_lines(
        openai_lines(line, max_lines=1),
        config=_config(embed),
        record=record,
        feature="digest",
        api="openai",
        when=T0,
    )
    assert resolved.requested == "mini" and resolved.bound.output == 0
    assert mini.name == resolved.model.name


# --- metering ---------------------------------------------------------------------------------


def _batch(**fields):
    snap = {
        "upstream": "gpt-4o-mini",
        "mode": "chat",
        "kind": "openai",
        "max_output": None,
        "price": price_snapshot(price("0.15", "0.60", cached="0.075")),
    }
    base = {
        "batch_id": "batch_abc",
        "api": "openai",
        "org_id": 1,
        "team_id": 3,
        "key_id": 7,
        "feature": "digest",
        "endpoint_label": "nightly",
        "endpoint": "/v1/chat/completions",
        "provider": "sim",
        "served": {"mini": snap},
        "lines": [
            {"c": "a", "r": "mini-alias", "m": "mini", "p": 100, "o": 50, "u": "ann"},
            {"c": "b", "r": "mini-alias", "m": "mini", "p": 100, "o": 50, "u": ""},
            {"c": "c", "r": "mini-alias", "m": "mini", "p": 100, "o": 50, "u": ""},
        ],
        "created_at": T0,
        "status": "completed",
        "cancel_requested_at": None,
    }
    return SimpleNamespace(**(base | fields))


def _out(custom_id: str, usage: dict | None, status: int = 200) -> bytes:
    body = {"id": "chatcmpl-1", "model": "gpt-4o-mini", "choices": []}
    if usage is not None:
        body["usage"] = usage
    response = {"status_code": status, "request_id": "up-req", "body": body}
    return orjson.dumps({"id": "up", "custom_id": custom_id, "response": response, "error": None})


def test_each_line_is_a_row_at_batch_prices_with_its_saving():
    usage = {
        "prompt_tokens": 40,
        "completion_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 10},
    }
    output = b"\n".join([_out("a", usage), _out("zzz", usage), _out("a", usage), b"not json"])
    response = {"status_code": 400, "body": {"error": {"code": "bad_thing"}}}
    error = orjson.dumps({"custom_id": "b", "response": response, "error": None})
    metered = meter_openai(_batch(), output, error, ended=T0 + timedelta(minutes=5))
    rows = {e["request_id"]: e for e in metered.events}
    assert set(rows) == {"batch_abc-1", "batch_abc-2", "batch_abc-3"}  # one each, unknowns skipped
    ok = rows["batch_abc-1"]
    # 30 uncached at 0.075, 10 cached at the synchronous 0.075, 20 output at 0.30 (per Mtok)
    expected = (30 * Decimal("0.075") + 10 * Decimal("0.075") + 20 * Decimal("0.30")) / M
    synchronous = (30 * Decimal("0.15") + 10 * Decimal("0.075") + 20 * Decimal("0.60")) / M
    assert ok["cost"] == expected and ok["saved_usd"] == synchronous - expected
    assert (ok["saving_lever"], ok["batch_id"], ok["status"]) == ("batch", "batch_abc", "ok")
    assert (ok["feature"], ok["endpoint"], ok["end_user"]) == ("digest", "nightly", "ann")
    assert (ok["requested_model"], ok["model"], ok["upstream_model"]) == (
        "mini-alias",
        "mini",
        "gpt-4o-mini",
    )
    assert ok["latency_ms"] == 300_000 and ok["event_id"] == row_id("batch_abc", 1)
    failed, missing = rows["batch_abc-2"], rows["batch_abc-3"]
    assert (failed["status"], failed["error_code"], failed["http_status"], failed["cost"]) == (
        "error",
        "bad_thing",
        400,
        0,
    )
    assert (missing["error_code"], missing["cost"]) == ("missing_result", 0)
    assert metered.cost == expected and metered.counts == {"total": 3, "completed": 1, "failed": 2}
    (client_line,) = [orjson.loads(x) for x in metered.output]
    assert client_line["response"]["body"]["model"] == "mini-alias"
    assert client_line["response"]["request_id"] == "batch_abc-1" and client_line["id"].startswith(
        "batch_req_"
    )
    assert [orjson.loads(x)["custom_id"] for x in metered.errors] == ["b", "c"]


def test_metering_twice_gives_the_same_row_ids():
    usage = {"prompt_tokens": 1, "completion_tokens": 1}
    one = meter_openai(_batch(), _out("a", usage), b"", ended=T0)
    two = meter_openai(_batch(), _out("a", usage), b"", ended=T0)
    assert [e["event_id"] for e in one.events] == [e["event_id"] for e in two.events]


def test_a_line_answered_without_usage_is_billed_its_bound_marked_estimated():
    metered = meter_openai(_batch(status="cancelled"), _out("a", None), b"", ended=T0)
    row = metered.events[0]
    assert row["estimated"] and (row["prompt_tokens"], row["completion_tokens"]) == (100, 50)
    assert {e["error_code"] for e in metered.events[1:]} == {"batch_cancelled"}


def test_anthropic_results_are_rows_and_keep_the_clients_model_name():
    entries = [{"c": c, "r": "claude", "m": "mini", "p": 5, "o": 5} for c in ("x", "y")]
    batch = _batch(api="anthropic", endpoint="/v1/messages", lines=entries)
    message = {"model": "claude-up", "usage": {"input_tokens": 4, "output_tokens": 2}}
    ok = {"custom_id": "x", "result": {"type": "succeeded", "message": message}}
    error = {"type": "error", "error": {"type": "invalid_request_error"}}
    bad = {"custom_id": "y", "result": {"type": "errored", "error": error}}
    metered = meter_anthropic(batch, orjson.dumps(ok) + b"\n" + orjson.dumps(bad), ended=T0)
    assert [e["api"] for e in metered.events] == ["messages", "messages"]
    assert metered.events[1]["error_code"] == "invalid_request_error"
    assert metered.counts == {
        "processing": 0,
        "succeeded": 1,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    assert orjson.loads(metered.output[0])["result"]["message"]["model"] == "claude"


# --- the reservation --------------------------------------------------------------------------


def _budget(limit: str, action: str = "block") -> BudgetRecord:
    return BudgetRecord(
        id=1, org_id=1, created=1, scope="team", team_id=3, feature="", key_id=None,
        period="month", limit=Decimal(limit), action=action, downgrade_to="", fail_open=False,
        label="team search",
    )  # fmt: skip


async def _no_spend(budget, start, end):
    return Decimal(0)


def test_a_batch_reserves_its_bound_and_one_that_does_not_fit_is_refused():
    async def scenario():
        admitter = Admitter(LocalCounters(), _no_spend)
        config = _config(budgets=[_budget("1", action="downgrade")])
        kwargs = dict(record=_record(), config=config, feature="", started=T0, lease_ttl=3600)
        held = await admitter.admit_reserved(cost=Decimal("0.6"), **kwargs)
        assert held is not None and held.entries[0].amount == 600_000_000
        with pytest.raises(GatewayError) as caught:
            await admitter.admit_reserved(cost=Decimal("0.5"), **kwargs)  # downgrade: refused too
        assert (caught.value.status, caught.value.code) == (429, "budget_exceeded")
        await admitter.settle(held, cost=Decimal("0.1"), prompt_tokens=0, completion_tokens=0)
        assert await admitter.admit_reserved(cost=Decimal("0.5"), **kwargs) is not None
        assert (
            await admitter.admit_reserved(cost=Decimal("1"), **kwargs | {"config": _config()})
            is None
        )

    asyncio.run(scenario())


def test_a_forgotten_reservation_is_held_again_under_its_lease():
    async def scenario():
        admitter = Admitter(LocalCounters(), _no_spend)
        config = _config(budgets=[_budget("1")])
        record = _record()
        keys = await admitter.admit_again(
            record=record, config=config, feature="", cost=Decimal("0.9"), started=T0,
            lease="lease-1", lease_ttl=3600,
        )  # fmt: skip
        assert keys and keys[0].startswith("finops:budget:1.1:month:")
        kwargs = dict(record=record, config=config, feature="", started=T0, lease_ttl=3600)
        with pytest.raises(GatewayError):
            await admitter.admit_reserved(cost=Decimal("0.2"), **kwargs)
        window = admitter.counters.windows[keys[0]]
        assert window.leases["lease-1"][0] == 900_000_000

    asyncio.run(scenario())


# --- rows: claims and tenancy -----------------------------------------------------------------


def _open_batch(org, key, **fields) -> Batch:
    return Batch.objects.create(
        batch_id=fields.pop("batch_id", "batch_rows1"),
        api="openai",
        org=org,
        key_id=key.pk,
        team_id=key.team_id,
        endpoint="/v1/chat/completions",
        provider="sim",
        upstream_id="up_1",
        status="in_progress",
        expires_at=timezone.now() + timedelta(days=1),
        **fields,
    )


class BatchRowsTests(TransactionTestCase):  # the store's reads close stale connections
    def setUp(self):
        self.org_a, self.org_b = f.make_org("acme"), f.make_org("globex")
        self.key = f.make_key(f.make_team(self.org_a)).key
        self.sibling = f.make_key(f.make_team(self.org_a)).key
        self.batch = _open_batch(self.org_a, self.key)

    def test_one_process_claims_a_batch_and_a_dead_claim_is_taken_over(self):
        assert store.batch_claim(self.batch.pk, 300)
        assert not store.batch_claim(self.batch.pk, 300)
        past = timezone.now() - timedelta(seconds=1)
        Batch.objects.filter(pk=self.batch.pk).update(claim_until=past)
        assert store.batch_claim(self.batch.pk, 300)
        assert store.batch_finish(self.batch.pk, files=[], status="completed")
        assert not store.batch_finish(self.batch.pk, files=[], status="completed")
        assert not store.batch_claim(self.batch.pk, 300)  # metered: nothing to claim

    def test_an_open_batch_is_due_to_one_poller_at_a_time(self):
        taken, stale = store.batches_due(10, 100)
        assert [b.pk for b in taken] == [self.batch.pk] and stale == []
        assert store.batches_due(10, 100)[0] == []

    def test_a_batch_is_only_its_keys(self):
        found = store.batch_get(self.org_a.pk, self.key.pk, "openai", "batch_rows1")
        assert found.pk == self.batch.pk
        for org, key_id, api in (
            (self.org_b.pk, self.key.pk, "openai"),
            (self.org_a.pk, self.sibling.pk, "openai"),
            (self.org_a.pk, self.key.pk, "anthropic"),
        ):
            with pytest.raises(GatewayError) as caught:
                store.batch_get(org, key_id, api, "batch_rows1")
            assert caught.value.status == 404


class BatchAdminTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.batch = _open_batch(cls.org_a, cls.minted_a.key)

    def test_the_admin_shows_a_batch_to_its_org_read_only(self):
        url = reverse("admin:gateway_batch_changelist")
        for user in (self.admin_a, self.admin_b):
            user.is_staff = True
            user.save()
        self.client.force_login(self.admin_a)
        assert b"batch_rows1" in self.client.get(url).content
        change = reverse("admin:gateway_batch_change", args=[self.batch.pk])
        assert self.client.get(change).status_code == 200
        assert self.client.post(change, {}).status_code == 403
        self.client.force_login(self.admin_b)
        assert b"batch_rows1" not in self.client.get(url).content
