"""OpenAI Chat Completions (``POST /v1/chat/completions``, and Azure's
``/openai/deployments/{name}/chat/completions``): the request plan parsed once per distinct
body, the JSON answer (a pre-serialised template on the fast path) and the SSE stream."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from simulator.config import NO_OPTIONS, Options, SimConfig, stream_shape
from simulator.tokens import chat_prompt_tokens, completion_tokens, generated_text, pieces
from simulator.vision import images_tokens
from simulator.wire import (
    JSON_HEADERS,
    MALFORMED,
    SimError,
    json_object,
    send_json,
    sse,
    stream,
)

MAX_CACHED_PLANS = 1024
MAX_CHOICES = 128
MAX_CACHED_BODY = 64 * 1024

_COMPLETION_DETAILS = {
    "reasoning_tokens": 0,
    "audio_tokens": 0,
    "accepted_prediction_tokens": 0,
    "rejected_prediction_tokens": 0,
}

# "id" and "created" come before any user-supplied value in the body, so splitting at the
# first occurrence of each marker is safe whatever the model name contains.
_ID_MARK = "@@sim-id@@"
_CREATED_MARK = "@@sim-created@@"


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """What a chat request body asks for, parsed and counted once."""

    model: str
    prompt: int
    completion: int  # over all choices
    cut: bool
    stream: bool
    include_usage: bool
    template: tuple[bytes, bytes, bytes]  # the default JSON answer around its id and created
    n: int = 1


def chat_usage(prompt: int, completion: int, cached: int) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt), "audio_tokens": 0},
        "completion_tokens_details": _COMPLETION_DETAILS,
    }


def chat_body(rid, created, model: str, *, completion: int, finish: str, usage, n: int = 1) -> dict:
    """The answer: ``n`` choices of ``completion // n`` tokens each."""
    each = generated_text(completion // n)
    body = {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {
                    "role": "assistant",
                    "content": each,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish,
            }
            for index in range(n)
        ],
        "service_tier": "default",
        "system_fingerprint": "fp_simulator",
    }
    if usage is not None:
        body["usage"] = usage
    return body


def _choices(req: dict) -> int:
    n = req.get("n", 1)
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES:
        raise SimError(400, f"n: must be an integer within 1..{MAX_CHOICES}", "invalid_value", "n")
    return n


def chat_plan(req: dict, deployment: str | None, *, bill_max: bool = False) -> ChatPlan:
    model = req.get("model") or deployment
    if not isinstance(model, str) or not model:
        raise SimError(400, "you must provide a model parameter", "missing_field", "model")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimError(400, "messages: a non-empty array is required", "missing_field", "messages")
    n = _choices(req)
    limit = req.get("max_completion_tokens") or req.get("max_tokens")
    if bill_max and isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        completion, cut = limit, True
    else:
        completion, cut = completion_tokens(limit)
    completion *= n
    prompt = chat_prompt_tokens(messages, req.get("tools"))
    if bill_max:
        prompt += images_tokens(model, messages)
    stream_options = req.get("stream_options")
    body = _template_body(model, completion, cut, prompt, n)
    head, rest = orjson.dumps(body).split(b'"' + _ID_MARK.encode() + b'"', 1)
    middle, tail = rest.split(b'"' + _CREATED_MARK.encode() + b'"', 1)
    return ChatPlan(
        model=model,
        prompt=prompt,
        completion=completion,
        cut=cut,
        stream=req.get("stream") is True,
        include_usage=isinstance(stream_options, dict)
        and stream_options.get("include_usage") is True,
        template=(head + b'"chatcmpl-sim', b'"' + middle, tail),
        n=n,
    )


def _template_body(model: str, completion: int, cut: bool, prompt: int, n: int) -> dict:
    finish = "length" if cut else "stop"
    usage = chat_usage(prompt, completion, 0)
    return chat_body(
        _ID_MARK, _CREATED_MARK, model, completion=completion, finish=finish, usage=usage, n=n
    )


def stream_events(
    rid: str, created: int, model: str, *, parts, finish: str, usage, include_usage: bool
) -> tuple[bytes, list[bytes], bytes]:
    """(the role chunk, one chunk per content piece, the finish chunk [+ usage] + ``[DONE]``)."""
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
        return sse(base)

    first = chunk({"role": "assistant", "content": "", "refusal": None})
    content = [chunk({"content": piece}) for piece in parts]
    tail = [chunk({}, finish)]
    if usage is not None:
        base["choices"] = []
        base["usage"] = usage
        tail.append(sse(base))
    tail.append(b"data: [DONE]\n\n")
    return first, content, b"".join(tail)


class ChatCompletions:
    """The chat endpoint, with a bounded cache of parsed request bodies (cleared when full)."""

    def __init__(self, config: SimConfig, seq) -> None:
        self.config = config
        self._seq = seq  # shared with the other endpoints: ids are unique per process
        self._plans: dict[bytes, ChatPlan] = {}

    def _plan(self, body: bytes, deployment: str | None) -> ChatPlan:
        # A load test repeats one body: its plan (parsed, validated, counted) and, for plain JSON
        # answers, its serialised response are computed once and reused.
        plan = self._plans.get(body) if deployment is None else None
        if plan is None:
            plan = chat_plan(json_object(body), deployment, bill_max=self.config.bill_max)
            if deployment is None and len(body) <= MAX_CACHED_BODY:
                if len(self._plans) >= MAX_CACHED_PLANS:
                    self._plans.clear()
                self._plans[body] = plan
        return plan

    async def handle(self, body: bytes, opts: Options, deployment, receive, send) -> None:
        plan = self._plan(body, deployment)
        seq = next(self._seq)
        created = int(time.time())
        if (
            opts is NO_OPTIONS
            and not plan.stream
            and self.config.reply is None
            and self.config.completion_tokens is None
        ):
            head, middle, tail = plan.template
            payload = b"%s%010d%s%d%s" % (head, seq, middle, created, tail)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*JSON_HEADERS, (b"content-length", b"%d" % len(payload))],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        completion, cut = plan.completion, plan.cut
        if opts.completion_tokens is not None:
            completion, cut = opts.completion_tokens, False
        elif self.config.completion_tokens is not None:
            completion, cut = self.config.completion_tokens, False
        prompt = plan.prompt if opts.prompt_tokens is None else opts.prompt_tokens
        usage = None if opts.no_usage else chat_usage(prompt, completion, opts.cached_tokens)
        finish = "length" if cut else "stop"
        rid = f"chatcmpl-sim{seq:010d}"
        if plan.stream:
            usage = usage if plan.include_usage else None
            await self._stream(
                send,
                receive,
                opts,
                plan,
                rid=rid,
                created=created,
                completion=completion,
                finish=finish,
                usage=usage,
            )
            return
        if opts.malformed:
            await send_json(send, 200, MALFORMED)
            return
        answer = chat_body(
            rid, created, plan.model, completion=completion, finish=finish, usage=usage, n=plan.n
        )
        if self.config.reply is not None:
            answer["choices"][0]["message"]["content"] = self.config.reply
        await send_json(send, 200, orjson.dumps(answer))

    async def _stream(
        self, send, receive, opts, plan: ChatPlan, *, rid, created, completion, finish, usage
    ) -> None:
        delay, chunks = stream_shape(self.config, opts)
        first, content, tail = stream_events(
            rid,
            created,
            plan.model,
            parts=pieces(completion, chunks),
            finish=finish,
            usage=usage,
            include_usage=plan.include_usage,
        )
        await stream(
            send,
            receive,
            first,
            content,
            tail,
            delay_ms=delay,
            cut=self.config.cut_stream_after,
        )
