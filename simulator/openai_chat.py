"""OpenAI Chat Completions (``POST /v1/chat/completions``, and Azure's
``/openai/deployments/{name}/chat/completions``): the request plan parsed once per distinct
body, the JSON answer (a pre-serialised template on the fast path) and the SSE stream.

A plan holds one ``Answer`` per choice (``n`` of them; text choices start at different words of
the sentence, so they differ): a tool call when tools are offered (the rule of
``simulator.tools``), JSON for ``response_format`` ``json_schema`` / ``json_object``, else
words. ``reasoning_effort`` adds reasoning tokens (``completion_tokens_details``). A prompt of
1,024 tokens or more is looked up in the prompt cache (``simulator.prompt_cache``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from simulator.answers import Answer, answer, counted
from simulator.billing import Billed, from_chat_usage
from simulator.config import NO_OPTIONS, Options, SimConfig, stream_shape
from simulator.prompt_cache import MIN_CACHED_TOKENS, Prefixes, PromptCache, prompt_prefixes
from simulator.tokens import chat_prompt_tokens, reasoning_tokens, split
from simulator.tools import chat_tools, openai_choice, pick
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

# "id" and "created" come before any user-supplied value in the body, so splitting at the
# first occurrence of each marker is safe whatever the model name contains.
_ID_MARK = "@@sim-id@@"
_CREATED_MARK = "@@sim-created@@"


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """What a chat request body asks for, parsed and counted once."""

    model: str
    prompt: int
    answers: tuple[Answer, ...]  # one per choice
    stream: bool
    include_usage: bool
    template: tuple[bytes, bytes, bytes] | None  # the default JSON answer around id and created
    prefixes: Prefixes | None = None  # what the prompt cache compares (long prompts only)

    @property
    def n(self) -> int:
        return len(self.answers)

    @property
    def output_tokens(self) -> int:
        return sum(a.output_tokens for a in self.answers)


def chat_usage(prompt: int, completion: int, cached: int, reasoning: int = 0) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": min(reasoning, completion),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def finish_reason(ans: Answer) -> str:
    if ans.cut:
        return "length"
    return "tool_calls" if ans.call is not None else "stop"


def call_id(rid: str, index: int) -> str:
    return f"call_{rid.rsplit('-', 1)[-1]}{index:03d}"


def _message(ans: Answer, rid: str, index: int) -> dict:
    message = {"role": "assistant", "content": ans.text, "refusal": None, "annotations": []}
    if ans.call is not None:
        fn = {"name": ans.call.name, "arguments": ans.call.arguments}
        message["tool_calls"] = [{"id": call_id(rid, index), "type": "function", "function": fn}]
    return message


def chat_body(rid, created, model: str, answers, usage) -> dict:
    body = {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": _message(ans, str(rid), index),
                "logprobs": None,
                "finish_reason": finish_reason(ans),
            }
            for index, ans in enumerate(answers)
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


def output_schema(response_format):
    """The schema ``response_format`` (chat) asks the answer to follow: a dict, True for a bare
    JSON object, None for text."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return True
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else {}
    return None


def last_turn(messages: list) -> tuple[str, bool]:
    """(the text of the last user message, whether the conversation ends with the user's turn)."""
    text = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text_of(message.get("content"))
            break
    last = messages[-1] if messages else None
    return text, isinstance(last, dict) and last.get("role") == "user"


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _answers(req: dict, messages: list, limit, n: int) -> tuple[Answer, ...]:
    tools = chat_tools(req.get("tools"))
    prompt, user_last = last_turn(messages)
    call = pick(tools, openai_choice(req.get("tool_choice")), prompt=prompt, user_last=user_last)
    schema = None if call is not None else output_schema(req.get("response_format"))
    reasoning = reasoning_tokens(req.get("reasoning_effort"))
    return tuple(
        answer(limit=limit, call=call, schema=schema, reasoning=reasoning, start=i)
        for i in range(n)
    )


def chat_plan(req: dict, deployment: str | None, *, bill_max: bool = False) -> ChatPlan:
    model = req.get("model") or deployment
    if not isinstance(model, str) or not model:
        raise SimError(400, "you must provide a model parameter", "missing_field", "model")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimError(400, "messages: a non-empty array is required", "missing_field", "messages")
    n = _choices(req)
    limit = req.get("max_completion_tokens") or req.get("max_tokens")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
    answers = _answers(req, messages, limit, n)
    if bill_max and limit is not None:
        answers = tuple(
            counted(a, limit - a.reasoning, cut=True, start=i) for i, a in enumerate(answers)
        )
    prompt = chat_prompt_tokens(messages, req.get("tools"))
    if bill_max:
        prompt += images_tokens(model, messages)
    stream_options = req.get("stream_options")
    prefixes = None
    if prompt >= MIN_CACHED_TOKENS and not bill_max:
        prefixes = prompt_prefixes(model, req.get("tools"), messages)
    template = None
    if prefixes is None and all(a.call is None for a in answers):
        template = _template(model, answers, prompt)
    return ChatPlan(
        model=model,
        prompt=prompt,
        answers=answers,
        stream=req.get("stream") is True,
        include_usage=isinstance(stream_options, dict)
        and stream_options.get("include_usage") is True,
        template=template,
        prefixes=prefixes,
    )


def _template(model: str, answers, prompt: int) -> tuple[bytes, bytes, bytes]:
    completion = sum(a.output_tokens for a in answers)
    usage = chat_usage(prompt, completion, 0, sum(a.reasoning for a in answers))
    body = chat_body(_ID_MARK, _CREATED_MARK, model, answers, usage)
    head, rest = orjson.dumps(body).split(b'"' + _ID_MARK.encode() + b'"', 1)
    middle, tail = rest.split(b'"' + _CREATED_MARK.encode() + b'"', 1)
    return head + b'"chatcmpl-sim', b'"' + middle, tail


# --- streams ---------------------------------------------------------------------------------


class _Chunks:
    """Serialises the chunks of one stream around a shared, mutated base object."""

    def __init__(self, rid: str, created: int, model: str, include_usage: bool) -> None:
        self.base = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_simulator",
            "choices": None,
        }
        if include_usage:
            self.base["usage"] = None

    def chunk(self, index: int, delta: dict, finish: str | None = None) -> bytes:
        self.base["choices"] = [
            {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        ]
        return sse(self.base)

    def usage(self, usage: dict) -> bytes:
        self.base["choices"] = []
        self.base["usage"] = usage
        return sse(self.base)


def _opening(chunks: _Chunks, rid: str, index: int, ans: Answer) -> bytes:
    if ans.call is None:
        return chunks.chunk(index, {"role": "assistant", "content": "", "refusal": None})
    call = {
        "index": 0,
        "id": call_id(rid, index),
        "type": "function",
        "function": {"name": ans.call.name, "arguments": ""},
    }
    delta = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
    return chunks.chunk(index, delta)


def _delta(ans: Answer, piece: str) -> dict:
    if ans.call is None:
        return {"content": piece}
    return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}


def stream_events(
    rid: str, created: int, model: str, *, answers, chunks: int, usage, include_usage: bool
) -> tuple[bytes, list[bytes], bytes]:
    """(the role chunks, one event per content piece — a chunk for each choice that has that
    piece —, the finish chunks [+ usage] + ``[DONE]``)."""
    out = _Chunks(rid, created, model, include_usage)
    first = b"".join(_opening(out, rid, i, ans) for i, ans in enumerate(answers))
    parts = [
        split(ans.call.arguments if ans.call is not None else ans.text or "", chunks)
        for ans in answers
    ]
    content = [
        b"".join(
            out.chunk(i, _delta(ans, parts[i][j]))
            for i, ans in enumerate(answers)
            if j < len(parts[i])
        )
        for j in range(max((len(p) for p in parts), default=0))
    ]
    tail = [out.chunk(i, {}, finish_reason(ans)) for i, ans in enumerate(answers)]
    if usage is not None:
        tail.append(out.usage(usage))
    tail.append(b"data: [DONE]\n\n")
    return first, content, b"".join(tail)


class ChatCompletions:
    """The chat endpoint, with a bounded cache of parsed request bodies (cleared when full)."""

    def __init__(self, config: SimConfig, seq, prompt_cache: PromptCache | None = None) -> None:
        self.config = config
        self._seq = seq  # shared with the other endpoints: ids are unique per process
        self._plans: dict[bytes, ChatPlan] = {}
        self._prompt_cache = prompt_cache or PromptCache()

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

    async def handle(self, body: bytes, opts: Options, deployment, receive, send) -> Billed | None:
        """Answer; what it bills (None for a stream cut by ``--cut-stream-after``)."""
        plan = self._plan(body, deployment)
        seq = next(self._seq)
        created = int(time.time())
        if (
            opts is NO_OPTIONS
            and plan.template is not None
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
            return Billed(plan.model, plan.prompt, 0, 0, plan.output_tokens)
        rid = f"chatcmpl-sim{seq:010d}"
        answers, usage = self._usage(plan, opts)
        billed = from_chat_usage(plan.model, usage)
        if opts.no_usage:
            usage = None
        if plan.stream:
            delay, chunks = stream_shape(self.config, opts)
            first, content, tail = stream_events(
                rid,
                created,
                plan.model,
                answers=answers,
                chunks=chunks,
                usage=usage if plan.include_usage else None,
                include_usage=plan.include_usage,
            )
            cut = self.config.cut_stream_after
            await stream(send, receive, first, content, tail, delay_ms=delay, cut=cut)
            return None if cut is not None else billed
        if opts.malformed:
            await send_json(send, 200, MALFORMED)
            return billed
        body_out = chat_body(rid, created, plan.model, answers, usage)
        if self.config.reply is not None:
            message = body_out["choices"][0]["message"]
            message["content"] = self.config.reply
            message.pop("tool_calls", None)
            body_out["choices"][0]["finish_reason"] = "stop"
        await send_json(send, 200, orjson.dumps(body_out))
        return billed

    def _usage(self, plan: ChatPlan, opts: Options) -> tuple[tuple[Answer, ...], dict]:
        """(the answers, counted again if a count is forced; the usage). Without usage in the
        answer (``x-sim-no-usage``) the prompt cache is left alone and nothing is cached."""
        answers = plan.answers
        forced = opts.completion_tokens
        if forced is None:
            forced = self.config.completion_tokens
        if forced is not None:
            each = forced // plan.n
            answers = tuple(
                counted(a, max(each - a.reasoning, 0), start=i) for i, a in enumerate(answers)
            )
        completion = sum(a.output_tokens for a in answers) if forced is None else forced
        prompt = plan.prompt if opts.prompt_tokens is None else opts.prompt_tokens
        cached = opts.cached_tokens
        if not cached and plan.prefixes is not None and not opts.no_usage:
            cached = self._prompt_cache.cached_tokens(plan.prefixes, plan.prompt)
        reasoning = sum(a.reasoning for a in answers)
        return answers, chat_usage(prompt, completion, cached, reasoning)
