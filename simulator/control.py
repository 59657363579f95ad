"""The control endpoints under ``/_sim/`` (no auth, no failure injection) and what they report:

- ``GET /_sim/health``: ``{"status": "ok", "requests": N}``.
- ``GET /_sim/last?path=...``: headers and body of the last request on a path, plus how many
  arrived there.
- ``POST /_sim/reset``: forgets the recorded requests and the billed usage, and resets the batch
  knobs.
- ``POST /_sim/usage``: adds historical usage to what the admin reports show (demo history,
  multi-day tests). The body is a JSON array of records, all checked before any is added (a
  bad one is a 400 naming it); the answer is ``{"status": "ok", "recorded": N}``. A record::

      {"at": "2025-05-01T12:30:00Z" or 1746102600,   # its UTC minute is the one billed
       "endpoint": "chat",      # or "completions", "responses", "embeddings", "messages"
       "model": "gpt-4o-mini",
       "api_key": "sk-...",     # the raw key (its id is derived as for served calls),
       "api_key_id": "key_...", #   or the id itself, or neither (null, as console usage)
       "project": "proj_x",     # OpenAI endpoints only; default "proj_default"
       "workspace": "wrkspc_x", # "messages" only; default null (the default workspace)
       "input_tokens": 1000,    # uncached input, without cached and cache-write tokens
       "cached_tokens": 0, "cache_write_tokens": 0, "output_tokens": 200,
       "requests": 1,           # every count optional: 0, requests 1
       "batch": false}          # a batch line's usage (priced at the batch rates)
- ``GET``/``POST /_sim/batches``: the batch APIs' knobs for batches created afterwards,
  ``{"delay": seconds or null (the --batch-delay flag's), "expire": false}`` (``expire``: they
  run their first half, then expire).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import orjson

from simulator.batches import BatchKnobs
from simulator.billing import Ledger
from simulator.wire import SimError, read_body, send_error, send_json

MAX_RECORDED_PATHS = 256


class Control:
    """The last request per path (at most ``MAX_RECORDED_PATHS`` paths) and the counts; the
    billed usage's controls."""

    def __init__(self, ledger: Ledger | None = None, knobs: BatchKnobs | None = None) -> None:
        self._ledger = ledger or Ledger({})
        self._knobs = knobs or BatchKnobs(default_delay=0.5)
        self._last: dict[str, tuple] = {}
        self._counts: dict[str, int] = {}
        self._total = 0

    def record(self, path: str, method: str, scope, body: bytes) -> None:
        self._total += 1
        if path not in self._last and len(self._last) >= MAX_RECORDED_PATHS:
            return
        self._last[path] = (method, scope["query_string"], scope["headers"], body, time.time())
        self._counts[path] = self._counts.get(path, 0) + 1

    async def handle(self, scope, receive, send) -> None:
        try:
            body = await read_body(receive)
        except SimError as exc:
            await send_error(send, exc, anthropic=False)
            return
        path = scope["path"]
        method = scope["method"]
        if path == "/_sim/health" and method == "GET":
            await send_json(send, 200, orjson.dumps({"status": "ok", "requests": self._total}))
        elif path == "/_sim/last" and method == "GET":
            await self._send_last(scope, send)
        elif path == "/_sim/reset" and method == "POST":
            self._last.clear()
            self._counts.clear()
            self._total = 0
            self._ledger.clear()
            self._knobs.delay, self._knobs.expire = None, False
            await send_json(send, 200, b'{"status":"ok"}')
        elif path == "/_sim/usage" and method == "POST":
            await self._inject(body, send)
        elif path == "/_sim/batches" and method in ("GET", "POST"):
            await self._batch_knobs(body if method == "POST" else b"", send)
        else:
            err = SimError(404, f"Unknown request URL: {method} {path}", "unknown_url")
            await send_error(send, err, anthropic=False)

    async def _inject(self, body: bytes, send) -> None:
        try:
            recorded = self._ledger.inject(orjson.loads(body))
        except orjson.JSONDecodeError:
            err = SimError(400, "request body is not valid JSON", "invalid_json")
        except ValueError as exc:
            err = SimError(400, str(exc), "invalid_value")
        else:
            await send_json(send, 200, orjson.dumps({"status": "ok", "recorded": recorded}))
            return
        await send_error(send, err, anthropic=False)

    async def _batch_knobs(self, body: bytes, send) -> None:
        knobs = self._knobs
        if body:
            try:
                change = orjson.loads(body)
            except orjson.JSONDecodeError:
                change = None
            delay = change.get("delay", knobs.delay) if isinstance(change, dict) else None
            expire = change.get("expire", knobs.expire) if isinstance(change, dict) else None
            valid_delay = delay is None or (
                isinstance(delay, int | float)
                and not isinstance(delay, bool)
                and 0 <= delay <= 86_400
            )
            if not isinstance(change, dict) or not valid_delay or not isinstance(expire, bool):
                err = SimError(
                    400,
                    'expected {"delay": 0..86400 seconds or null, "expire": bool}',
                    "invalid_value",
                )
                await send_error(send, err, anthropic=False)
                return
            knobs.delay, knobs.expire = delay, expire
        answer = {"delay": knobs.current, "expire": knobs.expire}
        await send_json(send, 200, orjson.dumps(answer))

    async def _send_last(self, scope, send) -> None:
        query = parse_qs(scope["query_string"].decode("latin-1"))
        wanted = (query.get("path") or ["/v1/chat/completions"])[0]
        record = self._last.get(wanted)
        if record is None:
            err = SimError(404, f"no request recorded for {wanted}", "not_recorded")
            await send_error(send, err, anthropic=False)
            return
        await send_json(send, 200, orjson.dumps(self._describe(wanted, record)))

    def _describe(self, path: str, record: tuple) -> dict:
        method, query, raw_headers, body, at = record
        headers: dict[str, str] = {}
        for name, value in raw_headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", "replace")
        return {
            "path": path,
            "method": method,
            "query": query.decode("latin-1"),
            "headers": headers,
            "body": parsed,
            "count": self._counts.get(path, 0),
            "received_at": at,
        }
