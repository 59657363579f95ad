"""Anthropic's Messages API: behind the OpenAI chat format (both ways), and natively.

Chat Completions → Messages (``translate_request``):

==========================================  ===============================================
Chat Completions                            Messages
==========================================  ===============================================
system / developer messages                 ``system`` text blocks
user text / image_url / file parts          text / image / base64 document blocks
                                            (``cache_control`` kept)
assistant ``tool_calls``                    ``tool_use`` blocks
``tool`` messages                           ``tool_result`` blocks of a user turn
                                            (consecutive same-role turns are merged: the
                                            API wants them alternating)
``max_completion_tokens`` / ``max_tokens``  ``max_tokens`` (required there: else the model's
                                            ``max_output_tokens``, else 4096)
``temperature``, ``top_p``, ``top_k``       the same
``stop``                                    ``stop_sequences``
function ``tools``, ``tool_choice``         ``tools`` (``input_schema``); auto / required /
                                            a named function / none → auto / any / tool /
                                            none
``parallel_tool_calls: false``              ``tool_choice.disable_parallel_tool_use``
``user`` (else ``safety_identifier``)       ``metadata.user_id``
``response_format`` ``json_schema`` /       a tool named ``json_response`` (its input schema
``json_object``                             the schema, or ``{"type": "object"}``) that the
                                            model must call (``any`` beside the client's
                                            tools, left out when the turn must call one of
                                            them); its input comes back as the message's
                                            content (a JSON string), finish_reason ``stop``,
                                            in JSON answers and streams alike
``reasoning_effort``                        ``thinking: {type: enabled, budget_tokens}``:
                                            minimal / low 1024, medium 4096, high 16384,
                                            xhigh 32768 (none: no thinking); ``max_tokens``
                                            not above the budget becomes budget + max_tokens;
                                            ``temperature``, ``top_k`` and a ``top_p`` below
                                            0.95 are left out, as Anthropic requires then
``stream``                                  ``stream``
==========================================  ===============================================

Shape only, left out: ``stream_options``, ``store``, ``service_tier``, ``prompt_cache_key``,
``prompt_cache_retention``, ``metadata``, ``prediction`` (a latency hint), ``modalities``
without audio, ``response_format: text``, ``verbosity: medium``, ``n: 1`` and the zero / empty
values of the refused fields.

Refused with a 400 naming the parameter (no Anthropic equivalent; dropping them would change
the answer): ``n`` > 1, ``logprobs``, ``top_logprobs``, ``seed``, non-zero
``frequency_penalty`` / ``presence_penalty``, ``logit_bias``, ``audio`` and audio
``modalities``, ``web_search_options``, ``verbosity`` other than medium, the legacy
``functions`` / ``function_call``, tools other than functions, audio input and files by id
(naming ``messages``), and ``reasoning_effort`` with a forced tool (``tool_choice`` required
or named, or a ``response_format`` forcing ``json_response``): Anthropic cannot think while
forced to call a tool.

Responses and streams come back as OpenAI chat completions and chunks, with usage in OpenAI's
convention (cache reads counted inside ``prompt_tokens``). An upstream 400 saying the prompt
does not fit the context window gets OpenAI's code ``context_length_exceeded``.

Native Messages (``api="messages"`` / ``"messages.count_tokens"``, see
``gateway.dialects.messages``): the body (already Anthropic's) goes as it is to
``{base_url}/v1/messages`` (``/count_tokens``); the answer passes through, its usage read;
a stream passes through an event at a time (``AnthropicNativeStream``).
"""

from __future__ import annotations

import time

import orjson

from gateway.dialects.base import event_parts
from gateway.dialects.messages import COUNT_TOKENS_API, MESSAGES_API
from gateway.errors import invalid
from gateway.pricing import Usage
from gateway.providers.base import CHAT, ParsedResponse, UpstreamRequest, UsageChunk
from gateway.records import ModelRecord

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
JSON_TOOL = "json_response"  # the forced tool that carries a response_format's answer
MIN_THINKING_BUDGET = 1024  # Anthropic's smallest budget_tokens
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
MAX_TOP_P_WITH_THINKING = 0.95  # thinking admits top_p from here to 1 only
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_PATHS = {
    CHAT: "/v1/messages",
    MESSAGES_API: "/v1/messages",
    COUNT_TOKENS_API: "/v1/messages/count_tokens",
}
# how Anthropic says a prompt does not fit ("prompt is too long: 210000 tokens > 200000
# maximum", "input length and `max_tokens` exceed context limit: …")
_CONTEXT_MARKERS = ("prompt is too long", "exceeds the context window", "exceed context limit")


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


def _document_block(part: dict) -> dict:
    """A ``file`` part (its ``file_data`` a data URL) as a base64 ``document`` block; files by
    id live at OpenAI, Anthropic cannot read them."""
    file = part.get("file") if isinstance(part.get("file"), dict) else {}
    data = file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:") or ";base64," not in data:
        raise invalid(
            "unsupported_parameter",
            "Anthropic models take files as inline 'file_data' only, not by 'file_id'.",
            "messages",
        )
    media_type, encoded = data[5:].split(";base64,", 1)
    source = {"type": "base64", "media_type": media_type, "data": encoded}
    return {"type": "document", "source": source}


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
        elif kind == "file":
            block = _document_block(part)
        elif kind == "input_audio":
            raise invalid(
                "unsupported_parameter", "Anthropic models take no audio input.", "messages"
            )
        else:
            continue  # refusal parts of an assistant's history
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
    for name in ("user", "safety_identifier"):
        if isinstance(body.get(name), str) and body[name]:
            out["metadata"] = {"user_id": body[name]}
            break


def _refused(body: dict) -> str | None:
    """The first parameter of ``body`` Anthropic cannot honour (see the module docstring)."""
    modalities = body.get("modalities")
    tools = body.get("tools") if isinstance(body.get("tools"), list) else ()
    checks = (
        ("n", body.get("n") not in (None, 1)),
        ("logprobs", body.get("logprobs") not in (None, False)),
        ("top_logprobs", body.get("top_logprobs") not in (None, 0)),
        ("seed", body.get("seed") is not None),
        ("frequency_penalty", body.get("frequency_penalty") not in (None, 0)),
        ("presence_penalty", body.get("presence_penalty") not in (None, 0)),
        ("logit_bias", bool(body.get("logit_bias"))),
        ("audio", body.get("audio") is not None),
        ("modalities", isinstance(modalities, list) and "audio" in modalities),
        ("web_search_options", body.get("web_search_options") is not None),
        ("verbosity", body.get("verbosity") not in (None, "medium")),
        ("functions", bool(body.get("functions"))),
        ("function_call", body.get("function_call") not in (None, "none", "auto")),
        (
            "tools",
            any(not isinstance(t, dict) or t.get("type", "function") != "function" for t in tools),
        ),
    )
    return next((name for name, refused in checks if refused), None)


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


def _json_tool(response_format) -> dict | None:
    """The ``json_response`` tool of a JSON ``response_format`` (None for text or none)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        name, description, schema = None, None, {"type": "object"}
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        spec = spec if isinstance(spec, dict) else {}
        name, description = spec.get("name"), spec.get("description")
        schema = spec.get("schema") if isinstance(spec.get("schema"), dict) else {"type": "object"}
    else:
        raise invalid(
            "invalid_value",
            "Invalid value for 'response_format.type': expected text, json_object or json_schema.",
            "response_format.type",
        )
    text = "Give your answer as this tool's input: a JSON object matching its schema"
    if isinstance(name, str) and name:
        text += f" (the '{name}' format)"
    if isinstance(description, str) and description:
        text += f". {description}"
    return {"name": JSON_TOOL, "description": text + ".", "input_schema": schema}


def _json_mode(body: dict, out: dict) -> None:
    """A JSON ``response_format`` as the forced ``json_response`` tool (module docstring)."""
    tool = _json_tool(body.get("response_format"))
    if tool is None:
        return
    choice = out.get("tool_choice") or {}
    if choice.get("type") in ("any", "tool"):
        return  # this turn must call one of the client's tools: there is no answer to shape
    tools = out.setdefault("tools", [])
    if any(t.get("name") == JSON_TOOL for t in tools):
        raise invalid(
            "invalid_value",
            f"The tool name '{JSON_TOOL}' is reserved with a JSON response_format on "
            "Anthropic models.",
            "tools",
        )
    forced = (
        {"type": "any"}
        if tools and choice.get("type", "auto") == "auto"
        else {"type": "tool", "name": JSON_TOOL}
    )
    if choice.get("disable_parallel_tool_use"):
        forced["disable_parallel_tool_use"] = True
    tools.append(tool)
    out["tool_choice"] = forced


def _thinking(body: dict, out: dict) -> None:
    """``reasoning_effort`` as extended thinking (module docstring)."""
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise invalid(
            "invalid_value",
            "Invalid value for 'reasoning_effort': expected none, minimal, low, medium, high "
            "or xhigh.",
            "reasoning_effort",
        )
    if (out.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise invalid(
            "unsupported_parameter",
            "'reasoning_effort' cannot be combined with a forced tool (tool_choice required or "
            "a named function, or a JSON response_format) on Anthropic models.",
            "reasoning_effort",
        )
    if out["max_tokens"] <= budget:
        # thinking counts toward max_tokens, which must exceed it; max_tokens is what the
        # budget reservation assumed, so the thinking budget shrinks rather than the cap grows
        budget = out["max_tokens"] - 1
        if budget < MIN_THINKING_BUDGET:
            raise invalid(
                "invalid_value",
                f"'reasoning_effort' on Anthropic models needs a max_tokens above "
                f"{MIN_THINKING_BUDGET} (extended thinking's minimum budget).",
                "max_tokens",
            )
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    out.pop("temperature", None)
    out.pop("top_k", None)
    top_p = out.get("top_p")
    if isinstance(top_p, int | float) and top_p < MAX_TOP_P_WITH_THINKING:
        del out["top_p"]


def translate_request(body: dict, model: ModelRecord) -> dict:
    refused = _refused(body)
    if refused:
        raise invalid(
            "unsupported_parameter",
            f"'{refused}' is not supported by '{model.name}': Anthropic's Messages API has "
            "no equivalent.",
            refused,
        )
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
    _json_mode(body, out)
    _thinking(body, out)
    return out


def _openai_usage(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output,
        "total_tokens": usage.prompt_tokens + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input},
    }


def _tool_call(block: dict) -> dict:
    return {
        "id": block.get("id", ""),
        "type": "function",
        "function": {
            "name": block.get("name", ""),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }


def translate_response(msg: dict) -> tuple[dict, Usage | None]:
    texts, tool_calls, answers = [], [], []
    for block in msg.get("content") or ():
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use" and block.get("name") == JSON_TOOL:
            answers.append(orjson.dumps(block.get("input") or {}).decode())
        elif block.get("type") == "tool_use":
            tool_calls.append(_tool_call(block))
    if answers:
        texts = answers  # the JSON is the answer (any preamble would break it)
    message: dict = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    finish = STOP_REASONS.get(msg.get("stop_reason") or "", "stop")
    if answers and not tool_calls and finish == "tool_calls":
        finish = "stop"
    usage = Usage.from_anthropic(msg.get("usage"))
    body = {
        "id": msg.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
    }
    if usage is not None:
        body["usage"] = _openai_usage(usage)
    return body, usage


def _context_error(status: int, message: str) -> bool:
    lowered = message.lower()
    return status == 400 and any(marker in lowered for marker in _CONTEXT_MARKERS)


class AnthropicAdapter:
    def build_request(
        self, *, model: ModelRecord, api: str, body: dict, stream: bool
    ) -> UpstreamRequest:
        path = _PATHS.get(api)
        if path is None:
            raise invalid("invalid_value", f"'{model.name}' (Anthropic) has no {api} API.", "model")
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if model.provider.api_key:
            headers["x-api-key"] = model.provider.api_key
        # native calls are Anthropic's format already (the proxy has set the upstream model)
        payload = translate_request(body, model) if api == CHAT else body
        return UpstreamRequest(
            url=model.provider.base_url.rstrip("/") + path,
            headers=headers,
            body=orjson.dumps(payload),
        )

    def parse_response(self, *, api: str, data: bytes) -> ParsedResponse:
        if api == COUNT_TOKENS_API:
            return ParsedResponse(body=data, usage=None)
        if api == MESSAGES_API:
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                obj = None
            usage = Usage.from_anthropic(obj.get("usage")) if isinstance(obj, dict) else None
            return ParsedResponse(body=data, usage=usage)
        body, usage = translate_response(orjson.loads(data))
        return ParsedResponse(body=orjson.dumps(body), usage=usage)

    def stream_parser(
        self, *, api: str, model: ModelRecord
    ) -> AnthropicStream | AnthropicNativeStream:
        return AnthropicNativeStream() if api == MESSAGES_API else AnthropicStream()

    def parse_error(self, *, status: int, data: bytes) -> tuple[str, str | None]:
        try:
            err = orjson.loads(data).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            err = None
        if isinstance(err, dict):
            message = str(err.get("message") or f"upstream returned {status}")
            if _context_error(status, message):
                return message, "context_length_exceeded"
            return message, err.get("type")
        return f"upstream returned HTTP {status}", None


def _merged_usage(raw: dict, usage) -> Usage | None:
    """``raw`` (the counts seen so far) updated with an event's ``usage``, as ``Usage``: the
    counts of ``message_delta`` are cumulative, so later ones replace earlier ones."""
    if isinstance(usage, dict):
        raw.update({k: v for k, v in usage.items() if isinstance(v, int)})
    return Usage.from_anthropic(raw) if raw else None


class AnthropicStream:
    """Anthropic's event stream in, OpenAI chat.completion.chunk events out. The blocks of the
    ``json_response`` tool (a JSON ``response_format``) come out as content deltas."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._raw: dict = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        self._json_blocks: set[int] = set()  # content block indexes of the json_response tool
        self._text: list[str] = []
        self.error: dict | None = None
        self._handlers = {
            "message_start": self._on_message_start,
            "content_block_start": self._on_block_start,
            "content_block_delta": self._on_block_delta,
            "message_delta": self._on_message_delta,
            "message_stop": self._on_message_stop,
            "error": self._on_error,
        }

    def _chunk(self, delta: dict, finish: str | None = None) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def feed(self, line: bytes) -> list[bytes | UsageChunk]:
        if not line.startswith(b"data:"):
            return []
        try:
            event = orjson.loads(line[5:].strip())
        except orjson.JSONDecodeError:
            return []
        handler = self._handlers.get(event.get("type")) if isinstance(event, dict) else None
        return handler(event) if handler else []

    def _on_message_start(self, event: dict) -> list[bytes | UsageChunk]:
        message = event.get("message") or {}
        self._id = message.get("id", "")
        self._model = message.get("model", "")
        self.usage = _merged_usage(self._raw, message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_block_start(self, event: dict) -> list[bytes | UsageChunk]:
        block = event.get("content_block") or {}
        if block.get("type") != "tool_use":
            return []
        if block.get("name") == JSON_TOOL:
            self._json_blocks.add(event.get("index", 0))
            return []
        index = len(self._tool_index)
        self._tool_index[event.get("index", 0)] = index
        self._text.append(block.get("name", ""))
        call = {
            "index": index,
            "id": block.get("id", ""),
            "type": "function",
            "function": {"name": block.get("name", ""), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _on_block_delta(self, event: dict) -> list[bytes | UsageChunk]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            self._text.append(delta.get("text", ""))
            return [self._chunk({"content": delta.get("text", "")})]
        if delta.get("type") != "input_json_delta":
            return []
        partial = delta.get("partial_json", "")
        self._text.append(partial)
        if event.get("index", 0) in self._json_blocks:
            return [self._chunk({"content": partial})] if partial else []
        index = self._tool_index.get(event.get("index", 0), 0)
        return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": partial}}]})]

    def _on_message_delta(self, event: dict) -> list[bytes | UsageChunk]:
        self.usage = _merged_usage(self._raw, event.get("usage"))
        reason = (event.get("delta") or {}).get("stop_reason")
        if not reason:
            return []
        finish = STOP_REASONS.get(reason, "stop")
        if finish == "tool_calls" and self._json_blocks and not self._tool_index:
            finish = "stop"  # the only tool called was json_response: the answer is done
        return [self._chunk({}, finish)]

    def _on_message_stop(self, event: dict) -> list[bytes | UsageChunk]:
        usage = self.usage or Usage()
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": _openai_usage(usage),
        }
        return [UsageChunk(chunk)]

    def _on_error(self, event: dict) -> list[bytes | UsageChunk]:
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

    def generated_text(self) -> str:
        return "".join(self._text)


class AnthropicNativeStream:
    """Anthropic's event stream passed through as it is, one whole event at a time (the lines
    up to the blank line, as ``event: …\\ndata: …\\n\\n``): the client speaks Anthropic's
    format. Usage is read from ``message_start`` (input, cache reads and writes) and
    ``message_delta`` (output, and input counts when present); ``error`` is set by an error
    event."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.error: dict | None = None
        self._raw: dict = {}
        self._lines: list[bytes] = []
        self._text: list[str] = []

    def feed(self, line: bytes) -> list[bytes | UsageChunk]:
        line = line.rstrip(b"\r\n")
        if line:
            if not line.startswith(b":"):  # an SSE comment carries nothing
                self._lines.append(line)
            return []
        return list(self.flush())

    def flush(self) -> list[bytes]:
        """The event still buffered (a stream that ended without its blank line), if any."""
        if not self._lines:
            return []
        event = b"\n".join(self._lines) + b"\n\n"
        self._lines = []
        self._observe(event)
        return [event]

    def _observe(self, event: bytes) -> None:
        kind, data = event_parts(event)
        try:
            obj = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            obj = None
        obj = obj if isinstance(obj, dict) else {}
        kind = obj.get("type") or kind
        if kind == "error":
            error = obj.get("error")
            self.error = error if isinstance(error, dict) and error else {"type": "api_error"}
        elif kind == "message_start":
            message = obj.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self.usage = _merged_usage(self._raw, usage)
        elif kind == "message_delta":
            self.usage = _merged_usage(self._raw, obj.get("usage"))
        elif kind == "content_block_delta":
            delta = obj.get("delta") if isinstance(obj.get("delta"), dict) else {}
            piece = delta.get("partial_json") if delta.get("type") == "input_json_delta" else None
            if delta.get("type") == "text_delta":
                piece = delta.get("text")
            if isinstance(piece, str):
                self._text.append(piece)

    def generated_text(self) -> str:
        """The text and tool-input deltas so far."""
        return "".join(self._text)
