"""Anthropic Messages (``POST /v1/messages``): validation, usage split into input, cache-read and
cache-write tokens (``x-sim-cache-*`` headers, or ``cache_control`` breakpoints remembered per
process), forced tool use, the JSON answer and the named-event SSE stream."""

from __future__ import annotations

import hashlib

import orjson

from simulator.config import Options, SimConfig, stream_shape
from simulator.tokens import (
    chat_prompt_tokens,
    completion_tokens,
    generated_text,
    pieces,
    text_tokens,
)
from simulator.wire import (
    JSON_HEADERS,
    MALFORMED,
    SSE_HEADERS,
    SimError,
    event,
    json_object,
    send_json,
    stream,
)

MAX_CACHED_PREFIXES = 1024


def cache_breakpoint(req: dict) -> tuple[int, bytes] | None:
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


def forced_tool(req: dict) -> dict | None:
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


def _counts(req: dict, opts: Options, max_tokens: int, messages: list) -> tuple[int, int, bool]:
    """(prompt tokens, completion tokens, whether max_tokens cut the answer short)."""
    completion, cut = completion_tokens(max_tokens)
    if opts.completion_tokens is not None:
        completion, cut = opts.completion_tokens, False
    if opts.prompt_tokens is not None:
        prompt = opts.prompt_tokens
    else:
        prompt = chat_prompt_tokens(messages, req.get("tools"), req.get("system"))
    return prompt, completion, cut


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


def _message(mid: str, model: str, completion: int, cut: bool, tool: dict | None) -> dict:
    message = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": generated_text(completion)}],
        "stop_reason": "max_tokens" if cut else "end_turn",
        "stop_sequence": None,
    }
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
    return message


# --- streams ---------------------------------------------------------------------------------


def _block_start(block: dict) -> bytes:
    return event(
        b"content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": block},
    )


def _block_delta(delta: dict) -> bytes:
    return event(
        b"content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    )


def _tail(delta: dict) -> bytes:
    """content_block_stop, message_delta (``delta``), message_stop."""
    return b"".join(
        (
            event(b"content_block_stop", {"type": "content_block_stop", "index": 0}),
            event(b"message_delta", delta),
            event(b"message_stop", {"type": "message_stop"}),
        )
    )


def text_stream_events(
    start: dict, message: dict, parts, usage: dict | None
) -> tuple[bytes, list[bytes], bytes]:
    """(message_start + text block start + ping, one text_delta per piece, the tail)."""
    first = b"".join(
        (
            event(b"message_start", {"type": "message_start", "message": start}),
            _block_start({"type": "text", "text": ""}),
            event(b"ping", {"type": "ping"}),
        )
    )
    content = [_block_delta({"type": "text_delta", "text": piece}) for piece in parts]
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
    return first, content, _tail(delta)


def tool_use_stream_events(
    start: dict, block: dict, usage: dict | None
) -> tuple[bytes, list[bytes], bytes]:
    """(message_start + tool_use block start, the input JSON in two halves, the tail)."""
    arguments = orjson.dumps(block["input"]).decode()
    half = len(arguments) // 2
    first = b"".join(
        (
            event(b"message_start", {"type": "message_start", "message": start}),
            _block_start(dict(block, input={})),
        )
    )
    content = [
        _block_delta({"type": "input_json_delta", "partial_json": part})
        for part in (arguments[:half], arguments[half:])
    ]
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
    }
    if usage is not None:
        delta["usage"] = {"output_tokens": usage["output_tokens"]}
    return first, content, _tail(delta)


class AnthropicMessages:
    """The Messages endpoint, with the ``cache_control`` prefixes seen so far (a bounded set,
    cleared when full)."""

    def __init__(self, config: SimConfig, seq) -> None:
        self.config = config
        self._seq = seq  # shared with the other endpoints: ids are unique per process
        self._prompt_cache: set[bytes] = set()

    async def handle(self, body: bytes, opts: Options, deployment, receive, send) -> None:
        req = json_object(body)
        model, max_tokens, messages = _required(req)
        prompt, completion, cut = _counts(req, opts, max_tokens, messages)
        read, write = self._cache_split(req, opts, prompt)
        usage = None if opts.no_usage else _usage(prompt, completion, read, write)
        mid = f"msg_sim{next(self._seq):014d}"
        message = _message(mid, model, completion, cut, forced_tool(req))
        if req.get("stream") is True:
            await self._stream(send, receive, opts, message, completion=completion, usage=usage)
            return
        if opts.malformed:
            await send_json(send, 200, MALFORMED)
            return
        if usage is not None:
            message["usage"] = usage
        await send_json(
            send, 200, orjson.dumps(message), [*JSON_HEADERS, (b"request-id", mid.encode())]
        )

    def _cache_split(self, req: dict, opts: Options, prompt: int) -> tuple[int, int]:
        """(cache-read tokens, cache-write tokens): the headers' if any, else the breakpoint's
        prefix, written the first time it is seen and read afterwards."""
        read, write = opts.cache_read_tokens, opts.cache_write_tokens
        breakpoint_ = cache_breakpoint(req) if not (read or write) else None
        if breakpoint_ is None:
            return read, write
        prefix, digest = breakpoint_
        prefix = min(prefix, prompt)
        if digest in self._prompt_cache:
            return prefix, write
        if len(self._prompt_cache) >= MAX_CACHED_PREFIXES:
            self._prompt_cache.clear()
        self._prompt_cache.add(digest)
        return read, prefix

    async def _stream(self, send, receive, opts, message, *, completion, usage) -> None:
        delay, chunks = stream_shape(self.config, opts)
        start = dict(message, content=[], stop_reason=None, stop_sequence=None)
        if usage is not None:
            start["usage"] = dict(usage, output_tokens=min(1, completion))
        block = message["content"][0]
        if block["type"] == "tool_use":
            first, content, tail = tool_use_stream_events(start, block, usage)
        else:
            first, content, tail = text_stream_events(
                start, message, pieces(completion, chunks), usage
            )
        headers = [*SSE_HEADERS, (b"request-id", message["id"].encode())]
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
