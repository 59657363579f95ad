"""Forwarding one call: work through its deployments, retry what a second try may fix, meter
every attempt, answer the client.

Per deployment (``gateway.balancer`` holds the policy and the state):

- an attempt that times out, cannot connect, loses its connection, gets an unreadable answer or
  answers 408/409/429/5xx is retried on the same deployment up to ``FINOPS_RETRIES`` times,
  after an exponential backoff with jitter, or after the upstream's ``Retry-After`` when it
  sends one (a longer wait than ``FINOPS_RETRY_AFTER_MAX_SECONDS`` moves on at once); then the
  next deployment is tried (a group's other members, then its fallbacks);
- 401/403 (the gateway's own provider credential) and a connection the egress rule refuses
  (``gateway.egress``: 502 ``egress_refused`` if nothing else serves) move on without a retry;
  any other upstream 4xx is the caller's mistake and is returned as is, in OpenAI's error shape;
- a deployment whose context window cannot hold the prompt is skipped, and so is one cooling
  down while another remains; if all are cooling down, the least recently failed is tried.

A stream that fails before its first byte counts as a failed attempt like any other; after it,
the client gets an error event and the partial attempt is metered. Every attempt becomes one
ledger event sharing the request id; ``x-finops-attempts`` counts them.
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
from aiohttp.http_exceptions import LineTooLong
from django.conf import settings

from gateway import billable, metering, metrics
from gateway.balancer import (
    Deployment,
    backoff_delay,
    balancer,
    retries_per_deployment,
    retry_after_seconds,
)
from gateway.egress import egress_refusal
from gateway.errors import GatewayError
from gateway.http import JSON_HEADERS, SSE_HEADERS, send_bytes
from gateway.pricing import Usage, decimal_str
from gateway.providers import adapter_for
from gateway.providers.base import CHAT, UsageChunk
from gateway.records import KeyRecord, ModelRecord
from gateway.resolve import Plan
from gateway.runtime import runtime
from gateway.wires import wire_for

log = logging.getLogger("gateway.proxy")

# Upstream statuses that are the caller's mistake: returned as they are, no failover. Anything
# else (401/403 = the gateway's provider credential, 408, 429, 5xx …) fails over to the next.
CLIENT_ERRORS = frozenset({400, 404, 413, 415, 422})
# Upstream statuses worth a second try on the same deployment (besides every 5xx).
RETRY_STATUSES = frozenset({408, 409, 429})
_COST_MARK = b'"__finops_cost__"'
ANSWER_MAX_CHARS = 20_000  # an answer kept for an evaluation pair


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
    admission: object = None  # gateway.admission.Admission, for the budget-remaining header
    budget_action: str = ""  # "downgrade" when a budget sent the call to a cheaper model
    prompt_tokens: int = 0  # metered over all attempts (for rate-limit settlement)
    completion_tokens: int = 0
    # evaluation: a shadow call's rows are marked (evaluation spend); an A/B call's arm
    shadow: bool = False
    experiment: str = ""
    experiment_arm: str = ""
    # the answer's text is kept (clipped) only when asked: a pair is to be stored
    capture: bool = False
    answer: str = ""
    # another inbound format than Chat Completions (gateway.dialects): the client's own body,
    # what the chat translation cannot honour, headers passed to a native upstream, and
    # whether the attempt being metered went translated; ``on_answer`` sees the final answer
    dialect: object = None
    inbound: dict | None = None
    unsupported: tuple = ()
    passthrough: dict = field(default_factory=dict)
    translated: bool = False
    on_answer: object = None
    cache: object = None  # gateway.response_cache.Fill: the answer collected for the cache

    @property
    def client_api(self) -> str:
        """The format the client spoke (the ledger's ``api``): ``api`` is then Chat Completions."""
        return self.dialect.api if self.dialect is not None else self.api


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
    if call.plan.router_decision:
        headers.append((b"x-finops-router-decision", call.plan.router_decision.encode()))
    if cost is not None:
        headers.append((b"x-finops-cost", decimal_str(cost).encode()))
    if call.admission is not None:
        headers += call.admission.remaining_header(cost)
    return headers


class _Failure(Exception):
    """An attempt that failed in a way a retry or the next deployment may fix."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        observed: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.observed = observed  # seconds, counted as a latency sample (timeouts)


def _http_failure(model: ModelRecord, status: int, message: str, headers) -> _Failure:
    return _Failure(
        status,
        "upstream_error",
        f"The upstream '{model.name}' returned {status}: {message}",
        retryable=status in RETRY_STATUSES or status >= 500,
        retry_after=retry_after_seconds(headers),
    )


def _transport_failure(model: ModelRecord, exc: BaseException, t: float) -> _Failure:
    if isinstance(exc, TimeoutError):
        return _Failure(
            None,
            "upstream_timeout",
            f"The upstream '{model.name}' timed out.",
            observed=time.perf_counter() - t,
        )
    refusal = egress_refusal(exc)
    if refusal is not None:
        # the same answer on a retry: move on, and tell the client which rule (logged once,
        # by gateway.egress)
        return _Failure(
            None,
            "egress_refused",
            f"The upstream '{model.name}' was not contacted: {refusal.public}.",
            retryable=False,
        )
    return _Failure(
        None,
        "upstream_connection_error",
        f"The upstream '{model.name}' could not be reached ({type(exc).__name__}).",
    )


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
    if event["usage_exceeded_bound"] and model is not None:
        # billing past what the request allowed is misbehaviour: stop sending it calls now, so
        # the overshoot stays within the calls already in flight
        log.warning("%s billed more than the request allowed; cooling it down", model.name)
        balancer.misbehaved(balancer.get(model))


def _final_error(failure: _Failure | None, headers: list) -> GatewayError:
    if failure is None:
        return GatewayError(
            502, "upstream_error", "No deployment could serve this model.", headers=headers
        )
    if failure.code == "upstream_timeout":
        return GatewayError(504, "upstream_timeout", failure.message, headers=headers)
    if failure.code == "egress_refused":
        return GatewayError(502, "egress_refused", failure.message, headers=headers)
    error = GatewayError(502, "upstream_error", failure.message, headers=headers)
    error.upstream_status = failure.status  # e.g. 529: Anthropic's overloaded, on /v1/messages
    return error


def _client_error(status: int, message: str, code: str | None, headers: list) -> GatewayError:
    """An upstream 4xx that is the caller's mistake, passed on in OpenAI's shape."""
    return GatewayError(status, code or "upstream_rejected", message, headers=headers)


# --- the route: which deployments, in which order ------------------------------------------


def _needed_tokens(
    call: Call, model: ModelRecord, memo: dict[str, tuple[int, int]]
) -> tuple[int, int]:
    """(prompt tokens, output tokens asked for) as the model's context window sees them: the
    fair count of ``gateway.billable`` (the byte-length bound would refuse prompts that fit)."""
    key = f"{model.provider.kind}:{model.upstream_model}"
    found = memo.get(key)
    if found is None:
        body = call.body
        prompt = billable.prompt_tokens(call.api, body, model, bound=False)
        output = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        found = memo[key] = (prompt, output)
    return found


def _fitting(call: Call, models: list[ModelRecord]) -> list[ModelRecord]:
    """The deployments whose context window holds the request; a 400 when none does."""
    memo: dict[str, tuple[int, int]] = {}
    fits = []
    for model in models:
        if model.context_window is None:
            fits.append(model)
            continue
        prompt, output = _needed_tokens(call, model, memo)
        if prompt + output <= model.context_window:
            fits.append(model)
            continue
        metrics.SKIPS.labels(model.name, "context_window").inc()
        log.info(
            "skipping %s: about %d tokens requested, context window %d",
            model.name,
            prompt + output,
            model.context_window,
        )
    if fits:
        return fits
    largest = max(models, key=lambda m: m.context_window or 0)
    prompt, output = _needed_tokens(call, largest, memo)
    raise GatewayError(
        400,
        "invalid_value",
        f"This model's maximum context length is {largest.context_window} tokens. However, "
        f"you requested about {prompt + output} tokens ({prompt} in the messages, {output} in "
        "the completion). Please reduce the length of the messages or completion.",
        param="messages",
    )


class _Route:
    """A call's deployments in order, skipping cooled-down ones while another remains."""

    __slots__ = ("models", "next_index", "cooling", "tried")

    def __init__(self, call: Call) -> None:
        models = call.plan.deployments
        if call.api == CHAT and any(m.context_window for m in models):
            models = _fitting(call, models)
        self.models = models
        self.next_index = 0
        self.cooling: list[ModelRecord] = []
        self.tried = False

    async def next(self) -> ModelRecord | None:
        while self.next_index < len(self.models):
            model = self.models[self.next_index]
            self.next_index += 1
            if not balancer.get(model).needs_admission() or await balancer.admit(model):
                self.tried = True
                return model
            metrics.SKIPS.labels(model.name, "cooldown").inc()
            self.cooling.append(model)
        if not self.tried and self.cooling:
            # every deployment is cooling down: never refuse for that alone
            self.tried = True
            return balancer.least_recently_failed(self.cooling)
        return None

    def more_usable(self) -> bool:
        return any(balancer.usable(m) for m in self.models[self.next_index :])


async def _serve(call: Call, attempt) -> None:
    """Run ``attempt(model, number, deployment)`` down the route until one serves the call.

    An attempt returns once the client has its answer, raises ``_Failure`` for what a retry or
    another deployment may fix, and ``GatewayError`` for what goes back to the client as is.
    It reports success to the balancer itself (a stream does so at its first byte).
    """
    route = _Route(call)
    retries = retries_per_deployment()
    attempts = 0
    failure: _Failure | None = None
    while (model := await route.next()) is not None:
        retry = 0
        while True:
            attempts += 1
            dep = balancer.begin(model)
            try:
                await attempt(model, attempts, dep)
                return
            except _Failure as exc:
                failure = exc
                balancer.failed(dep, exc.observed)
            finally:
                balancer.end(dep)
            if not failure.retryable or retry >= retries:
                break
            delay = backoff_delay(retry + 1, failure.retry_after, rng=balancer.rng)
            if delay is None:  # the upstream asks for a longer wait than we give it
                break
            if not balancer.usable(model) and route.more_usable():
                break  # it just started cooling down: the next deployment rather than a retry
            retry += 1
            metrics.RETRIES.labels(model.name).inc()
            await asyncio.sleep(delay)
    raise _final_error(failure, _headers(call, None, attempts, call.spent))


# --- JSON ----------------------------------------------------------------------------------


async def proxy_json(call: Call, send) -> None:
    async def attempt(model: ModelRecord, number: int, dep: Deployment) -> None:
        await _json_attempt(call, send, model, number, dep)

    await _serve(call, attempt)


async def _json_attempt(
    call: Call, send, model: ModelRecord, attempt: int, dep: Deployment
) -> None:
    started = _now()
    t = time.perf_counter()
    adapter = adapter_for(model.provider.kind)
    if adapter is None:
        failure = _Failure(
            None,
            "provider_unsupported",
            f"provider kind '{model.provider.kind}' is not supported",
            retryable=False,
        )
        _record(call, model, attempt, started, t, status="error", error_code=failure.code)
        raise failure
    wire = wire_for(call, model, stream=False)
    call.translated = wire.translated
    request = adapter.build_request(model=model, api=wire.api, body=wire.body, stream=False)
    request.headers.update(wire.headers)
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
            headers = response.headers
    except (TimeoutError, aiohttp.ClientError) as exc:
        failure = _transport_failure(model, exc, t)
    else:
        if status == 200:
            try:
                parsed = adapter.parse_response(api=wire.api, data=data)
                answer = wire.json(parsed.body)
            except (orjson.JSONDecodeError, ValueError, AttributeError, TypeError, KeyError):
                failure = _Failure(
                    status,
                    "upstream_invalid_response",
                    f"The upstream '{model.name}' sent an invalid response.",
                )
            else:
                balancer.succeeded(dep, time.perf_counter() - t)
                usage = parsed.usage or metering.estimate_usage(
                    api=call.api,
                    body=call.body,
                    model=model,
                    completion_text=_response_text(parsed.body),
                )
                cost = metering.price_usage(model, usage, call.started)
                call.spent += cost.total
                call.served = model
                if call.cache is not None:
                    call.cache.json_answer(wire.api, parsed.body, usage, model)
                if call.capture:
                    call.answer = _answer_text(parsed.body)
                if call.on_answer is not None:
                    await call.on_answer(answer)
                _record(
                    call,
                    model,
                    attempt,
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
                    answer,
                    [
                        *JSON_HEADERS,
                        *_headers(call, model, attempt, call.spent),
                        *call.extra_headers,
                    ],
                )
                return
        else:
            message, code = adapter.parse_error(status=status, data=data)
            if status in CLIENT_ERRORS:
                balancer.succeeded(dep)  # it answered: the request was at fault, not the upstream
                _record(
                    call,
                    model,
                    attempt,
                    started,
                    t,
                    status="error",
                    http_status=status,
                    error_code=str(code or f"http_{status}")[:64],
                )
                raise _client_error(
                    status, message, code, _headers(call, model, attempt, call.spent)
                )
            failure = _http_failure(model, status, message, headers)
    _record(
        call,
        model,
        attempt,
        started,
        t,
        status="error",
        http_status=failure.status,
        error_code=failure.code,
    )
    raise failure


def _answer_text(body: bytes) -> str:
    """The first choice's message text, clipped (for an evaluation pair)."""
    try:
        content = orjson.loads(body)["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return ""
    return content[:ANSWER_MAX_CHARS] if isinstance(content, str) else ""


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


# --- streams -------------------------------------------------------------------------------


async def proxy_stream(call: Call, send, receive) -> None:
    wants_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))

    async def attempt(model: ModelRecord, number: int, dep: Deployment) -> None:
        await _stream_attempt(call, send, receive, model, number, dep=dep, wants_usage=wants_usage)

    await _serve(call, attempt)


async def _first_line(response: aiohttp.ClientResponse) -> bytes:
    """The stream's first non-blank line; b"" when it ends before sending one."""
    while True:
        line = await response.content.readline()
        if not line or line.strip():
            return line


async def _stream_attempt(
    call: Call, send, receive, model: ModelRecord, attempt: int, *, dep, wants_usage: bool
) -> None:
    started = _now()
    t = time.perf_counter()
    adapter = adapter_for(model.provider.kind)
    if adapter is None:
        failure = _Failure(
            None,
            "provider_unsupported",
            f"provider kind '{model.provider.kind}' is not supported",
            retryable=False,
        )
        _record(
            call, model, attempt, started, t, status="error", error_code=failure.code, streamed=True
        )
        raise failure
    wire = wire_for(call, model, stream=True)
    call.translated = wire.translated
    request = adapter.build_request(model=model, api=wire.api, body=wire.body, stream=True)
    request.headers.update(wire.headers)
    response: aiohttp.ClientResponse | None = None
    first = b""
    try:
        response = await runtime.session.post(
            request.url, data=request.body, headers=request.headers
        )
        if response.status == 200:
            # nothing goes to the client before the upstream's first line: until then a
            # failure can still be retried or fall back
            first = await _first_line(response)
            if not first:
                response.release()
                failure = _Failure(
                    200,
                    "upstream_empty_stream",
                    f"The upstream '{model.name}' ended the stream before sending anything.",
                )
        else:
            status = response.status
            data = await response.read()
            response.release()
            message, code = adapter.parse_error(status=status, data=data)
            if status in CLIENT_ERRORS:
                balancer.succeeded(dep)
                _record(
                    call,
                    model,
                    attempt,
                    started,
                    t,
                    status="error",
                    http_status=status,
                    error_code=str(code or f"http_{status}")[:64],
                    streamed=True,
                )
                raise _client_error(
                    status, message, code, _headers(call, model, attempt, call.spent)
                )
            failure = _http_failure(model, status, message, response.headers)
    except (TimeoutError, aiohttp.ClientError) as exc:
        if response is not None:
            response.close()
        first = b""
        failure = _transport_failure(model, exc, t)
        if response is not None:
            failure.status = response.status
    if first:
        first_byte = _now()
        balancer.succeeded(dep, time.perf_counter() - t)
        healthy = await _relay(
            call,
            send,
            receive,
            response,
            _Attempt(model, attempt, started, t),
            adapter=adapter,
            wire=wire,
            wants_usage=wants_usage,
            first=first,
            first_byte=first_byte,
        )
        if not healthy:
            balancer.failed(dep)
        return
    _record(
        call,
        model,
        attempt,
        started,
        t,
        status="error",
        http_status=failure.status,
        error_code=failure.code,
        streamed=True,
    )
    raise failure


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One attempt at one deployment: what its ledger event is keyed and timed by."""

    model: ModelRecord
    number: int  # the call's attempts so far, this one included
    started: datetime
    t: float  # time.perf_counter() at its start


async def _relay(
    call: Call,
    send,
    receive,
    response: aiohttp.ClientResponse,
    attempt: _Attempt,
    *,
    adapter,
    wire,
    wants_usage: bool,
    first: bytes,
    first_byte: datetime,
) -> bool:
    """Forward an upstream stream chunk by chunk; meter it even if the client leaves early.

    Returns False when the upstream broke the stream (the client got an error event)."""
    model = attempt.model
    parser = adapter.stream_parser(api=wire.api, model=model)
    if call.cache is not None:
        parser = call.cache.tap(parser, wire.api)  # the response cache assembles the answer
    out = wire.stream  # the client's format, when it is not the chat stream itself
    gone: list = []
    watcher = asyncio.create_task(_watch_disconnect(receive, response, gone))
    usage_chunk: UsageChunk | None = None
    status, error_code = "ok", ""
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *SSE_HEADERS,
                    *_headers(call, model, attempt.number, None),
                    *call.extra_headers,
                ],
            }
        )
        usage_chunk = await _forward(send, parser, first, usage_chunk, out)
        async for line in response.content:
            usage_chunk = await _forward(send, parser, line, usage_chunk, out)
    except (TimeoutError, aiohttp.ClientError, LineTooLong) as exc:
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
    if call.cache is not None and status == "ok":
        call.cache.stream_done(usage, model)
    if call.capture and status == "ok":
        # the content deltas the relay passed on (the parser keeps them), clipped
        call.answer = parser.generated_text()[:ANSWER_MAX_CHARS]
    _record(
        call,
        model,
        attempt.number,
        attempt.started,
        attempt.t,
        status=status,
        http_status=200,
        error_code=error_code,
        usage=usage,
        cost=cost,
        first_byte=first_byte,
        streamed=True,
    )
    if gone:
        return True
    if out is not None:
        tail = out.tail(usage=usage, cost=call.spent, status=status, error_code=error_code)
    else:
        tail = _stream_tail(
            call,
            model,
            usage,
            status=status,
            error_code=error_code,
            wants_usage=wants_usage,
            usage_chunk=usage_chunk,
        )
    if call.on_answer is not None and status == "ok":
        await call.on_answer(out)
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    return status != "error"


async def _forward(
    send, parser, line: bytes, usage_chunk: UsageChunk | None, out
) -> UsageChunk | None:
    """Pass one upstream line's events to the client (through ``out``, the client's format,
    when there is one); the usage chunk (the latest seen) is held back for the stream's end."""
    for event in parser.feed(line):
        if isinstance(event, UsageChunk):
            usage_chunk = event
        elif out is None:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        else:
            for data in out.feed(event):
                await send({"type": "http.response.body", "body": data, "more_body": True})
    return usage_chunk


def _stream_tail(
    call: Call,
    model: ModelRecord,
    usage: Usage,
    *,
    status: str,
    error_code: str,
    wants_usage: bool,
    usage_chunk: UsageChunk | None,
) -> bytes:
    """The stream's last events: an error event, or the usage chunk with the call's cost when
    the client asked for usage, then ``[DONE]``."""
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
    return b"".join(tail)


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


async def count_tokens_upstream(session, model: ModelRecord, body: dict, headers: dict):
    """Anthropic's own ``count_tokens`` for ``model`` (free: not metered); (status, body)."""
    adapter = adapter_for(model.provider.kind)
    request = adapter.build_request(
        model=model,
        api="messages.count_tokens",
        body={**body, "model": model.upstream_model},
        stream=False,
    )
    request.headers.update(headers)
    try:
        async with session.post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=aiohttp.ClientTimeout(total=settings.FINOPS_UPSTREAM_CONNECT_TIMEOUT * 3),
        ) as response:
            return response.status, await response.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        failure = _transport_failure(model, exc, time.perf_counter())
        raise GatewayError(502, failure.code, failure.message) from None
