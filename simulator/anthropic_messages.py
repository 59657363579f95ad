"""Anthropic Messages (``POST /v1/messages``) and token counting
(``POST /v1/messages/count_tokens``): validation, usage split into input, cache-read and
cache-write tokens, tool use, extended thinking, structured output, the JSON answer and the
named-event SSE stream (``simulator.anthropic_stream``).

- Input tokens: ``chat_prompt_tokens`` over ``messages``, ``tools`` and ``system``;
  ``count_tokens`` answers that same number for the same body, which is what a message's usage
  adds up to (``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``).
- Cache: the ``x-sim-cache-*`` headers, or else the prompt prefix up to the last block marked
  ``cache_control`` (tools, then system, then messages, as Anthropic orders them), when it
  reaches ``MIN_CACHEABLE_TOKENS``: written the first time the simulator sees it, read after.
- Tools: the rule of ``simulator.tools`` (``tool_choice`` auto/any/tool/none); the call's input
  is a valid instance of the tool's ``input_schema``; ``stop_reason`` is ``tool_use``.
- ``thinking: {"type": "enabled", "budget_tokens": N}`` (N ≥ 1024 and below ``max_tokens``, as
  upstream requires) or ``{"type": "adaptive"}``: the content starts with a ``thinking`` block
  (``THINKING_TOKENS`` words, at most N) and its ``signature``; its tokens are output tokens.
  Forcing a tool with thinking on is a 400, as upstream.
- ``output_config.format`` (or the older ``output_format``) ``json_schema``: the text is a JSON
  instance of the schema.
"""

from __future__ import annotations

import base64
import hashlib

import orjson

from simulator.answers import Answer, answer, counted
from simulator.anthropic_stream import stream_events
from simulator.billing import Billed, from_anthropic_usage
from simulator.config import Options, SimConfig, stream_shape
from simulator.openai_chat import last_turn
from simulator.tokens import THINKING_TOKENS, chat_prompt_tokens, text_tokens, thinking_text
from simulator.tools import anthropic_choice, anthropic_tools, pick
from simulator.wire import (
    JSON_HEADERS,
    MALFORMED,
    SSE_HEADERS,
    SimError,
    json_object,
    send_json,
    stream,
)

MAX_CACHED_PREFIXES = 1024
MIN_CACHEABLE_TOKENS = 1024
MIN_THINKING_BUDGET = 1024


def _blocks(req: dict) -> list:
    """Everything a ``cache_control`` can mark, in prompt order: tools, system, message blocks."""
    blocks: list = []
    tools = req.get("tools")
    if isinstance(tools, list):
        blocks.extend(tools)
    system = req.get("system")
    if isinstance(system, list):
        blocks.extend(system)
    for message in req.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            blocks.extend(content)
    return blocks


def _block_tokens(block: dict) -> int:
    if "input_schema" in block:  # a tool
        return text_tokens(orjson.dumps(block).decode())
    return text_tokens(str(block.get("text") or block.get("content") or ""))


def cache_breakpoint(req: dict) -> tuple[int, bytes] | None:
    """(tokens up to the last ``cache_control`` block, a digest of that prefix), or None.

    Anthropic caches a prompt prefix ending at a block marked ``cache_control``; the simulator
    reports such a prefix as written the first time it sees it and as read afterwards.
    """
    blocks = _blocks(req)
    tokens, found = 0, None
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        tokens += _block_tokens(block)
        if isinstance(block.get("cache_control"), dict):
            found = (tokens, hashlib.sha256(orjson.dumps(blocks[: i + 1])).digest())
    return found


def _required(req: dict) -> tuple[str, int, list]:
    """(model, max_tokens, messages), each required as the real API requires them."""
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise SimError(400, "model: Field required", "missing_field", "model")
    max_tokens = req.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise SimError(400, "max_tokens: Field required", "missing_field", "max_tokens")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimError(400, "messages: Field required", "missing_field", "messages")
    return model, max_tokens, messages


def thinking_tokens(req: dict, max_tokens: int) -> int:
    """The thinking a request turns on, in tokens (0 when off); upstream's checks as 400s."""
    thinking = req.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return 0
    choice = req.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise SimError(
            400, "Thinking may not be enabled when tool_choice forces tool use.", "invalid_value"
        )
    if thinking["type"] == "adaptive":
        return min(THINKING_TOKENS, max_tokens - 1)
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < MIN_THINKING_BUDGET:
        raise SimError(
            400,
            f"thinking.budget_tokens: must be at least {MIN_THINKING_BUDGET}",
            "invalid_value",
            "thinking.budget_tokens",
        )
    if budget >= max_tokens:
        raise SimError(
            400,
            "max_tokens must be greater than thinking.budget_tokens",
            "invalid_value",
            "max_tokens",
        )
    return min(THINKING_TOKENS, budget)


def output_schema(req: dict):
    """The JSON schema the answer must follow (``output_config.format`` or ``output_format``)."""
    config = req.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = req.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _user_last(messages: list) -> bool:
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return False
    content = last.get("content")
    if isinstance(content, list):
        return not any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    return True


def message_answer(req: dict, max_tokens: int, messages: list) -> Answer:
    reasoning = thinking_tokens(req, max_tokens)
    prompt, _ = last_turn(messages)
    tools = anthropic_tools(req.get("tools"))
    choice = anthropic_choice(req.get("tool_choice"))
    call = pick(tools, choice, prompt=prompt, user_last=_user_last(messages))
    schema = None if call is not None else output_schema(req)
    return answer(limit=max_tokens, call=call, schema=schema, reasoning=reasoning)


def signature(text: str) -> str:
    """A deterministic stand-in for the signature Anthropic puts on a thinking block."""
    return base64.b64encode(hashlib.sha256(b"sim-thinking:" + text.encode()).digest() * 3).decode()


def content_blocks(mid: str, ans: Answer) -> list[dict]:
    blocks: list[dict] = []
    if ans.reasoning:
        thought = thinking_text(ans.reasoning)
        blocks.append({"type": "thinking", "thinking": thought, "signature": signature(thought)})
    if ans.call is not None:
        tool_input = {} if ans.cut else ans.call.input
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_sim{mid[7:]}",
                "name": ans.call.name,
                "input": tool_input,
            }
        )
    elif ans.text or not blocks:
        blocks.append({"type": "text", "text": ans.text or ""})
    return blocks


def message_body(mid: str, model: str, ans: Answer) -> dict:
    stop = "tool_use" if ans.call is not None else "end_turn"
    if ans.cut:
        stop = "max_tokens"
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(mid, ans),
        "stop_reason": stop,
        "stop_sequence": None,
    }


def _usage(prompt: int, completion: int, read: int, write: int) -> dict:
    """Anthropic's ``input_tokens`` excludes cache reads and writes (at least 0)."""
    return {
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


def input_tokens(req: dict, opts: Options) -> int:
    if opts.prompt_tokens is not None:
        return opts.prompt_tokens
    messages = req.get("messages")
    return chat_prompt_tokens(messages, req.get("tools"), req.get("system"))


class AnthropicMessages:
    """The Messages endpoints, with the ``cache_control`` prefixes seen so far (a bounded set,
    cleared when full)."""

    def __init__(self, config: SimConfig, seq) -> None:
        self.config = config
        self._seq = seq  # shared with the other endpoints: ids are unique per process
        self._prompt_cache: set[bytes] = set()

    async def count_tokens(self, body: bytes, opts: Options, deployment, receive, send) -> None:
        req = json_object(body)
        if not isinstance(req.get("model"), str) or not req["model"]:
            raise SimError(400, "model: Field required", "missing_field", "model")
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages:
            raise SimError(400, "messages: Field required", "missing_field", "messages")
        await send_json(send, 200, orjson.dumps({"input_tokens": input_tokens(req, opts)}))

    async def handle(self, body: bytes, opts: Options, deployment, receive, send) -> Billed | None:
        """Answer; what it bills (None for a stream cut by ``--cut-stream-after``)."""
        req = json_object(body)
        model, max_tokens, messages = _required(req)
        ans = message_answer(req, max_tokens, messages)
        if opts.completion_tokens is not None:
            ans = counted(ans, max(opts.completion_tokens - ans.reasoning, 0))
        prompt = input_tokens(req, opts)
        read, write = self._cache_split(req, opts, prompt)
        usage = _usage(prompt, ans.output_tokens, read, write)
        billed = from_anthropic_usage(model, usage)
        if opts.no_usage:
            usage = None
        mid = f"msg_sim{next(self._seq):014d}"
        message = message_body(mid, model, ans)
        if req.get("stream") is True:
            delay, chunks = stream_shape(self.config, opts)
            first, content, tail = stream_events(message, usage, chunks)
            headers = [*SSE_HEADERS, (b"request-id", mid.encode())]
            await stream(
                send,
                receive,
                first,
                content,
                tail,
                delay_ms=delay,
                headers=headers,
                cut=self.config.cut_stream_after,
            )
            return None if self.config.cut_stream_after is not None else billed
        if opts.malformed:
            await send_json(send, 200, MALFORMED)
            return billed
        if usage is not None:
            message["usage"] = usage
        await send_json(
            send, 200, orjson.dumps(message), [*JSON_HEADERS, (b"request-id", mid.encode())]
        )
        return billed

    def _cache_split(self, req: dict, opts: Options, prompt: int) -> tuple[int, int]:
        """(cache-read tokens, cache-write tokens): the headers' if any, else the breakpoint's
        prefix, written the first time it is seen and read afterwards."""
        read, write = opts.cache_read_tokens, opts.cache_write_tokens
        breakpoint_ = cache_breakpoint(req) if not (read or write) else None
        if breakpoint_ is None:
            return read, write
        prefix, digest = breakpoint_
        prefix = min(prefix, prompt)
        if prefix < MIN_CACHEABLE_TOKENS:
            return read, write  # too short to cache: upstream silently caches nothing
        if digest in self._prompt_cache:
            return prefix, write
        if len(self._prompt_cache) >= MAX_CACHED_PREFIXES:
            self._prompt_cache.clear()
        self._prompt_cache.add(digest)
        return read, prefix
