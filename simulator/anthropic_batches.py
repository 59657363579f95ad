"""Anthropic's Message Batches: ``POST /v1/messages/batches``, ``GET /v1/messages/batches``
(``after_id``, ``before_id``, ``limit``), ``GET``/``DELETE /v1/messages/batches/{id}``,
``POST …/{id}/cancel`` and ``GET …/{id}/results`` (JSONL, once ended).

Requests are checked when the batch is created (a 400 names the request: ``custom_id`` of 1
to 64 letters, digits, ``_`` or ``-``, unique; ``params`` an object); each one's params run
through the Messages endpoint's own answer code on the clock of ``simulator.batches``, a
request the endpoint refuses becoming an ``errored`` result. ``processing_status`` is
``in_progress``, then ``ended`` with a ``results_url``; a cancel makes it ``canceling`` and
``ended`` at the next read, the requests not yet run ``canceled`` (``expired`` for an expiring
batch). ``request_counts`` count every request once.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
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
from simulator.wire import SimError, json_object, send_json

CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,255}$")


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class MessageBatch:
    id: str
    requests: list[dict]
    clock: Clock
    key: bytes | None
    opts: object
    results: list[dict] = field(default_factory=list)  # one ``result`` per request run
    cancel_at: float | None = None
    cancel_pending: bool = False
    ended_at: float | None = None


def _checked(body: bytes) -> list[dict]:
    req = json_object(body)
    requests = req.get("requests")
    if not isinstance(requests, list) or not requests:
        raise SimError(400, "requests: a non-empty array is required", "invalid_request_error")
    if len(requests) > MAX_LINES:
        raise SimError(400, f"requests: at most {MAX_LINES}", "invalid_request_error")
    seen = set()
    for index, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise SimError(400, f"requests.{index}.custom_id: invalid", "invalid_request_error")
        if custom_id in seen:
            raise SimError(400, f"requests.{index}.custom_id: duplicate", "invalid_request_error")
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            raise SimError(400, f"requests.{index}.params: Field required", "invalid_request_error")
    return requests


class AnthropicBatches:
    def __init__(self, knobs: BatchKnobs, handler, ledger) -> None:
        self.knobs = knobs
        self.handler = handler  # the Messages endpoint's handle(...)
        self.ledger = ledger
        self.batches: OrderedDict[str, MessageBatch] = OrderedDict()

    async def handle(self, req: BatchRequest, send) -> None:
        endpoint = req.endpoint
        if endpoint == "msgbatch_create":
            await send_json(send, 200, orjson.dumps(await self._create(req)))
            return
        if endpoint == "msgbatch_list":
            await send_json(send, 200, orjson.dumps(await self._list(req.scope)))
            return
        batch = self.batches.get(req.ident or "")
        if batch is None:
            raise SimError(404, f"message batch {req.ident} not found", "not_found_error")
        if endpoint == "msgbatch_results":
            await self._results(batch, send)
            return
        if endpoint == "msgbatch_delete":
            if await self._status(batch) != "ended":
                raise SimError(
                    400, "a batch must end before it is deleted", "invalid_request_error"
                )
            del self.batches[batch.id]
            answer = {"id": batch.id, "type": "message_batch_deleted"}
        else:
            if endpoint == "msgbatch_cancel":
                await self._cancel(batch)
            answer = await self._object(batch, req.scope)
        await send_json(send, 200, orjson.dumps(answer))

    async def _create(self, req: BatchRequest) -> dict:
        requests = _checked(req.body)
        opts = req.opts
        delay = (
            opts.batch_delay_ms / 1000 if opts.batch_delay_ms is not None else self.knobs.current
        )
        batch = MessageBatch(
            id=new_id("msgbatch_"),
            requests=requests,
            clock=Clock(len(requests), delay, expire=self.knobs.expire),
            key=req.key,
            opts=replace(opts, status=None, latency_ms=None, malformed=False),
        )
        self.batches[batch.id] = batch
        while len(self.batches) > MAX_BATCHES:
            self.batches.popitem(last=False)
        return await self._object(batch, req.scope)

    async def _cancel(self, batch: MessageBatch) -> None:
        if await self._status(batch) != "in_progress":
            raise SimError(
                409, "only an in-progress batch can be canceled", "invalid_request_error"
            )
        await self._advance(batch, time.time())
        batch.clock.stopped = batch.cancel_at = time.time()
        batch.cancel_pending = True

    async def _advance(self, batch: MessageBatch, now: float) -> None:
        for index in range(len(batch.results), batch.clock.ran_by(now)):
            params = batch.requests[index]["params"]
            if params.get("stream") is True:
                batch.results.append(_errored("stream is not supported in a batch"))
                continue
            status, answer, billed, error = await run_line(
                self.handler, orjson.dumps(params), batch.opts
            )
            if error is not None or answer is None:
                batch.results.append(_errored(error.message if error else f"HTTP {status}"))
                continue
            if billed is not None:
                self.ledger.record(billed, "messages", batch.key, None, batch=True)
            message = orjson.loads(answer)
            if isinstance(message.get("usage"), dict):
                message["usage"]["service_tier"] = "batch"  # as upstream reports a batch line
            batch.results.append({"type": "succeeded", "message": message})

    async def _status(self, batch: MessageBatch) -> str:
        now = time.time()
        if batch.ended_at is not None:
            return "ended"
        await self._advance(batch, now)
        if batch.cancel_at is not None:
            if batch.cancel_pending:
                batch.cancel_pending = False
                return "canceling"
            batch.ended_at = now
            return "ended"
        if now >= batch.clock.ends_at:
            batch.ended_at = batch.clock.ends_at
            return "ended"
        return "in_progress"

    def _result(self, batch: MessageBatch, index: int) -> dict:
        if index < len(batch.results):
            return batch.results[index]
        return {"type": "canceled" if batch.cancel_at is not None else "expired"}

    def _counts(self, batch: MessageBatch, ended: bool) -> dict:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if not ended:
            counts["processing"] = len(batch.requests)
            return counts
        for index in range(len(batch.requests)):
            counts[self._result(batch, index)["type"]] += 1
        return counts

    async def _object(self, batch: MessageBatch, scope) -> dict:
        status = await self._status(batch)
        ended = status == "ended"
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        base = f"{scope.get('scheme', 'http')}://{host}" if _HOST.match(host) else ""
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": self._counts(batch, ended),
            "ended_at": _iso(batch.ended_at),
            "created_at": _iso(batch.clock.created),
            "expires_at": _iso(batch.clock.created + 86_400),
            "archived_at": None,
            "cancel_initiated_at": _iso(batch.cancel_at),
            "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    async def _results(self, batch: MessageBatch, send) -> None:
        if await self._status(batch) != "ended":
            raise SimError(400, f"batch {batch.id} is still processing", "invalid_request_error")
        lines = [
            orjson.dumps({"custom_id": r["custom_id"], "result": self._result(batch, i)})
            for i, r in enumerate(batch.requests)
        ]
        body = b"\n".join(lines) + b"\n"
        await send_json(send, 200, body, [(b"content-type", b"application/x-jsonl")])

    async def _list(self, scope) -> dict:
        query = {
            k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()
        }
        rows = list(reversed(self.batches.values()))
        ids = [b.id for b in rows]
        if query.get("after_id") in ids:
            rows = rows[ids.index(query["after_id"]) + 1 :]
        elif query.get("before_id") in ids:
            rows = rows[: ids.index(query["before_id"])]
        try:
            limit = max(1, min(int(query.get("limit", 20)), 1000))
        except ValueError:
            raise SimError(400, "limit: must be an integer", "invalid_request_error") from None
        more = len(rows) > limit
        rows = rows[-limit:] if query.get("before_id") in ids else rows[:limit]
        data = [await self._object(b, scope) for b in rows]
        return {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }


def _errored(message: str) -> dict:
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
    }
