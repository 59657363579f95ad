"""Anthropic's Messages API behind the OpenAI chat format, both ways.

Requests: system messages become ``system``; text and image parts become content blocks;
assistant tool calls become ``tool_use`` blocks and ``tool`` messages ``tool_result`` blocks
(consecutive same-role turns are merged, as the API requires alternation); ``max_tokens`` is
required there, so it defaults to the model's ``max_output_tokens``; stop sequences, tools and
tool choice are translated. Fields with no Anthropic meaning are dropped (the API rejects
unknown fields). Responses and streams come back as OpenAI chat completions and chunks, with
usage in OpenAI's convention (cache reads counted inside ``prompt_tokens``).
"""

from __future__ import annotations

import time

import orjson

from gateway.errors import invalid
from gateway.pricing import Usage
from gateway.providers.base import CHAT, ParsedResponse, UpstreamRequest, UsageChunk
from gateway.records import ModelRecord

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _image_block(part: dict) -> dict:
    url = (
        (part.get("image_url") or {}).get("url", "")
        if isinstance(part.get("image_url"), dict)
        else ""
    )
    if url.startswith("data:") and ";base64," in url:
        header, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": header, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            block = {"type": "text", "text": str(part.get("text", ""))}
        elif kind == "image_url":
            block = _image_block(part)
        else:
            continue
        if isinstance(part.get("cache_control"), dict):
            # prompt caching breakpoints, written on OpenAI-format parts as LiteLLM users do
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _text(content) -> str:
    return "".join(b["text"] for b in _blocks(content) if b["type"] == "text")


def _tool_input(arguments) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _add_turn(turns: list[dict], role: str, blocks: list[dict]) -> None:
    """Append a turn, merged into the last one when the role repeats (the API wants them
    alternating)."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _assistant_blocks(message: dict) -> list[dict]:
    """An assistant message's content blocks, its tool calls as ``tool_use`` blocks."""
    blocks = _blocks(message.get("content"))
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": fn.get("name") or "",
                "input": _tool_input(fn.get("arguments")),
            }
        )
    return blocks


def _tool_result_blocks(message: dict) -> list[dict]:
    """A ``tool`` message as the ``tool_result`` block of a user turn."""
    return [
        {
            "type": "tool_result",
            "tool_use_id": message.get("tool_call_id") or "",
            "content": _text(message.get("content")),
        }
    ]


def _translate_messages(messages) -> tuple[list[dict], list[dict]]:
    """OpenAI messages as (Anthropic ``system`` blocks, alternating turns)."""
    system: list[dict] = []
    turns: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(b for b in _blocks(message.get("content")) if b["type"] == "text")
        elif role == "user":
            _add_turn(turns, "user", _blocks(message.get("content")))
        elif role == "assistant":
            _add_turn(turns, "assistant", _assistant_blocks(message))
        elif role == "tool":
            _add_turn(turns, "user", _tool_result_blocks(message))
        else:
            raise invalid("invalid_value", f"Unsupported message role {role!r}.", "messages")
    if not turns:
        raise invalid("invalid_value", "At least one user message is required.", "messages")
    return system, turns


def _copy_options(body: dict, out: dict) -> None:
    """Sampling, stop sequences, streaming and the end user: the fields with a direct match."""
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}


def _translate_tools(tools: list) -> list[dict]:
    return [
        {
            "name": (t.get("function") or {}).get("name", ""),
            "description": (t.get("function") or {}).get("description", ""),
            "input_schema": (t.get("function") or {}).get("parameters")
            or {"type": "object", "properties": {}},
        }
        for t in tools
        if isinstance(t, dict) and t.get("type", "function") == "function"
    ]


def _translate_tool_choice(body: dict) -> dict | None:
    """``tool_choice`` and ``parallel_tool_calls`` as Anthropic's ``tool_choice`` (the caller
    sends it only with tools)."""
    choice = body.get("tool_choice")
    mapped = None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        mapped = {"type": "tool", "name": choice["function"]["name"]}
    if body.get("parallel_tool_calls") is False:
        mapped = dict(mapped or {"type": "auto"}, disable_parallel_tool_use=True)
    return mapped


def translate_request(body: dict, model: ModelRecord) -> dict:
    system, turns = _translate_messages(body.get("messages", ()))
    out: dict = {
        "model": model.upstream_model,
        "messages": turns,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or model.max_output_tokens
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = system
    _copy_options(body, out)
    tools = body.get("tools")
    if tools:
        out["tools"] = _translate_tools(tools)
        mapped = _translate_tool_choice(body)
        if mapped:
            out["tool_choice"] = mapped
    return out


def _openai_usage(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output,
        "total_tokens": usage.prompt_tokens + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input},
    }


def translate_response(msg: dict) -> tuple[dict, Usage | None]:
    texts, tool_calls = [], []
    for block in msg.get("content") or ():
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = Usage.from_anthropic(msg.get("usage"))
    body = {
        "id": msg.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": STOP_REASONS.get(msg.get("stop_reason") or "", "stop"),
                "logprobs": None,
            }
        ],
    }
    if usage is not None:
        body["usage"] = _openai_usage(usage)
    return body, usage


class AnthropicAdapter:
    def build_request(
        self, *, model: ModelRecord, api: str, body: dict, stream: bool
    ) -> UpstreamRequest:
        if api != CHAT:
            raise invalid("invalid_value", f"'{model.name}' (Anthropic) has no {api} API.", "model")
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if model.provider.api_key:
            headers["x-api-key"] = model.provider.api_key
        payload = translate_request(body, model)
        return UpstreamRequest(
            url=model.provider.base_url + "/v1/messages",
            headers=headers,
            body=orjson.dumps(payload),
        )

    def parse_response(self, *, api: str, data: bytes) -> ParsedResponse:
        body, usage = translate_response(orjson.loads(data))
        return ParsedResponse(body=orjson.dumps(body), usage=usage)

    def stream_parser(self, *, api: str, model: ModelRecord) -> AnthropicStream:
        return AnthropicStream()

    def parse_error(self, *, status: int, data: bytes) -> tuple[str, str | None]:
        try:
            err = orjson.loads(data).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            err = None
        if isinstance(err, dict):
            return str(err.get("message") or f"upstream returned {status}"), err.get("type")
        return f"upstream returned HTTP {status}", None


class AnthropicStream:
    """Anthropic's event stream in, OpenAI chat.completion.chunk events out."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._raw: dict = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        self._text: list[str] = []
        self.error: dict | None = None

    def _chunk(self, delta: dict, finish: str | None = None) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _update_usage(self, usage: dict | None) -> None:
        if isinstance(usage, dict):
            self._raw.update({k: v for k, v in usage.items() if isinstance(v, int)})
            self.usage = Usage.from_anthropic(self._raw)

    def feed(self, line: bytes) -> list[bytes | UsageChunk]:
        if not line.startswith(b"data:"):
            return []
        try:
            event = orjson.loads(line[5:].strip())
        except orjson.JSONDecodeError:
            return []
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = message.get("id", "")
            self._model = message.get("model", "")
            self._update_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self._tool_index)
                self._tool_index[event.get("index", 0)] = index
                self._text.append(block.get("name", ""))
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": block.get("id", ""),
                                    "type": "function",
                                    "function": {"name": block.get("name", ""), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                self._text.append(delta.get("text", ""))
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self._tool_index.get(event.get("index", 0), 0)
                partial = delta.get("partial_json", "")
                self._text.append(partial)
                return [
                    self._chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": partial}}]}
                    )
                ]
            return []
        if kind == "message_delta":
            self._update_usage(event.get("usage"))
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                return [self._chunk({}, STOP_REASONS.get(reason, "stop"))]
            return []
        if kind == "message_stop":
            usage = self.usage or Usage()
            return [
                UsageChunk(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": _openai_usage(usage),
                    }
                )
            ]
        if kind == "error":
            self.error = event.get("error") or {}
            error = {
                "error": {
                    "message": str(self.error.get("message", "upstream stream error")),
                    "type": "api_error",
                    "param": None,
                    "code": "upstream_error",
                }
            }
            return [b"data: " + orjson.dumps(error) + b"\n\n"]
        return []

    def generated_text(self) -> str:
        return "".join(self._text)
