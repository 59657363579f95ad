"""``/v1/files``: the Batch API's files, kept by the gateway (``gateway.models.BatchFile``).

- ``POST /v1/files`` (multipart ``file`` + ``purpose=batch``): the JSONL is checked line by
  line before it is kept (a 400 naming the first bad line), at most ``FINOPS_BATCH_MAX_BYTES``
  bytes and ``FINOPS_BATCH_MAX_LINES`` requests. Only ``purpose=batch`` is accepted: the
  gateway keeps no other files.
- ``GET /v1/files`` (``purpose``, ``limit``, ``after``, ``order``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``: the key's own files, its inputs
  and the outputs the gateway built (``purpose`` ``batch_output``).

Nothing is sent upstream here: the provider is known only when a batch names the file (its
lines' models decide it), and it gets the rewritten lines then.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from gateway.batches import knob, multipart, store
from gateway.batches.lines import openai_lines
from gateway.batches.service import run_db
from gateway.errors import GatewayError, invalid
from gateway.http import header, list_page, read_body, send_bytes, send_json

FRAMING_BYTES = 64 * 1024  # multipart boundaries and headers around the file
LIST_LIMIT = 100
FILE_ID = re.compile(r"^file-[A-Za-z0-9]{1,60}$")


def file_object(row) -> dict:
    return {
        "id": row.file_id,
        "object": "file",
        "bytes": row.size,
        "created_at": int(row.created_at.timestamp()),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def query(scope) -> dict[str, str]:
    """The query string's parameters, the first value of each (bounded)."""
    raw = scope.get("query_string", b"")[:4096].decode("latin-1")
    return {k: v[0] for k, v in parse_qs(raw, max_num_fields=20).items()}


def limit_of(params: dict, default: int = 20, highest: int = LIST_LIMIT) -> int:
    raw = params.get("limit")
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= highest:
        raise invalid("invalid_value", f"'limit' must be an integer from 1 to {highest}.", "limit")
    return int(raw)


def _filename(raw: str | None) -> str:
    name = (raw or "batch.jsonl").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:255]
    return name or "batch.jsonl"


def _method_error(method: str, allowed: str) -> GatewayError:
    return GatewayError(
        405,
        "method_not_allowed",
        f"Method {method} not allowed; use {allowed}.",
        headers=[(b"allow", allowed.encode())],
    )


async def files_route(scope, receive, send, rid, record) -> None:
    method, path = scope["method"], scope["path"]
    tail = path.removeprefix("/v1/files").strip("/")
    if not tail:
        if method == "POST":
            await _upload(scope, receive, send, rid, record)
        elif method == "GET":
            await _list(scope, send, rid, record)
        else:
            raise _method_error(method, "GET, POST")
        return
    file_id, _, rest = tail.partition("/")
    if rest not in ("", "content"):
        raise GatewayError(404, "unknown_url", f"Unknown request URL: {method} {path[:200]}")
    if not FILE_ID.match(file_id):
        raise store.not_found("File", file_id)
    if rest == "content":
        if method != "GET":
            raise _method_error(method, "GET")
        row = await run_db(store.file_get, record.org_id, record.key_id, file_id, content=True)
        headers = [(b"content-type", b"application/octet-stream"), *rid]
        await send_bytes(send, 200, bytes(row.content), headers)
    elif method == "GET":
        row = await run_db(store.file_get, record.org_id, record.key_id, file_id)
        await send_json(send, 200, file_object(row), rid)
    elif method == "DELETE":
        await run_db(store.file_delete, record.org_id, record.key_id, file_id)
        await send_json(send, 200, {"id": file_id, "object": "file", "deleted": True}, rid)
    else:
        raise _method_error(method, "GET, DELETE")


async def _upload(scope, receive, send, rid, record) -> None:
    limit = knob("FINOPS_BATCH_MAX_BYTES")
    too_large = invalid(
        "file_too_large",
        f"The file exceeds the gateway's limit of {limit} bytes (FINOPS_BATCH_MAX_BYTES); "
        "split the batch.",
        "file",
    )
    try:
        body = await read_body(
            receive, limit + FRAMING_BYTES, seconds=knob("FINOPS_BATCH_UPLOAD_SECONDS")
        )
    except GatewayError as exc:
        if exc.status == 413:
            raise too_large from None
        raise
    content_type = (header(scope, b"content-type") or b"").decode("latin-1")
    parts = multipart.parse(body, content_type)
    purpose_part = parts.get("purpose")
    purpose = purpose_part.data.decode("utf-8", "replace").strip() if purpose_part else ""
    if purpose != "batch":
        raise invalid(
            "invalid_value",
            "This gateway keeps files for the Batch API only: 'purpose' must be 'batch'.",
            "purpose",
        )
    upload = parts.get("file")
    if upload is None or upload.filename is None:
        raise invalid("missing_field", "Missing required parameter: 'file'.", "file")
    if len(upload.data) > limit:
        raise too_large
    max_lines = knob("FINOPS_BATCH_MAX_LINES")
    lines = await run_db(openai_lines, upload.data, max_lines=max_lines)
    row = await run_db(
        store.file_create,
        org_id=record.org_id,
        key_id=record.key_id,
        purpose="batch",
        filename=_filename(upload.filename),
        data=upload.data,
        lines=len(lines),
    )
    await send_json(send, 200, file_object(row), rid)


async def _list(scope, send, rid, record) -> None:
    params = query(scope)
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("invalid_value", "'order' must be 'asc' or 'desc'.", "order")
    limit = limit_of(params, default=LIST_LIMIT)
    rows, more = await run_db(
        store.file_list,
        record.org_id,
        record.key_id,
        purpose=params.get("purpose") or None,
        after=params.get("after") or None,
        limit=limit,
        order=order,
    )
    data = [file_object(r) for r in rows]
    await send_json(send, 200, list_page(data, has_more=more), rid)
