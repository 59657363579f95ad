"""A batch's life: created (checked, resolved, reserved, sent upstream), refreshed from the
provider (by a client's ``GET`` or by the poller), cancelled, and metered once it has ended.

Creation writes the batch's row before anything is sent upstream, so that a process that dies
in between leaves a row the poller finds and fails (releasing its reservation) rather than an
upstream batch nobody knows of. Metering is claimed with a conditional ``UPDATE``
(``store.batch_claim``): of the processes that see a batch end, one meters it; the client is
told the batch has completed only once its output is ready (until then it sees
``finalizing`` / ``in_progress``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from gateway import attribution
from gateway.admission import Admission
from gateway.batches import knob, store, upstream
from gateway.batches.lines import Line, resolve_lines, served_snapshot
from gateway.batches.metering import Owner, meter_anthropic, meter_openai
from gateway.counters import Entry
from gateway.errors import GatewayError
from gateway.pricing import QUANT, ZERO
from gateway.records import KeyRecord, ProviderRecord
from gateway.runtime import runtime

log = logging.getLogger(__name__)

OPENAI_STATUSES = frozenset(
    {"validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling"}
    | {"cancelled"}
)
OPENAI_TERMINAL = frozenset({"completed", "expired", "cancelled", "failed"})
ANTHROPIC_STATUSES = frozenset({"in_progress", "canceling", "ended"})
OPENAI_TIMES = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)
ANTHROPIC_TIMES = ("ended_at", "cancel_initiated_at")
UPSTREAM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
CLIENT_ERRORS = frozenset({400, 404, 413, 415, 422})
WINDOW = timedelta(hours=24)


def _now() -> datetime:
    return datetime.now(UTC)


async def run_db(fn, *args, **kwargs):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(runtime.db, functools.partial(fn, *args, **kwargs))


def terminal(batch) -> bool:
    """Whether the provider has finished with the batch (metered or not)."""
    if batch.api == "anthropic":
        return batch.status == "ended"
    return batch.status in OPENAI_TERMINAL


# --- creating ---------------------------------------------------------------------------------


def _end_user(line: Line) -> str:
    if line.chat is not None:
        meta = line.body.get("metadata")
        value = meta.get("user_id") if isinstance(meta, dict) else None
    else:
        value = line.body.get("user")
    return value[:200] if isinstance(value, str) else ""


async def batch_create(
    *,
    scope,
    record: KeyRecord,
    api: str,
    lines: list[Line],
    endpoint: str,
    metadata: dict,
    input_file_id: str = "",
):
    """Check, reserve and send a batch; its row. Raises the budget error of the chat route
    (429 ``budget_exceeded``) when it does not fit."""
    started = _now()
    labels = attribution.labels(scope, {"metadata": metadata}, record, runtime.ledger)
    config = await runtime.org_config(record.org_id)
    resolved = resolve_lines(
        lines, config=config, record=record, feature=labels.feature, api=api, when=started
    )
    provider = resolved[0].model.provider
    reserved = sum((r.bound_usd for r in resolved), ZERO)
    admission = await runtime.admitter.admit_reserved(
        record=record,
        config=config,
        feature=labels.feature,
        cost=reserved,
        started=started,
        lease_ttl=knob("FINOPS_BATCH_LEASE_SECONDS"),
    )
    batch_id = store.new_id("batch_" if api == "openai" else "msgbatch_")
    fields = _row_fields(
        api=api,
        batch_id=batch_id,
        record=record,
        labels=labels,
        endpoint=endpoint,
        provider=provider,
        metadata=metadata,
        input_file_id=input_file_id,
        resolved=resolved,
        reserved=reserved,
        admission=admission,
        started=started,
    )
    try:
        row = await run_db(store.batch_insert, **fields)
    except BaseException:
        await asyncio.shield(_settle(_reservation(admission), ZERO))  # nothing was sent
        raise
    try:
        obj, files = await _send(
            api, provider, batch_id, endpoint=endpoint, metadata=metadata, resolved=resolved
        )
    except upstream.UpstreamError as exc:
        await _settle(row.reservation, ZERO)
        await run_db(
            store.batch_update,
            row.pk,
            status="failed",
            metered_at=_now(),
            errors=[{"code": "upstream_error", "message": exc.message}],
        )
        raise _refused(provider, exc) from None
    upstream_id = obj.get("id")
    if not isinstance(upstream_id, str) or not UPSTREAM_ID.match(upstream_id):
        log.error("batch %s: the provider answered no usable batch id", batch_id)
        upstream_id = ""  # the poller fails it and releases its reservation
    fields = state_fields(api, obj, files)
    await run_db(store.batch_update, row.pk, upstream_id=upstream_id, **fields)
    return await run_db(store.batch_reload, row.pk)


def _row_fields(
    *,
    api,
    batch_id,
    record,
    labels,
    endpoint,
    provider,
    metadata,
    input_file_id,
    resolved,
    reserved,
    admission,
    started,
) -> dict:
    """The new batch's row, before anything is sent upstream."""
    return dict(
        batch_id=batch_id,
        api=api,
        org_id=record.org_id,
        key_id=record.key_id,
        team_id=record.team_id,
        feature=labels.feature,
        endpoint_label=labels.endpoint,
        endpoint=endpoint,
        provider=provider.slug,
        status="validating" if api == "openai" else "in_progress",
        metadata=metadata,
        input_file_id=input_file_id,
        lines=[
            {
                "c": r.line.custom_id,
                "r": r.requested[:200],
                "m": r.model.name,
                "p": r.bound.prompt,
                "o": r.bound.output,
                "u": _end_user(r.line),
            }
            for r in resolved
        ],
        served=served_snapshot(resolved, started),
        request_counts=(
            {"total": len(resolved), "completed": 0, "failed": 0}
            if api == "openai"
            else {"processing": len(resolved)}
        ),
        reserved_usd=reserved.quantize(QUANT),
        reservation=_reservation(admission),
        created_at=started,
        expires_at=started + WINDOW,
    )


async def _send(api, provider, batch_id, *, endpoint, metadata, resolved) -> tuple[dict, dict]:
    session = runtime.session
    if api == "anthropic":
        requests = [{"custom_id": r.line.custom_id, "params": r.upstream_body} for r in resolved]
        return await upstream.anthropic_create(session, provider, requests), {}
    data = b"".join(
        orjson.dumps(
            {
                "custom_id": r.line.custom_id,
                "method": "POST",
                "url": endpoint,
                "body": r.upstream_body,
            }
        )
        + b"\n"
        for r in resolved
    )
    file_id = await upstream.openai_upload(session, provider, data, f"{batch_id}.jsonl")
    if not UPSTREAM_ID.match(file_id):
        raise upstream.UpstreamError(200, "the provider's file id is unusable")
    tagged = dict(metadata)
    if len(tagged) < 16:
        tagged["finops_batch_id"] = batch_id  # the provider's console can tell it is ours
    obj = await upstream.openai_create(
        session, provider, input_file_id=file_id, endpoint=endpoint, metadata=tagged
    )
    return obj, {"input": file_id}


def _refused(provider: ProviderRecord, exc: upstream.UpstreamError) -> GatewayError:
    message = f"The provider '{provider.slug}' refused the batch: {exc.message}"
    if exc.status in CLIENT_ERRORS:
        return GatewayError(400, "upstream_rejected", message)
    return GatewayError(502, "upstream_error", message)


def _reservation(admission: Admission | None) -> dict:
    if admission is None:
        return {}
    keys = [e.key for e in admission.entries if e.kind == "budget"]
    return {"lease": admission.lease, "keys": keys, "counted": admission.counted}


async def _settle(reservation: dict, cost: Decimal) -> None:
    """Settle a batch's reservation with what it cost (0 releases it), from any process."""
    if not reservation or not reservation.get("keys") or not reservation.get("counted", True):
        return
    admission = Admission(
        entries=[Entry("budget", key, 0) for key in reservation["keys"]],
        lease=reservation["lease"],
        prompt_estimate=0,
        plan=None,
    )
    await runtime.admitter.settle(admission, cost=cost, prompt_tokens=0, completion_tokens=0)


# --- the provider's view ----------------------------------------------------------------------


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def state_fields(api: str, obj: dict, files: dict) -> dict:
    """The row's fields from an upstream batch object (only what is well-formed)."""
    files = dict(files)
    counts = obj.get("request_counts") if isinstance(obj.get("request_counts"), dict) else {}
    if api == "anthropic":
        status = obj.get("processing_status")
        times = {k: obj[k] for k in ANTHROPIC_TIMES if isinstance(obj.get(k), str)}
        return {
            "status": status if status in ANTHROPIC_STATUSES else "in_progress",
            "upstream_times": times,
            "request_counts": {k: _int(counts.get(k)) for k in counts if isinstance(k, str)},
        }
    status = obj.get("status")
    for name, key in (("output", "output_file_id"), ("error", "error_file_id")):
        value = obj.get(key)
        if isinstance(value, str) and UPSTREAM_ID.match(value):
            files[name] = value
    errors = obj.get("errors") if isinstance(obj.get("errors"), dict) else {}
    return {
        "status": status if status in OPENAI_STATUSES else "in_progress",
        "upstream_times": {k: obj[k] for k in OPENAI_TIMES if _int(obj.get(k))},
        "request_counts": {k: _int(counts.get(k)) for k in ("total", "completed", "failed")},
        "upstream_files": files,
        "errors": [
            {k: e.get(k) for k in ("code", "line", "message", "param")}
            for e in (errors.get("data") or [])[:100]
            if isinstance(e, dict)
        ],
    }


async def provider_of(batch) -> ProviderRecord | None:
    config = await runtime.org_config(batch.org_id)
    for model in config.models.values():
        if model.provider.slug == batch.provider:
            return model.provider
    log.warning("batch %s: provider %s is no longer configured", batch.batch_id, batch.provider)
    return None


async def _fetch(batch, provider: ProviderRecord) -> dict:
    if batch.api == "anthropic":
        return await upstream.anthropic_get(runtime.session, provider, batch.upstream_id)
    return await upstream.openai_get(runtime.session, provider, batch.upstream_id)


async def batch_refresh(batch):
    """The batch as the provider now has it, metered at once if it has ended; the row as it
    stood when the provider cannot be asked."""
    if batch.metered_at is not None or not batch.upstream_id:
        return batch
    provider = await provider_of(batch)
    if provider is None:
        return batch
    try:
        obj = await _fetch(batch, provider)
    except upstream.UpstreamError as exc:
        log.warning("batch %s: the provider could not be asked (%s)", batch.batch_id, exc)
        return batch
    return await _observed(batch, provider, obj)


async def _observed(batch, provider: ProviderRecord, obj: dict):
    fields = state_fields(batch.api, obj, batch.upstream_files)
    await run_db(store.batch_observe, batch.pk, checked_at=_now(), **fields)
    for name, value in fields.items():
        setattr(batch, name, value)
    if terminal(batch):
        await batch_meter(batch, provider)
    return await run_db(store.batch_reload, batch.pk)


async def batch_cancel(batch):
    if batch.metered_at is not None or terminal(batch) or not batch.upstream_id:
        state = batch.status if batch.upstream_id else "validating"
        raise GatewayError(
            409 if batch.api == "openai" else 400,
            "invalid_state",
            f"Cannot cancel a batch with status '{state}'.",
        )
    provider = await provider_of(batch)
    if provider is None:
        raise GatewayError(502, "upstream_error", "The batch's provider is no longer configured.")
    await run_db(store.batch_update, batch.pk, cancel_requested_at=_now())
    batch.cancel_requested_at = _now()
    session = runtime.session
    try:
        if batch.api == "anthropic":
            obj = await upstream.anthropic_cancel(session, provider, batch.upstream_id)
        else:
            obj = await upstream.openai_cancel(session, provider, batch.upstream_id)
    except upstream.UpstreamError as exc:
        await run_db(store.batch_update, batch.pk, cancel_requested_at=None)
        if exc.status in (400, 409):  # it ended meanwhile: say so in the client's terms
            raise GatewayError(
                409 if batch.api == "openai" else 400,
                "invalid_state",
                f"Cannot cancel this batch: {exc.message}",
            ) from None
        raise _refused(provider, exc) from None
    return await _observed(batch, provider, obj)


# --- metering ---------------------------------------------------------------------------------


def _ended(batch) -> datetime:
    times = batch.upstream_times or {}
    for name in ("completed_at", "cancelled_at", "expired_at", "failed_at"):
        if _int(times.get(name)):
            return datetime.fromtimestamp(times[name], UTC)
    if isinstance(times.get("ended_at"), str):
        try:
            return datetime.fromisoformat(times["ended_at"].replace("Z", "+00:00"))
        except ValueError:
            pass
    return _now()


async def batch_meter(batch, provider: ProviderRecord) -> bool:
    """Meter an ended batch, if this process wins its claim: the provider's results become
    ledger rows and the client's output, the reservation is settled with the real cost."""
    if not await run_db(store.batch_claim, batch.pk, knob("FINOPS_BATCH_CLAIM_SECONDS")):
        return False
    try:
        full = await run_db(store.batch_reload, batch.pk, lines=True)
        if full is None or full.metered_at is not None:
            return False
        session = runtime.session
        files = full.upstream_files or {}
        ended = _ended(full)
        if full.api == "anthropic":
            results = await upstream.anthropic_results(session, provider, full.upstream_id)
            metered = await run_db(meter_anthropic, full, results, ended=ended)
        else:
            output = errors = b""
            if files.get("output"):
                output = await upstream.openai_file(session, provider, files["output"])
            if files.get("error"):
                errors = await upstream.openai_file(session, provider, files["error"])
            metered = await run_db(meter_openai, full, output, errors, ended=ended)
        for event in metered.events:
            runtime.ledger.submit(event)
        outputs = _output_files(full, metered)
        done = await run_db(
            store.batch_finish,
            full.pk,
            files=outputs,
            output_file_id=outputs[0]["file_id"] if outputs and metered.output else "",
            error_file_id=outputs[-1]["file_id"] if metered.errors else "",
            request_counts=metered.counts,
            cost_usd=metered.cost,
            saved_usd=metered.saved,
            input_tokens=metered.input_tokens,
            output_tokens=metered.output_tokens,
        )
        if done:
            await _settle(full.reservation, metered.cost)
            log.info(
                "batch %s metered: %d lines, %s USD", full.batch_id, len(full.lines), metered.cost
            )
        return done
    except BaseException as exc:
        if not isinstance(exc, asyncio.CancelledError):
            log.warning("batch %s could not be metered (%s)", batch.batch_id, exc)
        await asyncio.shield(run_db(store.batch_unclaim, batch.pk))
        if isinstance(exc, upstream.UpstreamError):
            return False
        raise


def _output_files(batch, metered) -> list[dict]:
    """The client's output and error files (OpenAI), or its results (Anthropic)."""
    out = []
    for purpose, lines, suffix in (
        ("batch_output", metered.output, "output"),
        ("batch_output", metered.errors, "errors"),
    ):
        if not lines:
            continue
        data = b"\n".join(lines) + b"\n"
        out.append(
            {
                "file_id": store.new_id("file-"),
                "org_id": batch.org_id,
                "key_id": batch.key_id,
                "purpose": purpose,
                "filename": f"{batch.batch_id}_{suffix}.jsonl",
                "size": len(data),
                "lines": len(lines),
                "content": data,
            }
        )
    return out


async def batches_rehold() -> int:
    """In-process counters (the embedded mode) forget reservations when their process
    restarts: hold every open batch's again, under its lease, for what is left of it. Redis
    keeps them. How many were held."""
    if runtime.admitter.tracks_calls:
        return 0
    held = 0
    lease_seconds = knob("FINOPS_BATCH_LEASE_SECONDS")
    for batch, tz in await run_db(store.batches_reserved):
        reservation = batch.reservation
        if not reservation.get("keys") or not reservation.get("counted", True):
            continue
        config = await runtime.org_config(batch.org_id)
        left = (batch.created_at + timedelta(seconds=lease_seconds) - _now()).total_seconds()
        keys = await runtime.admitter.admit_again(
            record=Owner(batch.org_id, batch.team_id, batch.key_id, tz),
            config=config,
            feature=batch.feature,
            cost=batch.reserved_usd,
            started=batch.created_at,
            lease=reservation["lease"],
            lease_ttl=left,
        )
        if keys and keys != reservation["keys"]:
            await run_db(store.batch_update, batch.pk, reservation={**reservation, "keys": keys})
        held += bool(keys)
    return held


async def batch_fail_stale(batch) -> None:
    """A row whose process died before its upstream batch was recorded: failed, released."""
    done = await run_db(
        store.batch_finish,
        batch.pk,
        files=[],
        status="failed",
        errors=[{"code": "gateway_lost", "message": "The batch was not sent to the provider."}],
    )
    if done:
        await _settle(batch.reservation, ZERO)
