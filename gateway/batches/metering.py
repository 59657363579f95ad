"""A finished batch's lines as ledger rows, and its output as the client reads it.

Every line of the batch becomes one row (``batch_id`` set, ``saving_lever`` ``batch``): its
tokens from the line's own usage, its cost at the batch prices in force when the batch was
sent (``Price.for_batch``), ``saved_usd`` the synchronous cost of the same usage less that.
A line the provider answered with an error costs nothing (neither provider bills one); a line
it never ran (a batch cancelled or expired part-way, or failed) is a zero-cost ``error`` row
too, so the ledger holds every line. A line answered with no usage is billed its upper bound,
marked estimated. Rows have deterministic ids: a batch metered twice (a process that died
mid-way, its claim taken over) never counts twice.

The output keeps the provider's order; the client sees its own ``custom_id``, the model name
it asked for, and the gateway's ids (each line's ``request_id`` is its ledger row's).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import orjson

from gateway import metering
from gateway.attribution import Labels
from gateway.batches.lines import price_restore
from gateway.billable import Bound
from gateway.pricing import ZERO, Usage, cost_of
from gateway.providers.base import CHAT, EMBEDDINGS
from gateway.records import ModelRecord, ProviderRecord

log = logging.getLogger(__name__)

ROW_NAMESPACE = uuid.UUID("5b0f0c3e-1f6e-4d43-9a58-0f5bb4c1d2a7")
NOT_RUN = {
    "cancelled": "batch_cancelled",
    "canceled": "batch_cancelled",
    "expired": "batch_expired",
    "failed": "batch_failed",
}
ENDPOINT_APIS = {"/v1/chat/completions": CHAT, "/v1/embeddings": EMBEDDINGS}
MESSAGES_API = "messages"  # the ledger's ``api`` of an Anthropic line (gateway.dialects)


@dataclass(slots=True)
class Owner:
    """Whose a batch is, as metering and admission read a key record."""

    org_id: int
    team_id: int | None
    key_id: int
    org_tz: object = None


@dataclass(slots=True)
class _Plan:
    """What ``gateway.metering.event`` reads of a plan: the model that served the line (no
    fallback, no router: the batch lever replaces any other), the line's bound."""

    bounds: dict
    deployments: list = field(default_factory=list)
    router: str = ""
    router_scorer: str = ""
    router_score: float | None = None
    router_threshold: float | None = None
    router_decision: str = ""


@dataclass(slots=True)
class _LineCall:
    """One batch line as ``gateway.metering.event`` reads a call."""

    request_id: str
    api: str
    client_api: str
    record: Owner
    labels: Labels
    requested: str
    plan: _Plan
    started: datetime
    body: dict = field(default_factory=dict)
    shadow: bool = False
    experiment: str = ""
    experiment_arm: str = ""
    budget_action: str = ""
    translated: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class Metered:
    events: list[dict] = field(default_factory=list)
    output: list[bytes] = field(default_factory=list)  # the client's output lines
    errors: list[bytes] = field(default_factory=list)  # OpenAI's error-file lines
    counts: dict = field(default_factory=dict)
    cost: Decimal = ZERO
    saved: Decimal = ZERO
    input_tokens: int = 0
    output_tokens: int = 0


def _model(name: str, snapshot: dict | None, provider: str) -> ModelRecord:
    snapshot = snapshot or {}
    price = price_restore(snapshot.get("price"))
    return ModelRecord(
        name=name,
        upstream_model=snapshot.get("upstream", name),
        mode=snapshot.get("mode", "chat"),
        max_output_tokens=snapshot.get("max_output"),
        provider=ProviderRecord(
            slug=provider, kind=snapshot.get("kind", ""), base_url="", api_key=""
        ),
        prices=(price,) if price is not None else (),
    )


def row_id(batch_id: str, number: int) -> uuid.UUID:
    return uuid.uuid5(ROW_NAMESPACE, f"{batch_id}:{number}")


def request_id(batch_id: str, number: int) -> str:
    return f"{batch_id}-{number}"


def line_id(batch_id: str, number: int) -> str:
    return "batch_req_" + hashlib.sha256(f"{batch_id}:{number}".encode()).hexdigest()[:24]


class _Meter:
    """Rows for one batch's lines, each at most once."""

    def __init__(self, batch, *, ended: datetime) -> None:
        self.batch = batch
        self.ended = ended
        self.owner = Owner(batch.org_id, batch.team_id, batch.key_id)
        self.models = {
            name: _model(name, snap, batch.provider) for name, snap in batch.served.items()
        }
        self.api = ENDPOINT_APIS.get(batch.endpoint, CHAT)
        self.client_api = MESSAGES_API if batch.api == "anthropic" else self.api
        # custom_id -> (line number, its entry in ``batch.lines``)
        self.by_custom = {e["c"]: (i + 1, e) for i, e in enumerate(batch.lines)}
        self.done: set[int] = set()
        self.result = Metered()

    def find(self, custom_id) -> tuple[int, dict] | None:
        found = self.by_custom.get(custom_id) if isinstance(custom_id, str) else None
        if found is None or found[0] in self.done:
            if custom_id is not None:
                log.warning("batch %s: unexpected result line %r", self.batch.batch_id, custom_id)
            return None
        self.done.add(found[0])
        return found

    def row(
        self,
        number: int,
        entry: dict,
        *,
        status: str,
        http_status: int | None,
        error_code: str = "",
        usage: Usage | None = None,
    ) -> None:
        batch = self.batch
        model = self.models.get(entry["m"])
        price = model.prices[0] if model is not None and model.prices else None
        usage = usage or Usage()
        cost = cost_of(usage, price.for_batch() if price is not None else None)
        synchronous = cost_of(usage, price)
        bound = Bound(int(entry.get("p") or 0), int(entry.get("o") or 0))
        call = _LineCall(
            request_id=request_id(batch.batch_id, number),
            api=self.api,
            client_api=self.client_api,
            record=self.owner,
            labels=Labels(
                feature=batch.feature, endpoint=batch.endpoint_label, end_user=entry.get("u", "")
            ),
            requested=entry["r"],
            plan=_Plan(
                bounds={model.name: bound} if model is not None else {},
                deployments=[model] if model is not None else [],
            ),
            started=batch.created_at,
        )
        event = metering.event(
            call,
            model=model,
            attempt=1,
            status=status,
            started=batch.created_at,
            ended=self.ended,
            latency_ms=int((self.ended - batch.created_at).total_seconds() * 1000),
            http_status=http_status,
            error_code=error_code[:64],
            usage=usage,
            cost=cost,
        )
        saved = synchronous.total - cost.total
        event.update(
            event_id=row_id(batch.batch_id, number),
            batch_id=batch.batch_id,
            saved_usd=saved,
            saving_lever="batch",
        )
        self.result.events.append(event)
        self.result.cost += cost.total
        self.result.saved += saved
        self.result.input_tokens += usage.prompt_tokens
        self.result.output_tokens += usage.output

    def estimate(self, entry: dict) -> Usage:
        """What a line answered without usage is billed: its upper bound."""
        return Usage(
            uncached_input=int(entry.get("p") or 0),
            output=int(entry.get("o") or 0),
            estimated=True,
        )

    def not_run(self) -> list[tuple[int, dict, str]]:
        """Rows for the lines no result mentions; (number, entry, error code) of each."""
        status = self.batch.status
        code = NOT_RUN.get(status, "batch_cancelled" if self.batch.cancel_requested_at else "")
        code = code or "missing_result"
        missing = []
        for number, entry in self.by_custom.values():
            if number not in self.done:
                self.row(number, entry, status="error", http_status=None, error_code=code)
                missing.append((number, entry, code))
        return missing


def _lines(data: bytes):
    for raw in data.split(b"\n"):
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("batch output: a line that is not JSON was skipped")
            continue
        if isinstance(obj, dict):
            yield obj


def _renamed(body, requested: str):
    if isinstance(body, dict) and "model" in body:
        return {**body, "model": requested}
    return body


# --- OpenAI -----------------------------------------------------------------------------------


def meter_openai(batch, output: bytes, errors: bytes, *, ended: datetime) -> Metered:
    meter = _Meter(batch, ended=ended)
    result = meter.result
    ok = 0
    for obj in [*_lines(output), *_lines(errors)]:
        found = meter.find(obj.get("custom_id"))
        if found is None:
            continue
        number, entry = found
        response = obj.get("response") if isinstance(obj.get("response"), dict) else None
        status_code = response.get("status_code") if response else None
        body = response.get("body") if response else None
        error = obj.get("error") if isinstance(obj.get("error"), dict) else None
        if status_code == 200 and isinstance(body, dict):
            usage = Usage.from_openai(body.get("usage")) or meter.estimate(entry)
            meter.row(number, entry, status="ok", http_status=200, usage=usage)
            ok += 1
        else:
            code = ""
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                code = str(body["error"].get("code") or body["error"].get("type") or "")
            code = code or (str(error.get("code") or "") if error else "") or "line_failed"
            http = status_code if isinstance(status_code, int) else None
            meter.row(number, entry, status="error", http_status=http, error_code=code)
        line = {
            "id": line_id(batch.batch_id, number),
            "custom_id": entry["c"],
            "response": None
            if response is None
            else {
                "status_code": status_code,
                "request_id": request_id(batch.batch_id, number),
                "body": _renamed(body, entry["r"]),
            },
            "error": error,
        }
        target = result.output if status_code == 200 else result.errors
        target.append(orjson.dumps(line))
    for number, entry, code in meter.not_run():
        line = {
            "id": line_id(batch.batch_id, number),
            "custom_id": entry["c"],
            "response": None,
            "error": {"code": code, "message": f"The request was not run ({code})."},
        }
        result.errors.append(orjson.dumps(line))
    total = len(batch.lines)
    result.counts = {"total": total, "completed": ok, "failed": total - ok}
    return result


# --- Anthropic --------------------------------------------------------------------------------


def meter_anthropic(batch, results: bytes, *, ended: datetime) -> Metered:
    meter = _Meter(batch, ended=ended)
    result = meter.result
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    for obj in _lines(results):
        found = meter.find(obj.get("custom_id"))
        if found is None:
            continue
        number, entry = found
        outcome = obj.get("result") if isinstance(obj.get("result"), dict) else {}
        kind = outcome.get("type")
        message = outcome.get("message")
        if kind == "succeeded" and isinstance(message, dict):
            usage = Usage.from_anthropic(message.get("usage")) or meter.estimate(entry)
            meter.row(number, entry, status="ok", http_status=200, usage=usage)
            outcome = {**outcome, "message": _renamed(message, entry["r"])}
        else:
            kind = kind if kind in ("errored", "canceled", "expired") else "errored"
            code = _anthropic_error_code(outcome) if kind == "errored" else f"batch_{kind}"
            meter.row(number, entry, status="error", http_status=None, error_code=code)
            outcome = {**outcome, "type": kind}
        counts[kind] = counts.get(kind, 0) + 1
        result.output.append(orjson.dumps({"custom_id": entry["c"], "result": outcome}))
    for _number, entry, code in meter.not_run():
        kind = "canceled" if code == "batch_cancelled" else "expired"
        counts[kind] += 1
        result.output.append(orjson.dumps({"custom_id": entry["c"], "result": {"type": kind}}))
    result.counts = counts
    return result


def _anthropic_error_code(outcome: dict) -> str:
    error = outcome.get("error")
    inner = error.get("error") if isinstance(error, dict) else None
    if isinstance(inner, dict) and inner.get("type"):
        return str(inner["type"])
    return "line_failed"
