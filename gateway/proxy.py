"""Forwarding one call: try its deployments in order, meter every attempt, answer the client.

A deployment that times out, cannot be reached, or answers 408/409/429/5xx is an attempt that
failed: the next one is tried. Any other upstream 4xx is the client's mistake and is returned
as is (in OpenAI's error shape). Every attempt becomes one ledger event sharing the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import orjson
from django.conf import settings

from gateway import metering, metrics
from gateway.cache import KeyRecord, ModelRecord
from gateway.errors import GatewayError
from gateway.http import JSON_HEADERS, SSE_HEADERS, send_bytes
from gateway.pricing import Usage, decimal_str
from gateway.providers import adapter_for
from gateway.providers.base import UsageChunk
from gateway.resolve import Plan
from gateway.runtime import runtime

log = logging.getLogger("gateway.proxy")

# Upstream statuses that are the caller's mistake: returned as they are, no failover. Anything
# else (401/403 = the gateway's provider credential, 408, 429, 5xx …) fails over to the next.
CLIENT_ERRORS = frozenset({400, 404, 413, 415, 422})
_COST_MARK = b'"__finops_cost__"'


@dataclass(slots=True)
class Call:
    request_id: str
    api: str
    record: KeyRecord
    labels: object
    body: dict
    requested: str
    plan: Plan
    started: datetime
    t0: float
    # filled while the call runs: what all its attempts cost, and the model that answered
    spent: Decimal = field(default_factory=Decimal)
    served: ModelRecord | None = None
    # added to a successful response (e.g. x-finops-budget-remaining from admission)
    extra_headers: list = field(default_factory=list)
    budget_action: str = ""  # "downgrade" when a budget sent the call to a cheaper model
    prompt_tokens: int = 0  # metered over all attempts (for rate-limit settlement)
    completion_tokens: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


def _ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)


def _headers(call: Call, model: ModelRecord | None, attempts: int, cost: Decimal | None) -> list:
    headers = [
        (b"x-request-id", call.request_id.encode()),
        (b"x-finops-attempts", str(attempts).encode()),
    ]
    if model is not None:
        headers.append((b"x-finops-model", model.name.encode()))
    if cost is not None:
        headers.append((b"x-finops-cost", decimal_str(cost).encode()))
    return headers


def _upstream_body(call: Call, model: ModelRecord, *, stream: bool) -> dict:
    body = dict(call.body)
    body["model"] = model.upstream_model
    if stream:
        # always ask for usage; the usage chunk is stripped again if the client did not ask
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    return body


class _Failure(Exception):
    """An attempt that failed in a way the next deployment may fix."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _record(
    call: Call, model: ModelRecord | None, attempt: int, started: datetime, t: float, **fields
) -> None:
    """Append one attempt to the ledger (off the request path) and to the metrics."""
    event = metering.event(
        call,
        model=model,
        attempt=attempt,
        started=started,
        ended=_now(),
        latency_ms=_ms(t),
        **fields,
    )
    runtime.ledger.submit(event)
    metrics.observe(event)


def _final_error(failure: _Failure | None, headers: list) -> GatewayError:
    if failure is None:
        return GatewayError(
            502, "upstream_error", "No deployment could serve this model.", headers=headers
        )
    if failure.code == "upstream_timeout":
        return GatewayError(504, "upstream_timeout", failure.message, headers=headers)
    return GatewayError(502, "upstream_error", failure.message, headers=headers)


def _client_error(status: int, message: str, code: str | None, headers: list) -> GatewayError:
    """An upstream 4xx that is the caller's mistake, passed on in OpenAI's shape."""
    return GatewayError(status, code or "upstream_rejected", message, headers=headers)


async def proxy_json(call: Call, send) -> None:
    attempts = 0
    failure: _Failure | None = None
    for model in call.plan.deployments:
        attempts += 1
        started = _now()
        t = time.perf_counter()
        adapter = adapter_for(model.provider.kind)
        if adapter is None:
            failure = _Failure(
                None,
                "provider_unsupported",
                f"provider kind '{model.provider.kind}' is not supported",
            )
            _record(call, model, attempts, started, t, status="error", error_code=failure.code)
            continue
        request = adapter.build_request(
            model=model, api=call.api, body=_upstream_body(call, model, stream=False), stream=False
        )
        try:
            async with runtime.session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(
                    total=settings.FINOPS_UPSTREAM_TIMEOUT,
                    sock_connect=settings.FINOPS_UPSTREAM_CONNECT_TIMEOUT,
                ),
            ) as response:
                data = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ServerTimeoutError):
            failure = _Failure(None, "upstream_timeout", f"The upstream '{model.name}' timed out.")
        except aiohttp.ClientError as exc:
            failure = _Failure(
                None,
                "upstream_error",
                f"The upstream '{model.name}' could not be reached ({type(exc).__name__}).",
            )
        else:
            if status == 200:
                try:
                    parsed = adapter.parse_response(api=call.api, data=data)
                except (orjson.JSONDecodeError, ValueError, AttributeError):
                    failure = _Failure(
                        status,
                        "upstream_error",
                        f"The upstream '{model.name}' sent an invalid response.",
                    )
                else:
                    usage = parsed.usage or metering.estimate_usage(
                        api=call.api,
                        body=call.body,
                        model=model,
                        completion_text=_response_text(parsed.body),
                    )
                    cost = metering.price_usage(model, usage, call.started)
                    call.spent += cost.total
                    call.served = model
                    _record(
                        call,
                        model,
                        attempts,
                        started,
                        t,
                        status="ok",
                        http_status=200,
                        usage=usage,
                        cost=cost,
                    )
                    await send_bytes(
                        send,
                        200,
                        parsed.body,
                        [
                            *JSON_HEADERS,
                            *_headers(call, model, attempts, call.spent),
                            *call.extra_headers,
                        ],
                    )
                    return
            else:
                message, code = adapter.parse_error(status=status, data=data)
                if status not in CLIENT_ERRORS:
                    failure = _Failure(
                        status,
                        "upstream_error",
                        f"The upstream '{model.name}' returned {status}: {message}",
                    )
                else:
                    _record(
                        call,
                        model,
                        attempts,
                        started,
                        t,
                        status="error",
                        http_status=status,
                        error_code=str(code or f"http_{status}")[:64],
                    )
                    raise _client_error(
                        status, message, code, _headers(call, model, attempts, call.spent)
                    )
        _record(
            call,
            model,
            attempts,
            started,
            t,
            status="error",
            http_status=failure.status,
            error_code=failure.code,
        )
    raise _final_error(failure, _headers(call, None, attempts, call.spent))


def _response_text(body: bytes) -> str:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    parts = []
    for choice in obj.get("choices") or ():
        message = (choice or {}).get("message") or {}
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        for call in message.get("tool_calls") or ():
            fn = (call or {}).get("function") or {}
            parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)


async def _watch_disconnect(receive, response: aiohttp.ClientResponse, flag: list) -> None:
    """Wait for the client to go away; then stop reading from the upstream."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            flag.append(True)
            response.close()
            return


async def proxy_stream(call: Call, send, receive) -> None:
    wants_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
    attempts = 0
    failure: _Failure | None = None
    for model in call.plan.deployments:
        attempts += 1
        started = _now()
        t = time.perf_counter()
        adapter = adapter_for(model.provider.kind)
        if adapter is None:
            failure = _Failure(
                None,
                "provider_unsupported",
                f"provider kind '{model.provider.kind}' is not supported",
            )
            _record(
                call,
                model,
                attempts,
                started,
                t,
                status="error",
                error_code=failure.code,
                streamed=True,
            )
            continue
        request = adapter.build_request(
            model=model, api=call.api, body=_upstream_body(call, model, stream=True), stream=True
        )
        try:
            response = await runtime.session.post(
                request.url, data=request.body, headers=request.headers
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            failure = _Failure(None, "upstream_timeout", f"The upstream '{model.name}' timed out.")
        except aiohttp.ClientError as exc:
            failure = _Failure(
                None,
                "upstream_error",
                f"The upstream '{model.name}' could not be reached ({type(exc).__name__}).",
            )
        else:
            if response.status == 200:
                await _relay(
                    call,
                    send,
                    receive,
                    response,
                    adapter,
                    model,
                    attempts,
                    started,
                    t,
                    wants_usage,
                )
                return
            data = await response.read()
            response.release()
            message, code = adapter.parse_error(status=response.status, data=data)
            if response.status in CLIENT_ERRORS:
                _record(
                    call,
                    model,
                    attempts,
                    started,
                    t,
                    status="error",
                    http_status=response.status,
                    error_code=str(code or f"http_{response.status}")[:64],
                    streamed=True,
                )
                raise _client_error(
                    response.status, message, code, _headers(call, model, attempts, call.spent)
                )
            failure = _Failure(
                response.status,
                "upstream_error",
                f"The upstream '{model.name}' returned {response.status}: {message}",
            )
        _record(
            call,
            model,
            attempts,
            started,
            t,
            status="error",
            http_status=failure.status,
            error_code=failure.code,
            streamed=True,
        )
    raise _final_error(failure, _headers(call, None, attempts, call.spent))


async def _relay(
    call, send, receive, response, adapter, model, attempts, started, t, wants_usage
) -> None:
    """Forward an upstream stream chunk by chunk; meter it even if the client leaves early."""
    parser = adapter.stream_parser(api=call.api, model=model)
    gone: list = []
    watcher = asyncio.create_task(_watch_disconnect(receive, response, gone))
    first_byte: datetime | None = None
    usage_chunk: UsageChunk | None = None
    status, error_code = "ok", ""
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *SSE_HEADERS,
                    *_headers(call, model, attempts, None),
                    *call.extra_headers,
                ],
            }
        )
        async for line in response.content:
            if first_byte is None:
                first_byte = _now()
            for out in parser.feed(line):
                if isinstance(out, UsageChunk):
                    usage_chunk = out
                else:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
    except (TimeoutError, aiohttp.ClientError) as exc:
        if not gone:
            status, error_code = (
                "error",
                "upstream_timeout" if isinstance(exc, asyncio.TimeoutError) else "upstream_error",
            )
    except OSError:  # the server could not write to a client that went away
        gone.append(True)
    finally:
        watcher.cancel()
        response.release()
    if gone:
        status, error_code = "client_abort", "client_disconnected"
    elif getattr(parser, "error", None):
        status, error_code = "error", "upstream_stream_error"
    usage = parser.usage
    if usage is None:
        usage = metering.estimate_usage(
            api=call.api, body=call.body, model=model, completion_text=parser.generated_text()
        )
    cost = metering.price_usage(model, usage, call.started)
    call.spent += cost.total
    call.served = model
    _record(
        call,
        model,
        attempts,
        started,
        t,
        status=status,
        http_status=200,
        error_code=error_code,
        usage=usage,
        cost=cost,
        first_byte=first_byte,
        streamed=True,
    )
    if gone:
        return
    tail: list[bytes] = []
    if status == "error" and error_code != "upstream_stream_error":
        error = {
            "error": {
                "message": "The upstream stream ended with an error.",
                "type": "api_error",
                "param": None,
                "code": error_code,
            }
        }
        tail.append(b"data: " + orjson.dumps(error) + b"\n\n")
    elif wants_usage:
        chunk = usage_chunk.chunk if usage_chunk else _synthetic_usage_chunk(call, model, usage)
        chunk = dict(chunk, usage=dict(chunk.get("usage") or {}, cost="__finops_cost__"))
        payload = orjson.dumps(chunk).replace(_COST_MARK, decimal_str(call.spent).encode())
        tail.append(b"data: " + payload + b"\n\n")
    tail.append(b"data: [DONE]\n\n")
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})


def _synthetic_usage_chunk(call: Call, model: ModelRecord, usage: Usage) -> dict:
    return {
        "id": f"chatcmpl-{call.request_id}",
        "object": "chat.completion.chunk",
        "created": int(call.started.timestamp()),
        "model": model.upstream_model,
        "choices": [],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.output,
            "total_tokens": usage.prompt_tokens + usage.output,
        },
    }
