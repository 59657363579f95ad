"""OpenAI's Files and Batch APIs: ``POST /v1/files`` (multipart, any purpose), ``GET
/v1/files`` (``purpose``, ``limit``, ``after``, ``order``), ``GET``/``DELETE /v1/files/{id}``,
``GET /v1/files/{id}/content``; ``POST /v1/batches``, ``GET /v1/batches`` (``after``,
``limit``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.

A batch's lines run through the chat and embeddings endpoints' own answer code, on the clock of
``simulator.batches``: ``validating`` (the create answer), ``in_progress``, ``finalizing``,
then ``completed`` with an output file (one line per answered request, ``response.body`` the
endpoint's answer with its usage) and, when some failed or never ran, an error file. A file
whose lines are not valid batch requests makes the batch ``failed`` with ``errors`` naming the
lines, as upstream. A cancelled batch keeps what had run (``cancelling``, then ``cancelled`` at
the next read); an expiring one what ran before it expired. The stores are bounded (oldest
forgotten first).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs

import orjson

from simulator.batches import (
    MAX_BATCHES,
    MAX_LINES,
    BatchKnobs,
    BatchRequest,
    Clock,
    new_id,
    run_line,
)
from simulator.wire import SimError, json_object, openai_error, send_json

MAX_FILES = 2000
MAX_STORED_BYTES = 512 * 1024 * 1024
URLS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings"}
_BOUNDARY = re.compile(rb'boundary="?([^";]{1,200})"?', re.I)
_DISPOSITION = re.compile(rb'(\w+)="([^"]*)"')


@dataclass(slots=True)
class StoredFile:
    id: str
    purpose: str
    filename: str
    data: bytes
    created: int

    def object(self) -> dict:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass(slots=True)
class OpenAIBatch:
    id: str
    endpoint: str
    input_file_id: str
    metadata: dict | None
    clock: Clock
    lines: list[dict]  # the valid request lines
    errors: list[dict]  # validation errors: the batch failed
    key: bytes | None
    project: bytes | None
    opts: object
    results: list[tuple[int, bytes | None]] = field(default_factory=list)  # status, answer
    cancelling_at: int | None = None
    cancel_pending: bool = False  # the cancel's own answer still says "cancelling"
    finished: bool = False
    cancelled_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_status: bool = True  # the create answer says "validating"


def multipart_fields(body: bytes, content_type: bytes) -> dict[str, tuple[bytes | None, bytes]]:
    """{field name: (filename, data)} of a multipart/form-data body."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise SimError(400, "expected multipart/form-data with a boundary", "invalid_request")
    delimiter = b"--" + match.group(1)
    out: dict[str, tuple[bytes | None, bytes]] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise SimError(400, "malformed multipart/form-data body", "invalid_request")
        params = dict(_DISPOSITION.findall(head))
        name = params.get(b"name")
        if name is not None:
            out.setdefault(name.decode("utf-8", "replace"), (params.get(b"filename"), data[:-2]))
    return out


def _line_errors(data: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
    """(the valid request lines, an error per invalid one, as OpenAI lists them)."""
    lines, errors, seen = [], [], set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        problem = None
        if not isinstance(obj, dict):
            problem = ("invalid_json_line", "This line is not parseable as valid JSON.")
        elif not isinstance(obj.get("custom_id"), str) or obj["custom_id"] in seen:
            problem = ("invalid_custom_id", "custom_id must be a string unique in the batch.")
        elif obj.get("method") != "POST":
            problem = ("invalid_method", "method must be POST.")
        elif obj.get("url") != endpoint:
            problem = ("mismatched_endpoint", f"url must be the batch's endpoint {endpoint}.")
        elif not isinstance(obj.get("body"), dict) or not isinstance(obj["body"].get("model"), str):
            problem = ("missing_required_parameter", "body must be an object with a model.")
        if problem is not None:
            errors.append(
                {"code": problem[0], "line": number, "message": problem[1], "param": None}
            )
            continue
        seen.add(obj["custom_id"])
        lines.append(obj)
    if len(lines) > MAX_LINES:
        errors.append(
            {"code": "too_many_lines", "line": None, "message": "too many requests", "param": None}
        )
    if not lines and not errors:
        errors.append(
            {"code": "empty_file", "line": None, "message": "the file is empty", "param": None}
        )
    return lines, errors


class OpenAIBatches:
    """The files and batches of one simulator process, and what runs their lines."""

    def __init__(self, knobs: BatchKnobs, handlers: dict, ledger) -> None:
        self.knobs = knobs
        self.handlers = handlers  # endpoint kind -> the endpoint's handle(...)
        self.ledger = ledger
        self.files: OrderedDict[str, StoredFile] = OrderedDict()
        self.batches: OrderedDict[str, OpenAIBatch] = OrderedDict()
        self._bytes = 0

    # --- files ------------------------------------------------------------------------------
    def _keep(self, stored: StoredFile) -> None:
        self.files[stored.id] = stored
        self._bytes += len(stored.data)
        while len(self.files) > MAX_FILES or self._bytes > MAX_STORED_BYTES:
            _, old = self.files.popitem(last=False)
            self._bytes -= len(old.data)

    def _file(self, file_id: str | None) -> StoredFile:
        stored = self.files.get(file_id or "")
        if stored is None:
            raise SimError(404, f"No such File object: {file_id}", None, "id")
        return stored

    async def handle(self, req: BatchRequest, send) -> None:
        endpoint, ident = req.endpoint, req.ident
        if endpoint.startswith("file_"):
            await self._files(endpoint, ident, req.body, req.scope, send)
            return
        if endpoint == "batch_create":
            answer = await self._create(req)
        elif endpoint == "batch_list":
            answer = await self._list(req.scope)
        else:
            batch = self.batches.get(ident or "")
            if batch is None:
                raise SimError(404, f"No such Batch object: {ident}", None, "id")
            if endpoint == "batch_cancel":
                await self._cancel(batch)
            answer = await self._object(batch)
        await send_json(send, 200, orjson.dumps(answer))

    async def _files(self, endpoint: str, ident, body: bytes, scope, send) -> None:
        if endpoint == "file_create":
            content_type = dict(scope["headers"]).get(b"content-type", b"")
            fields = multipart_fields(body, content_type)
            purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace").strip()
            if "file" not in fields or not purpose:
                raise SimError(400, "file and purpose are required", "missing_required_parameter")
            name, data = fields["file"]
            stored = StoredFile(
                new_id("file-"),
                purpose,
                (name or b"file").decode("utf-8", "replace"),
                data,
                int(time.time()),
            )
            self._keep(stored)
            await send_json(send, 200, orjson.dumps(stored.object()))
        elif endpoint == "file_list":
            query = _query(scope)
            rows = [
                f
                for f in reversed(self.files.values())
                if f.purpose == query.get("purpose", f.purpose)
            ]
            if query.get("order") == "asc":
                rows.reverse()
            page, more = _page(rows, query)
            await send_json(send, 200, orjson.dumps(_list_body([f.object() for f in page], more)))
        elif endpoint == "file_content":
            stored = self._file(ident)
            await send_json(
                send, 200, stored.data, [(b"content-type", b"application/octet-stream")]
            )
        elif endpoint == "file_delete":
            stored = self._file(ident)
            del self.files[stored.id]
            self._bytes -= len(stored.data)
            await send_json(
                send, 200, orjson.dumps({"id": stored.id, "object": "file", "deleted": True})
            )
        else:
            stored = self._file(ident)
            await send_json(send, 200, orjson.dumps(stored.object()))

    # --- batches ----------------------------------------------------------------------------
    async def _create(self, request: BatchRequest) -> dict:
        opts = request.opts
        req = json_object(request.body)
        endpoint = req.get("endpoint")
        if endpoint not in URLS:
            raise SimError(
                400, f"endpoint must be one of {', '.join(URLS)}", "invalid_value", "endpoint"
            )
        if req.get("completion_window") != "24h":
            raise SimError(
                400, "completion_window must be 24h", "invalid_value", "completion_window"
            )
        stored = self._file(req.get("input_file_id"))
        metadata = req.get("metadata") if isinstance(req.get("metadata"), dict) else None
        lines, errors = _line_errors(stored.data, endpoint)
        delay = (
            opts.batch_delay_ms / 1000 if opts.batch_delay_ms is not None else self.knobs.current
        )
        batch = OpenAIBatch(
            id=new_id("batch_"),
            endpoint=endpoint,
            input_file_id=stored.id,
            metadata=metadata,
            clock=Clock(max(len(lines), 1), delay, expire=self.knobs.expire),
            lines=lines,
            errors=errors,
            key=request.key,
            project=request.project,
            opts=replace(opts, status=None, latency_ms=None, malformed=False),
        )
        self.batches[batch.id] = batch
        while len(self.batches) > MAX_BATCHES:
            self.batches.popitem(last=False)
        answer = await self._object(batch)
        batch.created_status = False
        return answer

    async def _cancel(self, batch: OpenAIBatch) -> None:
        status = await self._status(batch)
        if status in ("completed", "failed", "expired", "cancelled", "cancelling"):
            raise SimError(409, f"Cannot cancel a batch with status '{status}'.", "invalid_state")
        batch.clock.stopped = time.time()
        batch.cancelling_at = int(batch.clock.stopped)
        batch.cancel_pending = True

    async def _advance(self, batch: OpenAIBatch, now: float) -> None:
        """Run the lines that are due, billing each as it runs."""
        kind = URLS[batch.endpoint]
        for index in range(len(batch.results), batch.clock.ran_by(now)):
            body = batch.lines[index]["body"]
            if body.get("stream") is True:
                message = "stream is not supported in a batch"
                batch.results.append((400, openai_error(400, message, "invalid_value", "stream")))
                continue
            status, answer, billed, error = await run_line(
                self.handlers[kind], orjson.dumps(body), batch.opts
            )
            if error is not None:
                answer = openai_error(error.status, error.message, error.code, error.param)
            elif billed is not None:
                self.ledger.record(billed, kind, batch.key, batch.project, batch=True)
            batch.results.append((status, answer))

    async def _status(self, batch: OpenAIBatch) -> str:
        if batch.errors:
            return "validating" if batch.created_status else "failed"
        if batch.created_status:
            return "validating"
        now = time.time()
        await self._advance(batch, now)
        clock = batch.clock
        if batch.cancelling_at is not None:
            if batch.cancel_pending:  # the cancel's own answer
                batch.cancel_pending = False
                return "cancelling"
            if not batch.finished:
                self._finish(batch, "batch_cancelled")
                batch.cancelled_at = int(now)
            return "cancelled"
        if now >= clock.ends_at:
            if not batch.finished:
                self._finish(batch, "batch_expired" if clock.expire else "batch_failed")
            return "expired" if clock.expire else "completed"
        return "finalizing" if now >= clock.finalizing_at else "in_progress"

    def _finish(self, batch: OpenAIBatch, not_run: str) -> None:
        """The output and error files of a batch that has ended."""
        batch.finished = True
        output, errors = [], []
        for index, line in enumerate(batch.lines):
            rid = f"batch_req_{batch.id[6:18]}{index:06d}"
            record = {"id": rid, "custom_id": line["custom_id"], "response": None, "error": None}
            if index < len(batch.results):
                status, answer = batch.results[index]
                record["response"] = {
                    "status_code": status,
                    "request_id": f"req_{rid[10:]}",
                    "body": orjson.loads(answer) if answer else None,
                }
                (output if status == 200 else errors).append(orjson.dumps(record))
            else:
                message = f"This request was not executed ({not_run})."
                record["error"] = {"code": not_run, "message": message}
                errors.append(orjson.dumps(record))
        now = int(time.time())
        for lines, attr, suffix in (
            (output, "output_file_id", "output"),
            (errors, "error_file_id", "error"),
        ):
            if lines:
                data = b"\n".join(lines) + b"\n"
                name = f"{batch.id}_{suffix}.jsonl"
                stored = StoredFile(new_id("file-"), "batch_output", name, data, now)
                self._keep(stored)
                setattr(batch, attr, stored.id)

    async def _object(self, batch: OpenAIBatch) -> dict:
        status = await self._status(batch)
        clock = batch.clock
        done = batch.results
        ok = sum(1 for status, _ in done if status == 200)
        ended = status in ("completed", "expired", "cancelled", "failed")
        total = len(batch.lines)
        failed = len(done) - ok + (total - len(done) if ended and status != "failed" else 0)
        created = int(clock.created)
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id if ended else None,
            "error_file_id": batch.error_file_id if ended else None,
            "created_at": created,
            "in_progress_at": created if not batch.errors and status != "validating" else None,
            "expires_at": created + 86_400,
            "finalizing_at": int(clock.finalizing_at)
            if status in ("finalizing", "completed")
            else None,
            "completed_at": int(clock.ends_at) if status == "completed" else None,
            "failed_at": created if status == "failed" else None,
            "expired_at": int(clock.ends_at) if status == "expired" else None,
            "cancelling_at": batch.cancelling_at,
            "cancelled_at": batch.cancelled_at,
            "request_counts": {"total": total, "completed": ok, "failed": failed},
            "metadata": batch.metadata,
        }

    async def _list(self, scope) -> dict:
        page, more = _page(list(reversed(self.batches.values())), _query(scope))
        return _list_body([await self._object(b) for b in page], more)


def _query(scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[0] for k, v in parse_qs(raw).items()}


def _page(rows: list, query: dict) -> tuple[list, bool]:
    """The rows after ``after``, at most ``limit``; whether more follow."""
    after = query.get("after")
    if after:
        ids = [r.id for r in rows]
        rows = rows[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, min(int(query.get("limit", 20)), 10_000))
    except ValueError:
        raise SimError(400, "limit must be an integer", "invalid_value", "limit") from None
    return rows[:limit], len(rows) > limit


def _list_body(data: list[dict], more: bool) -> dict:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }
