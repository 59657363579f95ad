"""Upstream simulator: a fake OpenAI- and Anthropic-compatible provider for demos, tests and
benchmarks. ``python manage.py simulate_upstream --port N`` (or ``python -m gateway.simulator``).

It is a raw ASGI app — no framework, no Django request cycle — because the benchmarks use it as
the "direct" baseline: whatever it costs per request is charged to the baseline, not to the
gateway. JSON goes through orjson.

Endpoints: ``POST /v1/chat/completions`` (JSON and SSE), ``POST /v1/embeddings``,
``GET /v1/models`` (and ``/v1/models/{id}``), ``POST /v1/messages`` (Anthropic Messages API,
JSON and SSE); Azure-style ``/openai/deployments/{name}/chat/completions|embeddings`` too.
Control endpoints (no auth, no failure injection): ``GET /_sim/health``,
``GET /_sim/last?path=/v1/chat/completions`` (headers and body of the last request on that path,
plus how many arrived), ``POST /_sim/reset``.

Usage is deterministic, so tests can assert exact costs:

- text tokens: ``ceil(len(text) / 4)``; a non-text content part (image, audio, file) counts 85.
- chat ``prompt_tokens``: 3 per message + the tokens of its content (and ``name``) + 3, plus the
  tokens of the JSON of ``tools`` when given. Anthropic: the same over ``messages`` and ``system``.
- ``completion_tokens``: ``min(max_completion_tokens or max_tokens, 16)``, i.e. 16 by default;
  ``finish_reason`` is ``length`` when the limit cut it short, else ``stop`` (``max_tokens`` /
  ``end_turn`` for Anthropic). The text is that many words.
- embeddings: each string input counts ``max(1, ceil(len / 4))``, a token-array input its length.
  Vectors are unit length, derived from the input's hash (256 dimensions unless ``dimensions``).

Per-request headers (all optional): ``x-sim-status`` (answer that error status),
``x-sim-latency-ms`` (delay before answering), ``x-sim-chunk-delay-ms`` and ``x-sim-chunks``
(stream shape), ``x-sim-no-usage: 1`` (omit usage entirely), ``x-sim-prompt-tokens`` and
``x-sim-completion-tokens`` (override the counts), ``x-sim-cached-tokens`` (OpenAI
``prompt_tokens_details.cached_tokens``, at most ``prompt_tokens``), ``x-sim-cache-read-tokens`` /
``x-sim-cache-write-tokens`` (Anthropic ``cache_read_input_tokens`` /
``cache_creation_input_tokens``; ``input_tokens`` is the prompt minus both, at least 0, since
Anthropic's ``input_tokens`` excludes cache reads and writes).

Faults a whole simulator can be started with (the gateway forwards no client header, so tests
of its retries and fallbacks need faults chosen without one): ``--status`` (every answer that
error; a 429 carries ``Retry-After: --retry-after``, 1 s by default), ``--fail-rate`` (a share of
500s), ``--reset-rate`` (a share of requests whose connection is dropped without an answer),
``--malformed-rate`` (a share of non-streaming answers that are a 200 with a body that is not
JSON), ``--cut-stream-after N`` (every stream loses its connection after N content chunks).
``--reply TEXT`` makes every non-streaming chat answer that text (an LLM judge's JSON verdict).
With none of them set, serving a request does no extra work.

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``, except on
``/v1/messages``, which answers Anthropic's ``{"type": "error", "error": {"type", "message"}}``
as the real API does. A request without ``Authorization``, ``x-api-key`` or ``api-key`` gets 401.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import math
import random
import time
from array import array
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import parse_qs

import orjson

DEFAULT_COMPLETION_TOKENS = 16
DEFAULT_EMBEDDING_DIMS = 256
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_TOKENS_OVERRIDE = 32_768
MAX_CHUNKS = 10_000
MAX_DELAY_MS = 600_000
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_DIMS = 4096
MAX_RECORDED_PATHS = 256
MAX_CACHED_PLANS = 1024
MAX_CACHED_BODY = 64 * 1024
MAX_CACHED_ANSWER = 1024 * 1024
NON_TEXT_PART_TOKENS = 85
MODELS_CREATED = 1_700_000_000
MODEL_IDS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
)
_SENTENCE = (
    "The simulated upstream answers every prompt with this deterministic sentence, so tests "
    "and benchmarks always see the same words, token counts and costs from one run to the next."
)
_WORDS = tuple(_SENTENCE.split())

_COMPLETION_DETAILS = {
    "reasoning_tokens": 0,
    "audio_tokens": 0,
    "accepted_prediction_tokens": 0,
    "rejected_prediction_tokens": 0,
}
_JSON = [(b"content-type", b"application/json")]
_MALFORMED = b'{"id": "chatcmpl-sim", "object": "chat.completion", "choices": [{"index": 0, "mess'
_SSE = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]

_ERROR_TYPES = {
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


@dataclass(frozen=True, slots=True)
class SimConfig:
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    chunks: int = 20
    fail_rate: float = 0.0
    status: int | None = None
    api_key: str | None = None  # None: any non-empty key is accepted
    seed: int | None = None
    reset_rate: float = 0.0  # share of requests whose connection is dropped, no answer
    malformed_rate: float = 0.0  # share of non-streaming answers that are 200 + invalid JSON
    cut_stream_after: int | None = None  # streams lose their connection after N content chunks
    retry_after: float = 1.0  # seconds, sent as Retry-After with every 429
    reply: str | None = None  # every non-streaming chat answer's text (e.g. a judge's JSON)

    def __post_init__(self) -> None:
        if not 0 <= self.latency_ms <= MAX_DELAY_MS:
            raise ValueError(f"latency_ms must be within 0..{MAX_DELAY_MS}")
        if not 0 <= self.chunk_delay_ms <= MAX_DELAY_MS:
            raise ValueError(f"chunk_delay_ms must be within 0..{MAX_DELAY_MS}")
        if not 1 <= self.chunks <= MAX_CHUNKS:
            raise ValueError(f"chunks must be within 1..{MAX_CHUNKS}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be within 0..1")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400..599)")
        for name in ("reset_rate", "malformed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if self.reset_rate + self.malformed_rate > 1.0:
            raise ValueError("reset_rate + malformed_rate must be at most 1")
        if self.cut_stream_after is not None and not 0 <= self.cut_stream_after <= MAX_CHUNKS:
            raise ValueError(f"cut_stream_after must be within 0..{MAX_CHUNKS}")
        if not 0 <= self.retry_after <= 86_400:
            raise ValueError("retry_after must be within 0..86400 seconds")


class SimError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


@dataclass(slots=True)
class _Options:
    """What the request's ``x-sim-*`` headers ask for."""

    status: int | None = None
    latency_ms: float | None = None
    chunk_delay_ms: float | None = None
    chunks: int | None = None
    no_usage: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    malformed: bool = False  # set by --malformed-rate, never by a header


def _int_header(name: str, raw: bytes, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SimError(400, f"{name}: not an integer", "invalid_value", name) from None
    if not low <= value <= high:
        raise SimError(400, f"{name}: must be within {low}..{high}", "invalid_value", name)
    return value


def _ms_header(name: str, raw: bytes) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SimError(400, f"{name}: not a number", "invalid_value", name) from None
    if not 0 <= value <= MAX_DELAY_MS:
        raise SimError(400, f"{name}: must be within 0..{MAX_DELAY_MS}", "invalid_value", name)
    return value


def _parse_options(sim: dict[bytes, bytes]) -> _Options:
    opts = _Options()
    for name, raw in sim.items():
        if name == b"x-sim-status":
            opts.status = _int_header("x-sim-status", raw, 100, 599)
        elif name == b"x-sim-latency-ms":
            opts.latency_ms = _ms_header("x-sim-latency-ms", raw)
        elif name == b"x-sim-chunk-delay-ms":
            opts.chunk_delay_ms = _ms_header("x-sim-chunk-delay-ms", raw)
        elif name == b"x-sim-chunks":
            opts.chunks = _int_header("x-sim-chunks", raw, 1, MAX_CHUNKS)
        elif name == b"x-sim-no-usage":
            opts.no_usage = raw.strip().lower() in (b"1", b"true", b"yes")
        elif name == b"x-sim-prompt-tokens":
            opts.prompt_tokens = _int_header(name.decode(), raw, 0, 10_000_000)
        elif name == b"x-sim-completion-tokens":
            opts.completion_tokens = _int_header(name.decode(), raw, 0, MAX_TOKENS_OVERRIDE)
        elif name == b"x-sim-cached-tokens":
            opts.cached_tokens = _int_header(name.decode(), raw, 0, 10_000_000)
        elif name == b"x-sim-cache-read-tokens":
            opts.cache_read_tokens = _int_header(name.decode(), raw, 0, 10_000_000)
        elif name == b"x-sim-cache-write-tokens":
            opts.cache_write_tokens = _int_header(name.decode(), raw, 0, 10_000_000)
    return opts


_NO_OPTIONS = _Options()  # shared, never mutated: requests without x-sim-* headers

# --- token accounting ------------------------------------------------------------------------


def text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _content_tokens(content) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, str):
                total += text_tokens(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    total += text_tokens(text)
                elif part.get("type") == "tool_result":
                    total += _content_tokens(part.get("content"))
                elif part.get("type") == "tool_use":
                    total += text_tokens(orjson.dumps(part.get("input")).decode())
                else:
                    total += NON_TEXT_PART_TOKENS
        return total
    return 0


def chat_prompt_tokens(messages: list, tools=None, system=None) -> int:
    """3 per message + its content (and name) + 3 priming tokens; tools and system added."""
    total = 3
    for message in messages:
        total += 3
        if isinstance(message, dict):
            total += _content_tokens(message.get("content"))
            name = message.get("name")
            if isinstance(name, str):
                total += text_tokens(name)
    if tools:
        total += text_tokens(orjson.dumps(tools).decode())
    if system:
        total += _content_tokens(system)
    return total


def _completion_tokens(limit) -> tuple[int, bool]:
    """(tokens generated, whether the limit cut the answer short)."""
    if (
        isinstance(limit, int)
        and not isinstance(limit, bool)
        and 0 < limit < DEFAULT_COMPLETION_TOKENS
    ):
        return limit, True
    return DEFAULT_COMPLETION_TOKENS, False


@lru_cache(maxsize=512)
def generated_text(tokens: int) -> str:
    words = len(_WORDS)
    return " ".join(_WORDS[i % words] for i in range(tokens))


@lru_cache(maxsize=512)
def _pieces(tokens: int, chunks: int) -> tuple[str, ...]:
    """The answer split into ``chunks`` near-equal, non-empty pieces (fewer if it is shorter)."""
    text = generated_text(tokens)
    if not text:
        return ()
    count = min(chunks, len(text))
    size = len(text)
    return tuple(text[i * size // count : (i + 1) * size // count] for i in range(count))


def embedding_vector(item: str | list, dims: int) -> array:
    """A deterministic unit vector (float32) for one input."""
    seed = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = array("H")
    raw.frombytes(hashlib.shake_128(seed).digest(dims * 2))
    values = [v / 32767.5 - 1.0 for v in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


# --- responses -------------------------------------------------------------------------------


def _openai_error(status: int, message: str, code: str | None, param: str | None) -> bytes:
    kind = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error",))
    return orjson.dumps(
        {"error": {"message": message, "type": kind[0], "param": param, "code": code}}
    )


def _anthropic_error(status: int, message: str) -> bytes:
    pair = _ERROR_TYPES.get(status)
    kind = pair[1] if pair else ("api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


async def _send(send, status: int, body: bytes, headers=_JSON) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _sse(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _cache_breakpoint(req: dict) -> tuple[int, bytes] | None:
    """(tokens up to the last ``cache_control`` block, a digest of that prefix), or None.

    Anthropic caches a prompt prefix ending at a block marked ``cache_control``; the simulator
    reports such a prefix as written the first time it sees it and as read afterwards.
    """
    blocks: list = []
    system = req.get("system")
    if isinstance(system, list):
        blocks.extend(system)
    for message in req.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            blocks.extend(content)
    tokens, found = 0, None
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        tokens += text_tokens(str(block.get("text") or block.get("content") or ""))
        if isinstance(block.get("cache_control"), dict):
            found = (tokens, hashlib.sha256(orjson.dumps(blocks[: i + 1])).digest())
    return found


def _forced_tool(req: dict) -> dict | None:
    """The tool a request forces (``tool_choice`` any/tool), as a deterministic tool_use."""
    tools = req.get("tools")
    choice = req.get("tool_choice")
    if not isinstance(tools, list) or not tools or not isinstance(choice, dict):
        return None
    if choice.get("type") == "tool":
        tool = next((t for t in tools if t.get("name") == choice.get("name")), None)
    elif choice.get("type") == "any":
        tool = tools[0]
    else:
        return None
    if not isinstance(tool, dict):
        return None
    props = ((tool.get("input_schema") or {}).get("properties") or {}).keys()
    return {"name": tool.get("name", ""), "input": {name: "sim" for name in props}}


def _event(name: bytes, obj) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


async def _read_body(receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    return await _read_rest(receive, body)


async def _read_rest(receive, body: bytes) -> bytes:
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


def _json_object(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SimError(400, "request body is not valid JSON", "invalid_json") from None
    if not isinstance(data, dict):
        raise SimError(400, "request body must be a JSON object", "invalid_json")
    return data


def _route(method: str, path: str) -> tuple[str | None, str | None]:
    """(endpoint, deployment) for a path; Azure puts the model in the path."""
    if path.startswith("/v1/"):
        tail = path[4:]
        if tail == "chat/completions":
            return ("chat" if method == "POST" else "method"), None
        if tail == "embeddings":
            return ("embeddings" if method == "POST" else "method"), None
        if tail == "messages":
            return ("messages" if method == "POST" else "method"), None
        if tail == "models":
            return ("models" if method == "GET" else "method"), None
        if tail.startswith("models/") and len(tail) > 7:
            return ("model" if method == "GET" else "method"), tail[7:]
        return None, None
    if path.startswith("/openai/deployments/"):
        deployment, _, tail = path[20:].partition("/")
        if deployment and tail in ("chat/completions", "embeddings"):
            kind = "chat" if tail == "chat/completions" else "embeddings"
            return (kind if method == "POST" else "method"), deployment
    return None, None


@dataclass(frozen=True, slots=True)
class _ChatPlan:
    """What a chat request body asks for, parsed and counted once."""

    model: str
    prompt: int
    completion: int
    cut: bool
    stream: bool
    include_usage: bool
    template: tuple[bytes, bytes, bytes]  # the default JSON answer around its id and created


# "id" and "created" come before any user-supplied value in the body, so splitting at the
# first occurrence of each marker is safe whatever the model name contains.
_ID_MARK = "@@sim-id@@"
_CREATED_MARK = "@@sim-created@@"


def _chat_usage(prompt: int, completion: int, cached: int) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt), "audio_tokens": 0},
        "completion_tokens_details": _COMPLETION_DETAILS,
    }


def _chat_body(rid, created, model: str, completion: int, finish: str, usage) -> dict:
    body = {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": generated_text(completion),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "service_tier": "default",
        "system_fingerprint": "fp_simulator",
    }
    if usage is not None:
        body["usage"] = usage
    return body


def _chat_plan(req: dict, deployment: str | None) -> _ChatPlan:
    model = req.get("model") or deployment
    if not isinstance(model, str) or not model:
        raise SimError(400, "you must provide a model parameter", "missing_field", "model")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimError(400, "messages: a non-empty array is required", "missing_field", "messages")
    completion, cut = _completion_tokens(req.get("max_completion_tokens") or req.get("max_tokens"))
    prompt = chat_prompt_tokens(messages, req.get("tools"))
    stream_options = req.get("stream_options")
    body = _chat_body(
        _ID_MARK, _CREATED_MARK, model, completion, "length" if cut else "stop",
        _chat_usage(prompt, completion, 0),
    )  # fmt: skip
    head, rest = orjson.dumps(body).split(b'"' + _ID_MARK.encode() + b'"', 1)
    middle, tail = rest.split(b'"' + _CREATED_MARK.encode() + b'"', 1)
    return _ChatPlan(
        model=model,
        prompt=prompt,
        completion=completion,
        cut=cut,
        stream=req.get("stream") is True,
        include_usage=isinstance(stream_options, dict)
        and stream_options.get("include_usage") is True,
        template=(head + b'"chatcmpl-sim', b'"' + middle, tail),
    )


class Simulator:
    """The ASGI app, one instance per process. Its state: the last-request records and bounded
    caches of parsed chat bodies and embedding answers (cleared whenever they fill up)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._rng = random.Random(self.config.seed)  # noqa: S311 - failure injection, not crypto
        self._seq = itertools.count(1)
        self._last: dict[str, tuple] = {}
        self._counts: dict[str, int] = {}
        self._total = 0
        self._plans: dict[bytes, _ChatPlan] = {}
        self._prompt_cache: set[bytes] = set()  # Anthropic cache_control prefixes seen
        self._embedding_answers: dict[bytes, bytes] = {}
        self._expected_key = self.config.api_key.encode() if self.config.api_key else None
        self._faults = bool(self.config.reset_rate or self.config.malformed_rate)
        retry_after = self.config.retry_after
        self._retry_after = (
            b"%d" % retry_after if retry_after == int(retry_after) else repr(retry_after).encode()
        )

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(receive, send)
            return
        path = scope["path"]
        if path.startswith("/_sim/"):
            await self._control(scope, receive, send)
            return
        method = scope["method"]
        if path == "/v1/chat/completions" and method == "POST":
            endpoint, deployment = "chat", None
        else:
            endpoint, deployment = _route(method, path)
        anthropic = endpoint == "messages"
        try:
            message = await receive()
            body = message.get("body", b"")
            if message.get("more_body"):
                body = await _read_rest(receive, body)
            if endpoint is None:
                raise SimError(404, f"Unknown request URL: {method} {path}", "unknown_url")
            if endpoint == "method":
                raise SimError(405, f"Method {method} not allowed on {path}", "method_not_allowed")
            sim = self._authenticate(scope["headers"])
            self._record(path, method, scope, body)
            opts = _parse_options(sim) if sim else _NO_OPTIONS
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
                    await _drop(send)
                    return
                if roll < self.config.reset_rate + self.config.malformed_rate:
                    opts = replace(opts, malformed=True)
            if endpoint == "chat":
                await self._chat(body, opts, deployment, receive, send)
            elif endpoint == "embeddings":
                await self._embeddings(body, opts, deployment, send)
            elif endpoint == "messages":
                await self._messages(_json_object(body), opts, receive, send)
            elif endpoint == "models":
                await _send(send, 200, _MODELS_BODY)
            else:
                await _send(send, 200, orjson.dumps(_model_object(deployment)))
        except SimError as exc:
            await self._send_error(send, exc, anthropic=anthropic)

    # --- plumbing ----------------------------------------------------------------------------

    def _authenticate(self, raw_headers) -> dict[bytes, bytes] | None:
        """Check the key; return the ``x-sim-*`` headers (None when there are none)."""
        key = None
        sim = None
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
        if not key:
            raise SimError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "missing_api_key",
            )
        if self._expected_key is not None and key != self._expected_key:
            raise SimError(401, "Incorrect API key provided.", "invalid_api_key")
        return sim

    def _record(self, path: str, method: str, scope, body: bytes) -> None:
        self._total += 1
        if path not in self._last and len(self._last) >= MAX_RECORDED_PATHS:
            return
        self._last[path] = (method, scope["query_string"], scope["headers"], body, time.time())
        self._counts[path] = self._counts.get(path, 0) + 1

    async def _send_error(self, send, exc: SimError, *, anthropic: bool) -> None:
        if anthropic:
            body = _anthropic_error(exc.status, exc.message)
        else:
            body = _openai_error(exc.status, exc.message, exc.code, exc.param)
        headers = _JSON
        if exc.status == 429:
            headers = [*_JSON, (b"retry-after", self._retry_after)]
        await _send(send, exc.status, body, headers)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _control(self, scope, receive, send) -> None:
        await _read_body(receive)
        path = scope["path"]
        method = scope["method"]
        if path == "/_sim/health" and method == "GET":
            await _send(send, 200, orjson.dumps({"status": "ok", "requests": self._total}))
        elif path == "/_sim/last" and method == "GET":
            query = parse_qs(scope["query_string"].decode("latin-1"))
            wanted = (query.get("path") or ["/v1/chat/completions"])[0]
            record = self._last.get(wanted)
            if record is None:
                err = SimError(404, f"no request recorded for {wanted}", "not_recorded")
                await self._send_error(send, err, anthropic=False)
                return
            await _send(send, 200, orjson.dumps(self._describe(wanted, record)))
        elif path == "/_sim/reset" and method == "POST":
            self._last.clear()
            self._counts.clear()
            self._total = 0
            await _send(send, 200, b'{"status":"ok"}')
        else:
            err = SimError(404, f"Unknown request URL: {method} {path}", "unknown_url")
            await self._send_error(send, err, anthropic=False)

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

    # --- OpenAI ------------------------------------------------------------------------------

    async def _chat(self, body: bytes, opts: _Options, deployment, receive, send) -> None:
        # A load test repeats one body: its plan (parsed, validated, counted) and, for plain JSON
        # answers, its serialised response are computed once and reused.
        plan = self._plans.get(body) if deployment is None else None
        if plan is None:
            plan = _chat_plan(_json_object(body), deployment)
            if deployment is None and len(body) <= MAX_CACHED_BODY:
                if len(self._plans) >= MAX_CACHED_PLANS:
                    self._plans.clear()
                self._plans[body] = plan
        seq = next(self._seq)
        created = int(time.time())
        if opts is _NO_OPTIONS and not plan.stream and self.config.reply is None:
            head, middle, tail = plan.template
            payload = b"%s%010d%s%d%s" % (head, seq, middle, created, tail)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*_JSON, (b"content-length", b"%d" % len(payload))],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        completion, cut = plan.completion, plan.cut
        if opts.completion_tokens is not None:
            completion, cut = opts.completion_tokens, False
        prompt = plan.prompt if opts.prompt_tokens is None else opts.prompt_tokens
        usage = None if opts.no_usage else _chat_usage(prompt, completion, opts.cached_tokens)
        finish = "length" if cut else "stop"
        rid = f"chatcmpl-sim{seq:010d}"
        if plan.stream:
            await self._chat_stream(
                send, receive, opts, rid, created, plan.model, completion, finish,
                usage if plan.include_usage else None, plan.include_usage,
            )  # fmt: skip
            return
        if opts.malformed:
            await _send(send, 200, _MALFORMED)
            return
        answer = _chat_body(rid, created, plan.model, completion, finish, usage)
        if self.config.reply is not None:
            answer["choices"][0]["message"]["content"] = self.config.reply
        await _send(send, 200, orjson.dumps(answer))

    async def _chat_stream(
        self, send, receive, opts, rid, created, model, completion, finish, usage, include_usage
    ) -> None:
        delay = self.config.chunk_delay_ms if opts.chunk_delay_ms is None else opts.chunk_delay_ms
        chunks = opts.chunks or self.config.chunks
        base = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_simulator",
            "choices": None,
        }
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
            base["choices"] = [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ]
            return _sse(base)

        first = chunk({"role": "assistant", "content": "", "refusal": None})
        pieces = [chunk({"content": piece}) for piece in _pieces(completion, chunks)]
        tail = [chunk({}, finish)]
        if usage is not None:
            base["choices"] = []
            base["usage"] = usage
            tail.append(_sse(base))
        tail.append(b"data: [DONE]\n\n")
        cut = self.config.cut_stream_after
        await _stream(send, receive, first, pieces, b"".join(tail), delay, cut=cut)

    async def _embeddings(self, body: bytes, opts: _Options, deployment, send) -> None:
        if opts.malformed:
            await _send(send, 200, _MALFORMED)
            return
        cacheable = opts is _NO_OPTIONS and deployment is None and len(body) <= MAX_CACHED_BODY
        payload = self._embedding_answers.get(body) if cacheable else None
        if payload is None:
            payload = self._embedding_answer(_json_object(body), opts, deployment)
            if cacheable and len(payload) <= MAX_CACHED_ANSWER:
                if len(self._embedding_answers) >= MAX_CACHED_PLANS:
                    self._embedding_answers.clear()
                self._embedding_answers[body] = payload
        await _send(send, 200, payload)

    def _embedding_answer(self, req: dict, opts: _Options, deployment) -> bytes:
        model = req.get("model") or deployment
        if not isinstance(model, str) or not model:
            raise SimError(400, "you must provide a model parameter", "missing_field", "model")
        items = _embedding_inputs(req.get("input"))
        dims = req.get("dimensions", DEFAULT_EMBEDDING_DIMS)
        if (
            not isinstance(dims, int)
            or isinstance(dims, bool)
            or not 1 <= dims <= MAX_EMBEDDING_DIMS
        ):
            raise SimError(
                400,
                f"dimensions must be within 1..{MAX_EMBEDDING_DIMS}",
                "invalid_value",
                "dimensions",
            )
        encoding = req.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise SimError(
                400,
                "encoding_format must be 'float' or 'base64'",
                "invalid_value",
                "encoding_format",
            )
        data = []
        tokens = 0
        for index, item in enumerate(items):
            tokens += max(1, text_tokens(item)) if isinstance(item, str) else len(item)
            vector = embedding_vector(item, dims)
            value = (
                base64.b64encode(vector.tobytes()).decode()
                if encoding == "base64"
                else vector.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": value})
        if opts.prompt_tokens is not None:
            tokens = opts.prompt_tokens
        body = {"object": "list", "data": data, "model": model}
        if not opts.no_usage:
            body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return orjson.dumps(body)

    # --- Anthropic ---------------------------------------------------------------------------

    async def _messages(self, req: dict, opts: _Options, receive, send) -> None:
        model = req.get("model")
        if not isinstance(model, str) or not model:
            raise SimError(400, "model: Field required", "missing_field", "model")
        max_tokens = req.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise SimError(400, "max_tokens: Field required", "missing_field", "max_tokens")
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages:
            raise SimError(400, "messages: Field required", "missing_field", "messages")
        completion, cut = _completion_tokens(max_tokens)
        if opts.completion_tokens is not None:
            completion, cut = opts.completion_tokens, False
        if opts.prompt_tokens is not None:
            prompt = opts.prompt_tokens
        else:
            prompt = chat_prompt_tokens(messages, req.get("tools"), req.get("system"))
        read, write = opts.cache_read_tokens, opts.cache_write_tokens
        breakpoint_ = _cache_breakpoint(req) if not (read or write) else None
        if breakpoint_ is not None:
            prefix, digest = breakpoint_
            prefix = min(prefix, prompt)
            if digest in self._prompt_cache:
                read = prefix
            else:
                write = prefix
                if len(self._prompt_cache) >= MAX_CACHED_PLANS:
                    self._prompt_cache.clear()
                self._prompt_cache.add(digest)
        usage = None
        if not opts.no_usage:
            usage = {
                "input_tokens": max(prompt - read - write, 0),
                "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": write,
                    "ephemeral_1h_input_tokens": 0,
                },
                "output_tokens": completion,
                "service_tier": "standard",
            }
        stop = "max_tokens" if cut else "end_turn"
        mid = f"msg_sim{next(self._seq):014d}"
        message = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": generated_text(completion)}],
            "stop_reason": stop,
            "stop_sequence": None,
        }
        tool = _forced_tool(req)
        if tool is not None:
            message["content"] = [
                {
                    "type": "tool_use",
                    "id": f"toolu_sim{mid[7:]}",
                    "name": tool["name"],
                    "input": tool["input"],
                }
            ]
            message["stop_reason"] = "tool_use"
        if req.get("stream") is True:
            await self._messages_stream(send, receive, opts, message, completion, usage)
            return
        if opts.malformed:
            await _send(send, 200, _MALFORMED)
            return
        if usage is not None:
            message["usage"] = usage
        await _send(send, 200, orjson.dumps(message), [*_JSON, (b"request-id", mid.encode())])

    async def _messages_stream(self, send, receive, opts, message, completion, usage) -> None:
        delay = self.config.chunk_delay_ms if opts.chunk_delay_ms is None else opts.chunk_delay_ms
        chunks = opts.chunks or self.config.chunks
        start = dict(message, content=[], stop_reason=None, stop_sequence=None)
        if usage is not None:
            start["usage"] = dict(usage, output_tokens=min(1, completion))
        block = message["content"][0]
        if block["type"] == "tool_use":
            await self._tool_use_stream(send, receive, delay, start, block, message, usage)
            return
        first = b"".join(
            (
                _event(b"message_start", {"type": "message_start", "message": start}),
                _event(
                    b"content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                _event(b"ping", {"type": "ping"}),
            )
        )
        pieces = [
            _event(
                b"content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
            for piece in _pieces(completion, chunks)
        ]
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        }
        if usage is not None:
            delta["usage"] = {
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "output_tokens": usage["output_tokens"],
            }
        tail = b"".join(
            (
                _event(b"content_block_stop", {"type": "content_block_stop", "index": 0}),
                _event(b"message_delta", delta),
                _event(b"message_stop", {"type": "message_stop"}),
            )
        )
        headers = [*_SSE, (b"request-id", message["id"].encode())]
        await _stream(
            send, receive, first, pieces, tail, delay, headers, cut=self.config.cut_stream_after
        )

    async def _tool_use_stream(self, send, receive, delay, start, block, message, usage) -> None:
        arguments = orjson.dumps(block["input"]).decode()
        half = len(arguments) // 2
        first = b"".join(
            (
                _event(b"message_start", {"type": "message_start", "message": start}),
                _event(
                    b"content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": dict(block, input={}),
                    },
                ),
            )
        )
        pieces = [
            _event(
                b"content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": part},
                },
            )
            for part in (arguments[:half], arguments[half:])
        ]
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        }
        if usage is not None:
            delta["usage"] = {"output_tokens": usage["output_tokens"]}
        tail = b"".join(
            (
                _event(b"content_block_stop", {"type": "content_block_stop", "index": 0}),
                _event(b"message_delta", delta),
                _event(b"message_stop", {"type": "message_stop"}),
            )
        )
        headers = [*_SSE, (b"request-id", message["id"].encode())]
        await _stream(
            send, receive, first, pieces, tail, delay, headers, cut=self.config.cut_stream_after
        )


def _embedding_inputs(value) -> list:
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        items = [value]  # one token array
    elif isinstance(value, list):
        items = value
    else:
        raise SimError(400, "input: a string or an array is required", "missing_field", "input")
    if not items:
        raise SimError(400, "input: must not be empty", "invalid_value", "input")
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise SimError(
            400, f"input: at most {MAX_EMBEDDING_INPUTS} items", "invalid_value", "input"
        )
    for item in items:
        if isinstance(item, str):
            if not item:
                raise SimError(
                    400, "input: empty strings are not allowed", "invalid_value", "input"
                )
        elif not (isinstance(item, list) and item and all(isinstance(v, int) for v in item)):
            raise SimError(
                400, "input: items must be strings or token arrays", "invalid_value", "input"
            )
    return items


def _model_object(model_id: str) -> dict:
    owner = "anthropic" if model_id.startswith("claude") else "simulator"
    return {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": owner}


_MODELS_BODY = orjson.dumps({"object": "list", "data": [_model_object(m) for m in MODEL_IDS]})


async def _stream(
    send, receive, first: bytes, pieces, tail: bytes, delay_ms: float, headers=_SSE, cut=None
):
    """First event at once, then the pieces ``delay_ms`` apart, then the tail.

    With a delay, a watcher on ``receive`` notices a client that went away, so an abandoned
    stream stops at the next piece instead of running to its end. With ``cut``, the connection
    is dropped after that many pieces instead (no tail, no end of the chunked body)."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": first, "more_body": True})
    if cut is not None:
        pieces, tail = pieces[:cut], None
    if not delay_ms:
        if tail is None:
            if pieces:
                await send(
                    {"type": "http.response.body", "body": b"".join(pieces), "more_body": True}
                )
            await _drop(send)
            return
        await send({"type": "http.response.body", "body": b"".join([*pieces, tail])})
        return
    watcher = asyncio.ensure_future(receive())
    try:
        delay = delay_ms / 1000
        for piece in pieces:
            await asyncio.sleep(delay)
            if watcher.done():
                return
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if tail is None:
            await _drop(send)
            return
        await send({"type": "http.response.body", "body": tail})
    finally:
        if not watcher.done():
            watcher.cancel()


async def _drop(send) -> None:
    """Drop the connection without (finishing) an answer, as a crashed upstream would.

    ASGI has no message for that: the server's transport is reached through ``send`` (uvicorn
    passes a bound method of its request cycle); anywhere else the request fails loudly."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("simulated connection reset")
    transport.abort()
    await asyncio.sleep(0)  # let the server notice before the app returns, so it sends nothing


# --- running ---------------------------------------------------------------------------------


def add_arguments(parser) -> None:
    """The command-line flags, shared by ``manage.py simulate_upstream`` and ``-m``."""
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument(
        "--chunk-delay-ms", type=float, default=0.0, help="delay between stream content chunks"
    )
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument(
        "--fail-rate", type=float, default=0.0, help="probability of a simulated 500"
    )
    parser.add_argument(
        "--status", type=int, default=None, help="answer every request with this error status"
    )
    parser.add_argument(
        "--api-key", default=None, help="accept only this key (default: any non-empty key)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for --fail-rate and the other rates"
    )
    parser.add_argument(
        "--reset-rate",
        type=float,
        default=0.0,
        help="probability of dropping the connection without an answer",
    )
    parser.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="probability of a 200 whose body is not valid JSON (non-streaming answers)",
    )
    parser.add_argument(
        "--cut-stream-after",
        type=int,
        default=None,
        metavar="N",
        help="drop every stream's connection after N content chunks",
    )
    parser.add_argument(
        "--retry-after",
        type=float,
        default=1.0,
        metavar="S",
        help="the Retry-After (seconds) sent with 429 answers (default 1)",
    )
    parser.add_argument(
        "--reply",
        default=None,
        metavar="TEXT",
        help="the text of every non-streaming chat answer (usage is counted as usual)",
    )
    parser.add_argument("--log-level", default="warning")


def config_from_options(options: dict) -> SimConfig:
    return SimConfig(
        latency_ms=options["latency_ms"],
        chunk_delay_ms=options["chunk_delay_ms"],
        chunks=options["chunks"],
        fail_rate=options["fail_rate"],
        status=options["status"],
        api_key=options["api_key"],
        seed=options["seed"],
        reset_rate=options.get("reset_rate", 0.0),
        malformed_rate=options.get("malformed_rate", 0.0),
        cut_stream_after=options.get("cut_stream_after"),
        retry_after=options.get("retry_after", 1.0),
        reply=options.get("reply"),
    )


def serve(config: SimConfig, *, host: str, port: int, log_level: str = "warning") -> None:
    """Run under uvicorn: uvloop, httptools, no access log (it is the benchmarks' baseline)."""
    import uvicorn

    uvicorn.run(
        Simulator(config),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level=log_level,
        server_header=False,
        date_header=False,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.simulator", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_options(vars(args))
    except ValueError as exc:
        parser.error(str(exc))
    print(f"upstream simulator on http://{args.host}:{args.port}/v1", flush=True)
    serve(config, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
