"""OpenAI's Batch API: ``POST /v1/batches``, ``GET /v1/batches`` (``after``, ``limit``),
``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, in OpenAI's shapes.

A ``GET`` of one batch asks the provider first (and meters the batch if it has ended); the
list shows what the gateway last saw (the poller keeps it within ``FINOPS_BATCH_POLL_SECONDS``).
A batch the provider has finished but the gateway has not yet metered reads ``finalizing``
(``cancelling`` when cancelled): ``completed`` comes with its ``output_file_id``, whose lines
carry the client's ``custom_id`` and model names.
"""

from __future__ import annotations

import re

import orjson
from django.conf import settings

from gateway.batches import knob, store
from gateway.batches.files import limit_of, query
from gateway.batches.lines import OPENAI_URLS, openai_lines
from gateway.batches.service import batch_cancel, batch_create, batch_refresh, run_db, terminal
from gateway.errors import GatewayError, invalid
from gateway.http import list_page, read_body, send_json
from gateway.pricing import decimal_str

BATCH_ID = re.compile(r"^batch_[A-Za-z0-9]{1,60}$")
TIMES = ("in_progress_at", "finalizing_at", "cancelling_at")
FINAL_TIMES = ("completed_at", "failed_at", "expired_at", "cancelled_at")
MAX_METADATA = 16


def client_status(batch) -> str:
    if batch.metered_at is not None or not terminal(batch) or batch.status == "failed":
        return batch.status
    return "cancelling" if batch.status == "cancelled" else "finalizing"


def batch_object(batch) -> dict:
    times = batch.upstream_times or {}
    metered = batch.metered_at is not None
    obj = {
        "id": batch.batch_id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": client_status(batch),
        "output_file_id": (batch.output_file_id or None) if metered else None,
        "error_file_id": (batch.error_file_id or None) if metered else None,
        "created_at": int(batch.created_at.timestamp()),
        "expires_at": int(batch.expires_at.timestamp()),
        **{name: times.get(name) for name in TIMES},
        **{name: times.get(name) if metered else None for name in FINAL_TIMES},
        "request_counts": {
            k: int((batch.request_counts or {}).get(k) or 0)
            for k in ("total", "completed", "failed")
        },
        "metadata": batch.metadata or None,
    }
    if batch.status == "failed" and metered and not obj["failed_at"]:
        obj["failed_at"] = int(batch.metered_at.timestamp())
    return obj


def finops_headers(batch, rid) -> list:
    """The batch's reservation and, once metered, its cost and saving, as response headers."""
    headers = [*rid, (b"x-finops-reserved", decimal_str(batch.reserved_usd).encode())]
    if batch.metered_at is not None:
        headers += [
            (b"x-finops-cost", decimal_str(batch.cost_usd).encode()),
            (b"x-finops-saved", decimal_str(batch.saved_usd).encode()),
        ]
    return headers


def _method_error(method: str, allowed: str) -> GatewayError:
    return GatewayError(
        405,
        "method_not_allowed",
        f"Method {method} not allowed; use {allowed}.",
        headers=[(b"allow", allowed.encode())],
    )


async def openai_batches_route(scope, receive, send, rid, record) -> None:
    method, path = scope["method"], scope["path"]
    tail = path.removeprefix("/v1/batches").strip("/")
    if not tail:
        if method == "POST":
            batch = await _create(scope, receive, record)
            await send_json(send, 200, batch_object(batch), finops_headers(batch, rid))
        elif method == "GET":
            await _list(scope, send, rid, record)
        else:
            raise _method_error(method, "GET, POST")
        return
    batch_id, _, rest = tail.partition("/")
    if rest not in ("", "cancel"):
        raise GatewayError(404, "unknown_url", f"Unknown request URL: {method} {path[:200]}")
    if not BATCH_ID.match(batch_id):
        raise store.not_found("Batch", batch_id)
    if rest == "cancel" and method != "POST":
        raise _method_error(method, "POST")
    if not rest and method != "GET":
        raise _method_error(method, "GET")
    batch = await run_db(store.batch_get, record.org_id, record.key_id, "openai", batch_id)
    batch = await (batch_cancel(batch) if rest else batch_refresh(batch))
    await send_json(send, 200, batch_object(batch), finops_headers(batch, rid))


def _metadata(value) -> dict:
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > MAX_METADATA
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
            for k, v in value.items()
        )
    ):
        raise invalid(
            "invalid_value",
            f"'metadata' must map at most {MAX_METADATA} keys (64 chars) to strings (512 chars).",
            "metadata",
        )
    return value


async def _create(scope, receive, record):
    raw = await read_body(
        receive, settings.FINOPS_MAX_REQUEST_BYTES, seconds=settings.FINOPS_BODY_READ_SECONDS
    )
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise invalid("invalid_json", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("invalid_json", "The request body must be a JSON object.")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise invalid(
            "missing_field", "Missing required parameter: 'input_file_id'.", "input_file_id"
        )
    endpoint = body.get("endpoint")
    if endpoint not in OPENAI_URLS:
        allowed = ", ".join(OPENAI_URLS)
        raise invalid("invalid_value", f"'endpoint' must be one of {allowed}.", "endpoint")
    if body.get("completion_window") != "24h":
        raise invalid("invalid_value", "'completion_window' must be '24h'.", "completion_window")
    metadata = _metadata(body.get("metadata"))
    row = await run_db(store.file_get, record.org_id, record.key_id, file_id, content=True)
    if row.purpose != "batch":
        raise invalid(
            "invalid_value",
            f"File {file_id} is not a batch input (purpose 'batch').",
            "input_file_id",
        )
    lines = await run_db(openai_lines, bytes(row.content), max_lines=knob("FINOPS_BATCH_MAX_LINES"))
    if lines[0].api != OPENAI_URLS[endpoint]:
        raise GatewayError(
            400,
            "invalid_value",
            f"Line {lines[0].number}: its url does not match the batch's endpoint {endpoint}.",
            param=f"line {lines[0].number}",
        )
    return await batch_create(
        scope=scope,
        record=record,
        api="openai",
        lines=lines,
        endpoint=endpoint,
        metadata=metadata,
        input_file_id=file_id,
    )


async def _list(scope, send, rid, record) -> None:
    params = query(scope)
    limit = limit_of(params)
    rows, more = await run_db(
        store.batch_list,
        record.org_id,
        record.key_id,
        "openai",
        after=params.get("after") or None,
        before=None,
        limit=limit,
    )
    data = [batch_object(r) for r in rows]
    await send_json(send, 200, list_page(data, has_more=more), rid)
