"""CORS for browser clients: an allowed origin's preflight is answered and its responses carry
the headers; any other origin gets none (the browser then refuses)."""

from __future__ import annotations

import asyncio

from gateway import cors


def _scope(**headers: str) -> dict:
    return {
        "type": "http",
        "method": "OPTIONS",
        "path": "/v1/chat/completions",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def _sent(scope, fn) -> list[dict]:
    messages: list[dict] = []

    async def send(message):
        messages.append(message)

    asyncio.run(fn(scope, send))
    return messages


def _headers(message: dict) -> dict[bytes, bytes]:
    return dict(message["headers"])


def test_a_preflight_from_an_allowed_origin_is_answered(settings):
    settings.FINOPS_CORS_ORIGINS = ["https://app.example.com"]
    scope = _scope(
        origin="https://app.example.com",
        access_control_request_method="POST",
        access_control_request_headers="authorization, content-type, x-finops-feature",
    )
    assert cors.preflight_wanted(scope)
    start, _ = _sent(scope, cors.preflight)
    headers = _headers(start)
    assert start["status"] == 204
    assert headers[b"access-control-allow-origin"] == b"https://app.example.com"
    assert b"POST" in headers[b"access-control-allow-methods"]
    assert headers[b"access-control-allow-headers"] == (
        b"authorization, content-type, x-finops-feature"
    )


def test_another_origin_gets_no_cors_headers(settings):
    settings.FINOPS_CORS_ORIGINS = ["https://app.example.com"]
    scope = _scope(origin="https://evil.example.com", access_control_request_method="POST")
    start, _ = _sent(scope, cors.preflight)
    assert b"access-control-allow-origin" not in _headers(start)
    assert cors.wrap(scope, print) is print  # responses go out untouched


def test_nothing_is_allowed_by_default(settings):
    settings.FINOPS_CORS_ORIGINS = []
    scope = _scope(origin="https://app.example.com", access_control_request_method="POST")
    start, _ = _sent(scope, cors.preflight)
    assert b"access-control-allow-origin" not in _headers(start)


def test_responses_to_an_allowed_origin_expose_the_gateways_headers(settings):
    settings.FINOPS_CORS_ORIGINS = ["*"]
    scope = _scope(origin="https://anything.example")
    messages: list[dict] = []

    async def send(message):
        messages.append(message)

    wrapped = cors.wrap(scope, send)
    asyncio.run(wrapped({"type": "http.response.start", "status": 200, "headers": []}))
    headers = _headers(messages[0])
    assert headers[b"access-control-allow-origin"] == b"*"
    assert b"x-finops-cost" in headers[b"access-control-expose-headers"]
    assert b"access-control-allow-credentials" not in headers
