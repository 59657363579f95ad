"""Minimal ASGI plumbing for the gateway's lean app (no framework on the hot path)."""

from __future__ import annotations

import asyncio

import orjson

from gateway.errors import GatewayError

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def read_body(receive, limit: int, *, seconds: float | None = None) -> bytes:
    """Read the whole request body, refusing more than ``limit`` bytes, and a body that has not
    arrived within ``seconds`` (a slow-drip client would hold a connection and a task forever):
    408 in OpenAI's shape."""
    try:
        async with asyncio.timeout(seconds):
            return await _read(receive, limit)
    except TimeoutError:
        raise GatewayError(
            408, "request_timeout", f"the request body did not arrive within {seconds:g} s"
        ) from None


async def _read(receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client disconnected while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise GatewayError(
                    413, "request_too_large", f"request body exceeds the limit of {limit} bytes"
                )
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def header(scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def send_bytes(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def list_page(data: list, *, has_more: bool) -> dict:
    """One page of an OpenAI list (files, batches, a response's input items): its items, the
    ids at either end (the cursors a client sends back as ``after``), whether more follow."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


async def send_json(send, status: int, data, headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send_bytes(send, status, orjson.dumps(data), [*JSON_HEADERS, *headers])


async def send_error(
    send,
    error: GatewayError,
    headers: list[tuple[bytes, bytes]] = (),
    *,
    status: int | None = None,
    body: bytes | None = None,
) -> None:
    """``error`` in OpenAI's shape, or as ``body`` (another wire format's shape) and ``status``;
    its own headers win over ``headers``."""
    own = {name for name, _ in error.headers}
    extra = [h for h in headers if h[0] not in own]
    await send_bytes(
        send,
        status or error.status,
        error.body() if body is None else body,
        [*JSON_HEADERS, *error.headers, *extra],
    )
