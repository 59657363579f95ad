"""The HTTP plumbing every endpoint shares: ``SimError`` and its two error shapes (OpenAI's and
Anthropic's), raw ASGI sends, request-body reading, SSE framing, paced streams and the
simulated connection drop."""

from __future__ import annotations

import asyncio

import orjson

MAX_BODY_BYTES = 32 * 1024 * 1024

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
# A 200 whose body is cut off mid-JSON (--malformed-rate).
MALFORMED = b'{"id": "chatcmpl-sim", "object": "chat.completion", "choices": [{"index": 0, "mess'

# status: (OpenAI error type, Anthropic error type)
ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("invalid_request_error", "authentication_error"),
    403: ("permission_error", "permission_error"),
    404: ("invalid_request_error", "not_found_error"),
    408: ("timeout", "timeout_error"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "invalid_request_error"),
    429: ("rate_limit_error", "rate_limit_error"),
    500: ("server_error", "api_error"),
    502: ("server_error", "api_error"),
    503: ("server_error", "overloaded_error"),
    504: ("server_error", "api_error"),
    529: ("server_error", "overloaded_error"),
}


class SimError(Exception):
    """An error answer: raised anywhere while serving a request, sent by the app."""

    def __init__(
        self, status: int, message: str, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


# --- errors ----------------------------------------------------------------------------------


def openai_error(status: int, message: str, code: str | None, param: str | None) -> bytes:
    kind = ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error",))
    return orjson.dumps(
        {"error": {"message": message, "type": kind[0], "param": param, "code": code}}
    )


def anthropic_error(status: int, message: str) -> bytes:
    pair = ERROR_TYPES.get(status)
    kind = pair[1] if pair else ("api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


async def send_error(
    send, exc: SimError, *, anthropic: bool, retry_after: bytes | None = None
) -> None:
    """``exc`` in Anthropic's shape or OpenAI's; a 429 carries ``Retry-After`` when given."""
    if anthropic:
        body = anthropic_error(exc.status, exc.message)
    else:
        body = openai_error(exc.status, exc.message, exc.code, exc.param)
    headers = JSON_HEADERS
    if exc.status == 429 and retry_after is not None:
        headers = [*JSON_HEADERS, (b"retry-after", retry_after)]
    await send_json(send, exc.status, body, headers)


# --- requests and answers --------------------------------------------------------------------


async def send_json(send, status: int, body: bytes, headers=JSON_HEADERS) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    return await read_rest(receive, body)


async def read_rest(receive, body: bytes) -> bytes:
    """The rest of a body that came in several messages, bounded by ``MAX_BODY_BYTES``."""
    parts = [body]
    size = len(body)
    message = {"more_body": True}
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise SimError(413, "request body too large", "request_too_large")
        parts.append(chunk)
    return b"".join(parts)


def json_object(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SimError(400, "request body is not valid JSON", "invalid_json") from None
    if not isinstance(data, dict):
        raise SimError(400, "request body must be a JSON object", "invalid_json")
    return data


# --- server-sent events ----------------------------------------------------------------------


def sse(obj) -> bytes:
    """One ``data:`` event (OpenAI's streams)."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def event(name: bytes, obj) -> bytes:
    """One named event (Anthropic's streams)."""
    return b"event: " + name + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def group(events: list[tuple[bytes, bool]]) -> tuple[bytes, list[bytes], bytes]:
    """A stream's events, each flagged when it carries content (a delta), as ``stream`` sends
    them: (everything before the first delta, each delta with the events just before it,
    everything after the last delta). Without deltas, the last event alone is the tail."""
    deltas = [i for i, (_, is_delta) in enumerate(events) if is_delta]
    if not deltas:
        return b"".join(e for e, _ in events[:-1]), [], events[-1][0] if events else b""
    first = b"".join(e for e, _ in events[: deltas[0]])
    pieces = []
    start = deltas[0]
    for index in deltas:
        pieces.append(b"".join(e for e, _ in events[start : index + 1]))
        start = index + 1
    return first, pieces, b"".join(e for e, _ in events[start:])


async def stream(
    send,
    receive,
    first: bytes,
    pieces,
    tail: bytes,
    *,
    delay_ms: float,
    headers=SSE_HEADERS,
    cut=None,
):
    """First event at once, then the pieces ``delay_ms`` apart, then the tail.

    With a delay, a watcher on ``receive`` notices a client that went away, so an abandoned
    stream stops at the next piece instead of running to its end. With ``cut``, the connection
    is dropped after that many pieces instead (no tail, no end of the chunked body)."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": first, "more_body": True})
    if cut is not None:
        pieces, tail = pieces[:cut], None
    if delay_ms:
        await _paced(send, receive, pieces, tail, delay_ms / 1000)
    else:
        await _at_once(send, pieces, tail)


async def _at_once(send, pieces, tail: bytes | None) -> None:
    """The rest of a stream without delay: one body message (or the pieces, then a drop)."""
    if tail is None:
        if pieces:
            await send({"type": "http.response.body", "body": b"".join(pieces), "more_body": True})
        await drop(send)
        return
    await send({"type": "http.response.body", "body": b"".join([*pieces, tail])})


async def _paced(send, receive, pieces, tail: bytes | None, delay: float) -> None:
    """The pieces ``delay`` seconds apart, stopping early if the client went away."""
    watcher = asyncio.ensure_future(receive())
    try:
        for piece in pieces:
            await asyncio.sleep(delay)
            if watcher.done():
                return
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if tail is None:
            await drop(send)
            return
        await send({"type": "http.response.body", "body": tail})
    finally:
        if not watcher.done():
            watcher.cancel()


async def drop(send) -> None:
    """Drop the connection without (finishing) an answer, as a crashed upstream would.

    ASGI has no message for that: the server's transport is reached through ``send`` (uvicorn
    passes a bound method of its request cycle); anywhere else the request fails loudly."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("simulated connection reset")
    transport.abort()
    await asyncio.sleep(0)  # let the server notice before the app returns, so it sends nothing
