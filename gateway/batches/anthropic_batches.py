"""Anthropic's Message Batches: ``POST /v1/messages/batches``, ``GET /v1/messages/batches``
(``after_id``, ``before_id``, ``limit``), ``GET``/``DELETE /v1/messages/batches/{id}``,
``POST …/{id}/cancel`` and ``GET …/{id}/results`` (JSONL), in Anthropic's shapes (its errors
too: every path under ``/v1/messages`` answers them).

The batch reads ``in_progress`` (``canceling`` once a cancel was asked) until the gateway has
metered it; ``ended`` comes with its ``results_url``, whose lines carry the client's model
names.
"""

from __future__ import annotations

import re
from datetime import datetime

import orjson

from gateway.batches import knob, store
from gateway.batches.files import limit_of, query
from gateway.batches.lines import ANTHROPIC_ENDPOINT, anthropic_lines
from gateway.batches.openai_batches import finops_headers
from gateway.batches.service import batch_cancel, batch_create, batch_refresh, run_db
from gateway.errors import GatewayError, invalid
from gateway.http import header, read_body, send_bytes, send_json

BATCH_ID = re.compile(r"^msgbatch_[A-Za-z0-9]{1,60}$")
HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,255}$")
COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


def _base_url(scope) -> str:
    """The gateway as the client reached it, for ``results_url`` (relative when the Host header
    is unusable: the SDK resolves it against its base URL)."""
    host = (header(scope, b"host") or b"").decode("latin-1")
    if not HOST.match(host):
        return ""
    return f"{scope.get('scheme', 'http')}://{host}"


def batch_object(batch, scope) -> dict:
    metered = batch.metered_at is not None
    if metered:
        status = "ended"
    elif batch.cancel_requested_at or batch.status == "canceling":
        status = "canceling"
    else:
        status = "in_progress"
    counts = batch.request_counts or {}
    results = f"{_base_url(scope)}/v1/messages/batches/{batch.batch_id}/results"
    ended = (batch.upstream_times or {}).get("ended_at") or _iso(batch.metered_at)
    return {
        "id": batch.batch_id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {k: int(counts.get(k) or 0) for k in COUNTS},
        "ended_at": ended if metered else None,
        "created_at": _iso(batch.created_at),
        "expires_at": _iso(batch.expires_at),
        "archived_at": None,
        "cancel_initiated_at": _iso(batch.cancel_requested_at),
        "results_url": results if metered and batch.output_file_id else None,
    }


def _method_error(method: str, allowed: str) -> GatewayError:
    return GatewayError(
        405,
        "method_not_allowed",
        f"Method {method} not allowed; use {allowed}.",
        headers=[(b"allow", allowed.encode())],
    )


async def anthropic_batches_route(scope, receive, send, rid, record) -> None:
    method, path = scope["method"], scope["path"]
    tail = path.removeprefix("/v1/messages/batches").strip("/")
    if not tail:
        if method == "POST":
            batch = await _create(scope, receive, record)
            await send_json(send, 200, batch_object(batch, scope), finops_headers(batch, rid))
        elif method == "GET":
            await _list(scope, send, rid, record)
        else:
            raise _method_error(method, "GET, POST")
        return
    batch_id, _, rest = tail.partition("/")
    allowed = {"": "GET, DELETE", "cancel": "POST", "results": "GET"}.get(rest)
    if allowed is None:
        raise GatewayError(404, "unknown_url", f"Unknown request URL: {method} {path[:200]}")
    if method not in allowed.split(", "):
        raise _method_error(method, allowed)
    if not BATCH_ID.match(batch_id):
        raise store.not_found("message batch", batch_id)
    batch = await run_db(store.batch_get, record.org_id, record.key_id, "anthropic", batch_id)
    if rest == "results":
        await _results(send, rid, record, batch)
        return
    if method == "DELETE":
        if batch.metered_at is None:
            raise invalid(
                "invalid_request",
                f"Batch {batch_id} is still in progress: cancel it and wait for it to end first.",
            )
        await run_db(store.batch_delete, batch.pk)
        await send_json(send, 200, {"id": batch_id, "type": "message_batch_deleted"}, rid)
        return
    batch = await (batch_cancel(batch) if rest == "cancel" else batch_refresh(batch))
    await send_json(send, 200, batch_object(batch, scope), finops_headers(batch, rid))


async def _results(send, rid, record, batch) -> None:
    if batch.metered_at is None:
        batch = await batch_refresh(batch)
    if batch.metered_at is None or not batch.output_file_id:
        raise GatewayError(
            404,
            "not_found",
            f"Batch {batch.batch_id} has not ended yet: its results are not available.",
        )
    row = await run_db(
        store.file_get, record.org_id, record.key_id, batch.output_file_id, content=True
    )
    await send_bytes(
        send, 200, bytes(row.content), [(b"content-type", b"application/x-jsonl"), *rid]
    )


async def _create(scope, receive, record):
    limit = knob("FINOPS_BATCH_MAX_BYTES")
    try:
        raw = await read_body(receive, limit, seconds=knob("FINOPS_BATCH_UPLOAD_SECONDS"))
    except GatewayError as exc:
        if exc.status == 413:
            raise invalid(
                "request_too_large",
                f"The batch exceeds the gateway's limit of {limit} bytes "
                "(FINOPS_BATCH_MAX_BYTES); split it.",
            ) from None
        raise
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise invalid("invalid_json", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("invalid_json", "The request body must be a JSON object.")
    lines = await run_db(anthropic_lines, body, max_lines=knob("FINOPS_BATCH_MAX_LINES"))
    return await batch_create(
        scope=scope,
        record=record,
        api="anthropic",
        lines=lines,
        endpoint=ANTHROPIC_ENDPOINT,
        metadata={},
    )


async def _list(scope, send, rid, record) -> None:
    params = query(scope)
    limit = limit_of(params, highest=1000)
    rows, more = await run_db(
        store.batch_list,
        record.org_id,
        record.key_id,
        "anthropic",
        after=params.get("after_id") or None,
        before=params.get("before_id") or None,
        limit=limit,
    )
    data = [batch_object(r, scope) for r in rows]
    await send_json(
        send,
        200,
        {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        },
        rid,
    )
