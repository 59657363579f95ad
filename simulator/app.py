"""The ``Simulator`` ASGI app: routing (OpenAI's, Azure's and Anthropic's paths), the API-key
check, request recording, latency and fault injection, then dispatch to the wire-format
endpoints, and billing what they served (``simulator.billing``); ``/_sim/*`` goes to the
control endpoints, ``/v1/organization/...`` and ``/v1/organizations/...`` to the admin usage
and cost reports (``simulator.admin_reports``), the files and batch APIs to
``simulator.openai_batches`` / ``simulator.anthropic_batches`` (``simulator.batches``: their
routes), ``lifespan`` is answered."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import replace

from simulator.admin_reports import AdminReports
from simulator.anthropic_batches import AnthropicBatches
from simulator.anthropic_messages import AnthropicMessages
from simulator.batches import BatchKnobs, BatchRequest, batch_route
from simulator.billing import DEFAULT_PRICES, Ledger, parse_prices
from simulator.config import NO_OPTIONS, Options, SimConfig, parse_options
from simulator.control import Control
from simulator.openai_batches import OpenAIBatches
from simulator.openai_chat import ChatCompletions
from simulator.openai_completions import Completions
from simulator.openai_embeddings import Embeddings
from simulator.openai_models import list_models, retrieve_model
from simulator.openai_responses import Responses
from simulator.prompt_cache import PromptCache
from simulator.wire import SimError, drop, read_rest, send_error

BATCH_PREFIXES = ("file_", "batch_", "msgbatch_")
_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
# /v1/{tail}: (endpoint, the method it takes)
_V1_ENDPOINTS = {
    "chat/completions": ("chat", "POST"),
    "completions": ("completions", "POST"),
    "embeddings": ("embeddings", "POST"),
    "messages": ("messages", "POST"),
    "messages/count_tokens": ("count_tokens", "POST"),
    "models": ("models", "GET"),
    "responses": ("responses", "POST"),
}
# Azure's /openai/deployments/{name}/{tail}: the endpoint
_DEPLOYMENT_ENDPOINTS = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
}
# endpoints that answer errors in Anthropic's shape
ANTHROPIC_ENDPOINTS = frozenset(
    {"messages", "count_tokens"}
    | {f"msgbatch_{a}" for a in ("create", "list", "get", "delete", "cancel", "results")}
)


def _v1_route(method: str, tail: str) -> tuple[str | None, str | None]:
    if tail.startswith(("files", "batches", "messages/batches")):
        found = batch_route(method, tail)
        if found[0] is not None:
            return found
    if tail in _V1_ENDPOINTS:
        endpoint, wanted = _V1_ENDPOINTS[tail]
        return (endpoint if method == wanted else "method"), None
    if tail.startswith("models/") and len(tail) > 7:
        return ("model" if method == "GET" else "method"), tail[7:]
    if tail.startswith("responses/") and len(tail) > 10 and "/" not in tail[10:]:
        if method == "GET":
            return "response_get", tail[10:]
        return ("response_delete" if method == "DELETE" else "method"), tail[10:]
    return None, None


def route(method: str, path: str) -> tuple[str | None, str | None]:
    """(endpoint, the deployment, model or response id) for a path; Azure puts the model in the
    path (``/openai/deployments/{name}/...``), its Responses API lives under ``/openai/`` and
    ``/openai/v1/``.

    The endpoint is None for an unknown path and ``"method"`` for a known one asked with
    another method."""
    if path.startswith("/v1/"):
        return _v1_route(method, path[4:])
    if path.startswith("/openai/deployments/"):
        deployment, _, tail = path[20:].partition("/")
        if deployment and tail in _DEPLOYMENT_ENDPOINTS:
            kind = _DEPLOYMENT_ENDPOINTS[tail]
            return (kind if method == "POST" else "method"), deployment
        return None, None
    if path.startswith("/openai/v1/"):
        return _v1_route(method, path[11:])
    if path == "/openai/responses" or path.startswith("/openai/responses/"):
        return _v1_route(method, path[8:])
    return None, None


def request_key(raw_headers) -> tuple[bytes | None, dict[bytes, bytes] | None, bytes | None]:
    """(the API key from ``Authorization``, ``x-api-key`` or ``api-key``; the ``x-sim-*``
    headers, None when there are none; the ``OpenAI-Project`` header). The last key header
    wins."""
    key = None
    sim = None
    project = None
    for name, value in raw_headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            key = token.strip() if scheme.lower() == b"bearer" else value.strip()
        elif name[:2] == b"x-":
            if name[:6] == b"x-sim-":
                if sim is None:
                    sim = {}
                sim[name] = value
            elif name == b"x-api-key":
                key = value.strip()
        elif name == b"api-key":
            key = value.strip()
        elif name == b"openai-project":
            project = value.strip() or None
    return key, sim, project


async def lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class Simulator:
    """The ASGI app, one instance per process. Its state: the last-request records, the billed
    usage, the stored Responses, and bounded caches of parsed chat bodies, embedding answers,
    OpenAI prompt prefixes and Anthropic cache prefixes (cleared whenever they fill up)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config = config or SimConfig()
        self._rng = random.Random(config.seed)  # noqa: S311 - failure injection, not crypto
        seq = itertools.count(1)
        prices = DEFAULT_PRICES if config.prices is None else config.prices
        self.ledger = Ledger(parse_prices(prices))
        knobs = BatchKnobs(default_delay=config.batch_delay)
        self._control = Control(self.ledger, knobs)
        self._admin = AdminReports(config, self.ledger, self._control)
        cache = PromptCache()  # OpenAI's automatic prompt caching, shared by its endpoints
        responses = Responses(config, seq, cache)
        messages = AnthropicMessages(config, seq)
        # endpoint: handler(body, opts, deployment or id, receive, send)
        self._handlers = {
            "chat": ChatCompletions(config, seq, cache).handle,
            "completions": Completions(config, seq, cache).handle,
            "embeddings": Embeddings().handle,
            "messages": messages.handle,
            "count_tokens": messages.count_tokens,
            "models": list_models,
            "model": retrieve_model,
            "responses": responses.handle,
            "response_get": responses.retrieve,
            "response_delete": responses.delete,
        }
        self._openai_batches = OpenAIBatches(knobs, self._handlers, self.ledger)
        self._anthropic_batches = AnthropicBatches(knobs, messages.handle, self.ledger)
        self._expected_key = config.api_key.encode() if config.api_key else None
        self._faults = bool(config.reset_rate or config.malformed_rate)
        # Without process-wide latency or faults, a request without x-sim-* headers skips
        # fault injection altogether.
        self._quiet = not (
            config.latency_ms or config.status is not None or config.fail_rate or self._faults
        )
        retry_after = config.retry_after
        self._retry_after = (
            b"%d" % retry_after if retry_after == int(retry_after) else repr(retry_after).encode()
        )

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await lifespan(receive, send)
            return
        path = scope["path"]
        if path.startswith("/_sim/"):
            await self._control.handle(scope, receive, send)
            return
        method = scope["method"]
        if path == "/v1/chat/completions" and method == "POST":
            endpoint, deployment = "chat", None
        elif path.startswith("/v1/organization"):
            await self._admin.handle(scope, receive, send)
            return
        else:
            endpoint, deployment = route(method, path)
        try:
            message = await receive()
            body = message.get("body", b"")
            if message.get("more_body"):
                body = await read_rest(receive, body)
            opts, key, project = self._admit(endpoint, scope, body)
            if not (self._quiet and opts is NO_OPTIONS):
                opts = await self._inject_faults(opts, send)
                if opts is None:
                    return  # the connection was dropped
            if endpoint.startswith(BATCH_PREFIXES):
                req = BatchRequest(endpoint, deployment, body, opts, scope, key, project)
                await self._batch(req, send)
                return
            billed = await self._handlers[endpoint](body, opts, deployment, receive, send)
            if billed is not None:
                self.ledger.record(billed, endpoint, key, project)
        except SimError as exc:
            anthropic = endpoint in ANTHROPIC_ENDPOINTS
            await send_error(send, exc, anthropic=anthropic, retry_after=self._retry_after)

    async def _batch(self, req: BatchRequest, send) -> None:
        """The files and batch APIs: their lines are billed as they run (marked batch)."""
        anthropic = req.endpoint.startswith("msgbatch_")
        await (self._anthropic_batches if anthropic else self._openai_batches).handle(req, send)

    def _admit(self, endpoint: str | None, scope, body: bytes):
        """Check the route and the key, record the request; (its ``x-sim-*`` options, its key,
        its ``OpenAI-Project``)."""
        method, path = scope["method"], scope["path"]
        if endpoint is None:
            raise SimError(404, f"Unknown request URL: {method} {path}", "unknown_url")
        if endpoint == "method":
            raise SimError(405, f"Method {method} not allowed on {path}", "method_not_allowed")
        key, sim, project = request_key(scope["headers"])
        if not key:
            raise SimError(401, _MISSING_KEY, "missing_api_key")
        if self._expected_key is not None and key != self._expected_key:
            raise SimError(401, "Incorrect API key provided.", "invalid_api_key")
        self._control.record(path, method, scope, body)
        return (parse_options(sim) if sim else NO_OPTIONS), key, project

    async def _inject_faults(self, opts: Options, send) -> Options | None:
        """Wait the latency, raise the error asked for or rolled; None if the connection was
        dropped, else the options (``malformed`` set when that was rolled)."""
        latency = self.config.latency_ms if opts.latency_ms is None else opts.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        status = opts.status if opts.status is not None else self.config.status
        if status is not None and status >= 400:
            code = "rate_limit_exceeded" if status == 429 else None
            raise SimError(status, f"Simulated upstream error (status {status})", code)
        if self.config.fail_rate and self._rng.random() < self.config.fail_rate:
            raise SimError(500, "Simulated upstream failure (fail-rate)")
        if self._faults:
            roll = self._rng.random()
            if roll < self.config.reset_rate:
                await drop(send)
                return None
            if roll < self.config.reset_rate + self.config.malformed_rate:
                return replace(opts, malformed=True)
        return opts
