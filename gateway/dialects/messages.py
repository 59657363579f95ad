"""Anthropic's Messages API (``POST /v1/messages``, ``/v1/messages/count_tokens``) over the
canonical Chat Completions body.

Requests (``messages_to_chat``):

=========================================  =================================================
Messages                                   Chat Completions
=========================================  =================================================
``model``, ``max_tokens``, ``temperature``  the same
and ``top_p``
``system`` (a string or text blocks)       a leading system message (blocks become text
                                           parts, ``cache_control`` kept on them)
``messages`` of role user / assistant      messages of the same role; a ``system`` turn (the
(/ system)                                 SDK allows one) a system message
``text`` blocks                            text parts (``cache_control`` kept)
``image`` blocks                           ``image_url`` parts: base64 → data URL, url → url
``document`` blocks                        base64 PDF → ``file`` part (``file_data``), plain
                                           text → a text part, ``content`` source → its parts
``tool_use`` blocks                        the assistant's ``tool_calls`` (input as JSON)
``tool_result`` blocks                     one ``tool`` message each, ahead of the turn's
                                           other content (Chat wants them right after the
                                           call); ``is_error`` prefixes the text ``Error: ``
``thinking`` / ``redacted_thinking``       dropped: they only shape the exchange
custom ``tools`` (``input_schema``)        function tools (``parameters``, ``strict`` kept)
``tool_choice`` auto / any / tool / none   ``auto`` / ``required`` / the named function /
                                           ``none`` (only with tools, as Chat requires)
``disable_parallel_tool_use``              ``parallel_tool_calls: false``
``stop_sequences``                         ``stop``
``metadata``                               ``user_id`` → ``user``; the other string values
                                           → ``metadata`` (the gateway's attribution keys)
``stream``                                 ``stream`` and ``stream_options.include_usage``
``thinking: enabled, budget_tokens``       ``reasoning_effort``: below 4096 ``low``, below
                                           16384 ``medium``, else ``high`` (the Anthropic
                                           adapter maps them back to 1024 / 4096 / 16384)
``output_config.effort`` low/medium/high   ``reasoning_effort`` (it wins over ``thinking``)
``output_config.format`` (or the older     ``response_format`` ``json_schema`` (strict)
``output_format``) ``json_schema``
=========================================  =================================================

Shape only, left out: ``thinking`` ``disabled`` / ``adaptive`` (the model's own default),
``thinking.display``, top-level ``cache_control`` (automatic caching), ``service_tier: auto``,
``speed``, ``diagnostics``, ``user_profile_id``, ``workspace_id``, citations on text blocks
of the history, tool ``cache_control`` / ``allowed_callers`` / ``eager_input_streaming``.

Unsupported, returned by name (a path such as ``messages[2].content[0]``) for the caller to
refuse, or to send to a native deployment: ``top_k``, ``service_tier`` other than ``auto``,
``container``, ``mcp_servers``, ``inference_geo``, ``context_management``, server tools (any
tool ``type`` but ``custom``) and a tool's ``input_examples`` / ``defer_loading``, images and
documents by file id, documents by URL, ``citations`` on a document, images and documents
inside a tool result, the blocks of server tools and search results, ``output_config.effort``
above ``high``, and an assistant turn last in the list (a prefill: Chat Completions answers
after it instead of continuing it).

Answers: ``chat_to_messages`` for a JSON chat completion, ``ChatToMessagesStream`` for a
stream (the event sequence Anthropic sends). A native (Anthropic) deployment's answer only has
its ``model`` rewritten (``native_json``, ``NativeMessagesStream``). Errors take Anthropic's
shape (``anthropic_error``). ``count_tokens_local`` counts a request's input tokens the way the
budget estimate does, for ``count_tokens`` on a deployment that is not Anthropic.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import orjson

from gateway import billable
from gateway.dialects.base import event_parts, rename_model
from gateway.errors import invalid
from gateway.pricing import Usage
from gateway.records import ModelRecord, ProviderRecord
from gateway.tokens import count_text

log = logging.getLogger(__name__)

MESSAGES_API = "messages"
COUNT_TOKENS_API = "messages.count_tokens"

LOW_BELOW = 4096  # thinking budgets below this are reasoning_effort "low"
MEDIUM_BELOW = 16384  # ... below this "medium", from it "high"

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_BLOCK_TYPES = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)
# Anthropic blocks Chat Completions has no way to carry (server tools, search results, files)
_UNSUPPORTED_BLOCKS = frozenset(
    ("search_result", "server_tool_use", "container_upload", "tool_reference")
    + ("mcp_tool_use", "mcp_tool_result", "web_search_tool_result", "web_fetch_tool_result")
    + ("code_execution_tool_result", "bash_code_execution_tool_result")
    + ("text_editor_code_execution_tool_result", "tool_search_tool_result")
)
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _unsupported_block(kind: str) -> bool:
    """A block Chat Completions cannot carry: a known one, or one newer than this module (a
    native Anthropic deployment still gets it as sent; a translation refuses it by name)."""
    return kind in _UNSUPPORTED_BLOCKS or kind not in _BLOCK_TYPES


_EFFORTS = frozenset({"low", "medium", "high"})
_STOP_REASONS = {
    "stop": "end_turn",  # a stop sequence cannot be told apart from a natural end
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ERROR_MESSAGES = {
    "upstream_timeout": "The upstream timed out before the message was complete.",
    "upstream_error": "The connection to the upstream failed before the message was complete.",
    "upstream_stream_error": "The upstream stream ended with an error.",
}


# --- requests ------------------------------------------------------------------------------


def messages_to_chat(body: dict) -> tuple[dict, list[str]]:
    """The canonical Chat Completions body of a Messages request, and the parameters (as
    paths such as ``tools[1]``) that Chat Completions cannot express."""
    translation = _Translation(body, count_only=False)
    return translation.chat, list(dict.fromkeys(translation.unsupported))


def effort_for_budget(budget: int) -> str:
    """The ``reasoning_effort`` of a thinking budget (see the module's table)."""
    if budget < LOW_BELOW:
        return "low"
    return "medium" if budget < MEDIUM_BELOW else "high"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_error(path: str, what: str):
    return invalid("invalid_type", f"'{path}' must be {what}.", path)


def _value_error(path: str, message: str):
    return invalid("invalid_value", f"Invalid value for '{path}': {message}", path)


def _with_cache_control(part: dict, block: dict) -> dict:
    if isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]
    return part


def _blocks(content, path: str) -> list[dict]:
    """A message's content as blocks: a string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _type_error(path, "a string or an array of content blocks")
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            raise _type_error(f"{path}[{i}]", "an object")
        kind = block.get("type")
        if not isinstance(kind, str) or not kind:
            raise _value_error(f"{path}[{i}].type", f"{kind!r} is not a content block type.")
    return content


def _text(block: dict, path: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _type_error(f"{path}.text", "a string")
    return text


def _missing(path: str):
    return invalid("missing_required_parameter", f"Missing required parameter: '{path}'.", path)


def _required_str(block: dict, name: str, path: str) -> str:
    value = block.get(name)
    if not isinstance(value, str) or not value:
        raise _missing(f"{path}.{name}")
    return value


def _text_part(block: dict, path: str) -> dict:
    return _with_cache_control({"type": "text", "text": _text(block, path)}, block)


class _Translation:
    """One request's translation: ``chat``, the ``unsupported`` paths and what was ``dropped``
    for them (counted as JSON text by ``count_tokens_local``)."""

    def __init__(self, body, *, count_only: bool) -> None:
        if not isinstance(body, dict):
            raise invalid("invalid_type", "The request body must be a JSON object.")
        self.unsupported: list[str] = []
        self.dropped: list = []
        chat: dict = {"model": body["model"]} if "model" in body else {}
        messages = self._system(body.get("system"), "system")
        messages.extend(self._messages(body.get("messages")))
        chat["messages"] = messages
        self.chat = chat
        self._max_tokens(body.get("max_tokens"), required=not count_only)
        self._sampling(body)
        self._tools(body)
        self._thinking(body.get("thinking"))
        self._output_config(body)
        self._metadata(body.get("metadata"))
        self._options(body)
        if body.get("stream") is True:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}

    def _flag(self, path: str, item=None) -> None:
        self.unsupported.append(path)
        if item is not None:
            self.dropped.append(item)

    # --- messages --------------------------------------------------------------------------

    def _system(self, system, path: str) -> list[dict]:
        if system is None:
            return []
        if isinstance(system, str):
            return [{"role": "system", "content": system}] if system else []
        if not isinstance(system, list):
            raise _type_error(path, "a string or an array of text blocks")
        parts = []
        for i, block in enumerate(system):
            where = f"{path}[{i}]"
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _value_error(where, "a system prompt takes text blocks only.")
            parts.append(_text_part(block, where))
        return [{"role": "system", "content": parts}] if parts else []

    def _messages(self, messages) -> list[dict]:
        if messages is None:
            raise _missing("messages")
        if not isinstance(messages, list) or not messages:
            raise _type_error("messages", "a non-empty array of messages")
        out: list[dict] = []
        for i, message in enumerate(messages):
            path = f"messages[{i}]"
            if not isinstance(message, dict):
                raise _type_error(path, "an object")
            role, content = message.get("role"), message.get("content")
            if role == "user":
                out.extend(self._user(content, f"{path}.content"))
            elif role == "assistant":
                out.append(self._assistant(content, f"{path}.content"))
            elif role == "system":
                out.extend(self._system(content, f"{path}.content"))
            else:
                raise _value_error(f"{path}.role", "expected user or assistant.")
        last = messages[-1]
        if last.get("role") == "assistant" and out[-1].get("content"):
            self._flag(f"messages[{len(messages) - 1}]")  # a prefill, see the module docstring
        return out

    def _user(self, content, path: str) -> list[dict]:
        if isinstance(content, str):
            return [{"role": "user", "content": content}]
        tool_messages: list[dict] = []
        parts: list[dict] = []
        for i, block in enumerate(_blocks(content, path)):
            where, kind = f"{path}[{i}]", block["type"]
            if kind == "tool_result":
                tool_messages.append(self._tool_result(block, where))
            elif kind in ("thinking", "redacted_thinking"):
                continue
            elif kind == "tool_use":
                raise _value_error(f"{where}.type", "tool_use blocks belong to assistant turns.")
            else:
                parts.extend(self._part(block, where))
        if parts or not tool_messages:
            tool_messages.append({"role": "user", "content": parts})
        return tool_messages

    def _part(self, block: dict, path: str) -> list[dict]:
        """A user block (text, image, document) as chat content parts."""
        kind = block["type"]
        if kind == "text":
            return [_text_part(block, path)]
        if kind == "image":
            image = self._image(block, path)
            return [_with_cache_control(image, block)] if image else []
        if kind == "document":
            return [_with_cache_control(p, block) for p in self._document(block, path)]
        self._flag(path, block)  # the blocks of server tools and search results
        return []

    def _image(self, block: dict, path: str) -> dict | None:
        source = block.get("source")
        kind = source.get("type") if isinstance(source, dict) else None
        if kind == "base64":
            media = _required_str(source, "media_type", f"{path}.source")
            data = _required_str(source, "data", f"{path}.source")
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
        if kind == "url":
            url = _required_str(source, "url", f"{path}.source")
            return {"type": "image_url", "image_url": {"url": url}}
        if kind == "file":
            self._flag(f"{path}.source", block)
            return None
        raise _value_error(f"{path}.source", "expected a base64, url or file image source.")

    def _document(self, block: dict, path: str) -> list[dict]:
        source = block.get("source")
        kind = source.get("type") if isinstance(source, dict) else None
        if isinstance(block.get("citations"), dict) and block["citations"].get("enabled"):
            self._flag(f"{path}.citations")
        if kind == "base64":
            media = _required_str(source, "media_type", f"{path}.source")
            data = _required_str(source, "data", f"{path}.source")
            file = {"file_data": f"data:{media};base64,{data}"}
            file["filename"] = block.get("title") or "document.pdf"
            return [{"type": "file", "file": file}]
        if kind == "text":
            return [{"type": "text", "text": _required_str(source, "data", f"{path}.source")}]
        if kind == "content":
            inner = source.get("content")
            if isinstance(inner, str):
                return [{"type": "text", "text": inner}]
            parts: list[dict] = []
            for i, item in enumerate(_blocks(inner, f"{path}.source.content")):
                parts.extend(self._part(item, f"{path}.source.content[{i}]"))
            return parts
        if kind in ("url", "file"):
            self._flag(f"{path}.source", block)
            return []
        raise _value_error(
            f"{path}.source", "expected a base64, text, content, url or file source."
        )

    def _tool_result(self, block: dict, path: str) -> dict:
        tool_use_id = _required_str(block, "tool_use_id", path)
        content = block.get("content")
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for i, item in enumerate(content):
                where = f"{path}.content[{i}]"
                if not isinstance(item, dict):
                    raise _type_error(where, "an object")
                if item.get("type") == "text":
                    texts.append(_text(item, where))
                else:  # images, documents, search results: Chat's tool messages take text only
                    self._flag(where, item)
        elif content is not None:
            raise _type_error(f"{path}.content", "a string or an array of content blocks")
        text = "\n".join(texts)
        if block.get("is_error") is True:
            text = f"Error: {text}"
        return {"role": "tool", "tool_call_id": tool_use_id, "content": text}

    def _assistant(self, content, path: str) -> dict:
        if isinstance(content, str):
            return {"role": "assistant", "content": content}
        parts: list[dict] = []
        calls: list[dict] = []
        for i, block in enumerate(_blocks(content, path)):
            where, kind = f"{path}[{i}]", block["type"]
            if kind == "text":
                parts.append(_text_part(block, where))
            elif kind == "tool_use":
                calls.append(_tool_call(block, where))
            elif _unsupported_block(kind):
                self._flag(where, block)
            elif kind not in ("thinking", "redacted_thinking"):
                raise _value_error(f"{where}.type", f"{kind} blocks belong to user turns.")
        message: dict = {"role": "assistant"}
        if any("cache_control" in p for p in parts):
            message["content"] = parts
        else:
            message["content"] = "".join(p["text"] for p in parts) or (None if calls else "")
        if calls:
            message["tool_calls"] = calls
        return message

    # --- options ---------------------------------------------------------------------------

    def _max_tokens(self, value, *, required: bool) -> None:
        if value is None and not required:
            return
        if value is None:
            raise _missing("max_tokens")
        if not _is_int(value) or value < 1:
            raise _type_error("max_tokens", "a positive integer")
        self.chat["max_tokens"] = value

    def _sampling(self, body: dict) -> None:
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                self.chat[name] = body[name]
        stop = body.get("stop_sequences")
        if stop is not None:
            if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
                raise _type_error("stop_sequences", "an array of strings")
            if stop:
                self.chat["stop"] = list(stop)

    def _tools(self, body: dict) -> None:
        tools = body.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise _type_error("tools", "an array of tools")
        functions = []
        for i, tool in enumerate(tools or ()):
            path = f"tools[{i}]"
            if not isinstance(tool, dict):
                raise _type_error(path, "an object")
            if tool.get("type") not in (None, "custom"):
                self._flag(path, tool)  # a server tool: Anthropic runs it, nobody else can
                continue
            functions.append(self._function(tool, path))
        if functions:
            self.chat["tools"] = functions
        self._tool_choice(body.get("tool_choice"), bool(functions))

    def _function(self, tool: dict, path: str) -> dict:
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _type_error(f"{path}.input_schema", "a JSON schema object")
        function: dict = {"name": _required_str(tool, "name", path), "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        for name in ("input_examples", "defer_loading"):
            if tool.get(name):
                self._flag(f"{path}.{name}", {name: tool[name]})
        return {"type": "function", "function": function}

    def _tool_choice(self, choice, has_tools: bool) -> None:
        if choice is None:
            return
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in _TOOL_CHOICES and kind != "tool":
            raise _value_error("tool_choice", "expected auto, any, tool or none.")
        if not has_tools:
            return  # Chat takes tool_choice only with tools
        if kind == "tool":
            name = _required_str(choice, "name", "tool_choice")
            self.chat["tool_choice"] = {"type": "function", "function": {"name": name}}
        else:
            self.chat["tool_choice"] = _TOOL_CHOICES[kind]
        if choice.get("disable_parallel_tool_use") is True:
            self.chat["parallel_tool_calls"] = False

    def _thinking(self, thinking) -> None:
        if thinking is None:
            return
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind in ("disabled", "adaptive"):
            return
        if kind != "enabled":
            raise _value_error("thinking.type", "expected enabled, disabled or adaptive.")
        budget = thinking.get("budget_tokens")
        if not _is_int(budget) or budget < 1:
            raise _type_error("thinking.budget_tokens", "a positive integer")
        self.chat["reasoning_effort"] = effort_for_budget(budget)

    def _output_config(self, body: dict) -> None:
        config = body.get("output_config")
        if config is not None and not isinstance(config, dict):
            raise _type_error("output_config", "an object")
        config = config or {}
        effort = config.get("effort")
        if effort in _EFFORTS:
            self.chat["reasoning_effort"] = effort
        elif effort is not None:
            self._flag("output_config.effort")
        path, fmt = "output_config.format", config.get("format")
        if fmt is None:
            path, fmt = "output_format", body.get("output_format")
        if fmt is None:
            return
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise _value_error(f"{path}.type", "expected json_schema.")
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise _type_error(f"{path}.schema", "a JSON schema object")
        self.chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "json_response", "schema": schema, "strict": True},
        }

    def _metadata(self, metadata) -> None:
        if metadata is None:
            return
        if not isinstance(metadata, dict):
            raise _type_error("metadata", "an object")
        if isinstance(metadata.get("user_id"), str) and metadata["user_id"]:
            self.chat["user"] = metadata["user_id"]
        # user_id goes as ``user`` only: OpenAI refuses ``metadata`` without ``store: true``,
        # and Anthropic's SDK clients (Claude Code) send a user_id on every call
        kept = {k: v for k, v in metadata.items() if isinstance(v, str) and k != "user_id"}
        if kept:
            self.chat["metadata"] = kept  # the gateway's own attribution keys (feature …)

    def _options(self, body: dict) -> None:
        """The options with no Chat Completions equivalent that change the call."""
        for name in ("top_k", "container", "inference_geo", "context_management"):
            if body.get(name) is not None:
                self._flag(name)
        if body.get("mcp_servers"):
            self._flag("mcp_servers", body["mcp_servers"])
        if body.get("service_tier") not in (None, "auto"):
            self._flag("service_tier")


def _tool_call(block: dict, path: str) -> dict:
    tool_input = block.get("input", {})
    if not isinstance(tool_input, dict):
        raise _type_error(f"{path}.input", "an object")
    return {
        "id": _required_str(block, "id", path),
        "type": "function",
        "function": {
            "name": _required_str(block, "name", path),
            "arguments": orjson.dumps(tool_input).decode(),
        },
    }


# --- token counting ------------------------------------------------------------------------


def _counting_model(name) -> ModelRecord:
    """A stand-in record for a request counted with no deployment at hand."""
    name = name if isinstance(name, str) else ""
    provider = ProviderRecord(slug="", kind="openai", base_url="", api_key="", api_version="")
    return ModelRecord(
        name=name,
        upstream_model=name,
        mode="chat",
        max_output_tokens=None,
        provider=provider,
        prices=(),
    )


def count_tokens_local(body: dict, *, model: ModelRecord | None = None) -> int:
    """The input tokens of a Messages (or count_tokens) request by the gateway's own count:
    ``gateway.billable``'s upper bound over the translated chat body, for ``model`` (the
    deployment; the request's own model name when None), so that it agrees with the budget
    estimate. What Chat Completions cannot carry (server tools, documents by URL …) is counted
    as its JSON text. Invalid requests raise the 400 ``messages_to_chat`` raises."""
    translation = _Translation(body, count_only=True)
    record = model or _counting_model(translation.chat.get("model"))
    total = billable.prompt_tokens("chat.completions", translation.chat, record, bound=True)
    for item in translation.dropped:
        total += count_text(orjson.dumps(item).decode(), model=record.upstream_model)[0]
    if record.context_window:
        total = min(total, record.context_window)
    return total


# --- answers -------------------------------------------------------------------------------


def message_id(chat_id) -> str:
    """``msg_`` and the tail of a chat completion's id (``chatcmpl-abc`` → ``msg_abc``)."""
    tail = chat_id.split("-", 1)[-1] if isinstance(chat_id, str) else ""
    return "msg_" + (tail or uuid.uuid4().hex)


def _usage_object(usage: Usage) -> dict:
    return {
        "input_tokens": usage.uncached_input,
        "output_tokens": usage.output,
        "cache_read_input_tokens": usage.cached_input,
        "cache_creation_input_tokens": usage.cache_write,
    }


def _tool_input(arguments) -> dict:
    """Tool-call arguments as a ``tool_use`` input; arguments that are not a JSON object are
    kept under ``_raw`` (the upstream model wrote invalid JSON; nothing is lost)."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        log.warning("a tool call's arguments are not JSON; passed on under '_raw'")
        return {"_raw": arguments if isinstance(arguments, str) else str(arguments)}
    return value if isinstance(value, dict) else {"_raw": arguments}


def _tool_use(call: dict, fn: dict) -> dict:
    """The ``tool_use`` block of a chat tool call (its input still empty)."""
    tool_id = call.get("id") or "toolu_" + uuid.uuid4().hex[:24]
    return {"type": "tool_use", "id": tool_id, "name": fn.get("name") or "", "input": {}}


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def chat_to_messages(chat: dict, *, model: str) -> dict:
    """A chat completion as Anthropic's ``Message`` (the first choice), ``model`` being the
    name the client asked for."""
    chat = chat if isinstance(chat, dict) else {}
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") if isinstance(choice, dict) else None
    message = message if isinstance(message, dict) else {}
    text, refusal = _text_of(message.get("content")), message.get("refusal")
    refused = not text and isinstance(refusal, str) and bool(refusal)
    content = [{"type": "text", "text": refusal if refused else text}] if text or refused else []
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            fn = call.get("function") if isinstance(call.get("function"), dict) else {}
            block = _tool_use(call, fn)
            content.append(dict(block, input=_tool_input(fn.get("arguments"))))
    stop_reason = _STOP_REASONS.get(choice.get("finish_reason") or "", "end_turn")
    usage = Usage.from_openai(chat.get("usage")) or Usage()
    return {
        "id": message_id(chat.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "refusal" if refused else stop_reason,
        "stop_sequence": None,
        "usage": _usage_object(usage),
    }


def sse(name: str, payload: dict) -> bytes:
    """One named SSE event, as Anthropic sends them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _error_object(message: str, type_: str = "api_error") -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


def anthropic_error(status: int, message: str) -> bytes:
    """An error body in Anthropic's shape, its ``type`` the one Anthropic uses for ``status``
    (other 4xx ``invalid_request_error``, other 5xx ``api_error``)."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    return orjson.dumps(_error_object(message, ANTHROPIC_ERROR_TYPES.get(status, default)))


def _chunk_payload(event: bytes) -> dict | None:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                obj = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return None
            return obj if isinstance(obj, dict) else None
    return None


class ChatToMessagesStream:
    """Chat chunks in, Anthropic's event sequence out: ``message_start`` (its usage all 0:
    Chat Completions reports usage last), each content block (text, or a tool call as a
    ``tool_use`` block fed ``input_json_delta``) started, fed and stopped in turn, and at the
    end ``message_delta`` with the stop reason and the real usage, then ``message_stop``.

    Chat streams tool calls one after the other; arguments for a call whose block is already
    stopped (an upstream interleaving calls) still go out as deltas of that block's index."""

    def __init__(self, model: str, message_id: str) -> None:
        self._model = model
        self._id = message_id
        self._started = False
        self._index = -1  # the last block's index
        self._open = ""  # "text" | "tool" | "" (no block open)
        self._tools: dict[int, int] = {}  # chat tool-call index -> block index
        self._open_tool = -1  # chat index of the open tool_use block
        self._finish: str | None = None
        self._errored = False
        self._text: list[str] = []

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [sse("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[bytes]:
        if not self._open:
            return []
        self._open = ""
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _open_block(self, block: dict) -> list[bytes]:
        out = self._close()
        self._index += 1
        event = {"type": "content_block_start", "index": self._index, "content_block": block}
        out.append(sse("content_block_start", event))
        return out

    def _delta(self, index: int, delta: dict) -> bytes:
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        return sse("content_block_delta", event)

    def _text_delta(self, text: str) -> list[bytes]:
        out = [] if self._open == "text" else self._open_block({"type": "text", "text": ""})
        self._open = "text"
        self._text.append(text)
        out.append(self._delta(self._index, {"type": "text_delta", "text": text}))
        return out

    def _tool_delta(self, call: dict) -> list[bytes]:
        position = call.get("index", 0) if _is_int(call.get("index")) else 0
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        out: list[bytes] = []
        if position not in self._tools:
            block = _tool_use(call, fn)
            out = self._open_block(block)
            self._open, self._open_tool = "tool", position
            self._tools[position] = self._index
            self._text.append(block["name"])
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._text.append(arguments)
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(self._delta(self._tools[position], delta))
        return out

    def feed(self, event: bytes) -> list[bytes]:
        obj = _chunk_payload(event)
        if obj is None or self._errored:
            return []
        out = self._start()
        error = obj.get("error")
        if isinstance(error, dict):  # an error event the provider's stream parser passed on
            self._errored = True
            message = str(error.get("message") or _ERROR_MESSAGES["upstream_stream_error"])
            return [*out, sse("error", _error_object(message))]
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.extend(self._text_delta(text))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out.extend(self._tool_delta(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def tail(self, *, usage: Usage, cost: Decimal, status: str, error_code: str) -> bytes:
        if self._errored:
            return b""  # the error event went out already, and ends the stream
        if status == "error":
            message = _ERROR_MESSAGES.get(error_code, _ERROR_MESSAGES["upstream_error"])
            return sse("error", _error_object(message))
        out = self._start() + self._close()
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": _STOP_REASONS.get(self._finish or "", "end_turn"),
                "stop_sequence": None,
            },
            "usage": _usage_object(usage),
        }
        out.append(sse("message_delta", delta))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def generated_text(self) -> str:
        return "".join(self._text)


# --- native deployments --------------------------------------------------------------------


native_json = rename_model  # an Anthropic answer, with the model the client asked for


class NativeMessagesStream:
    """An Anthropic deployment's events (whole, as the adapter's native parser emits them),
    passed through byte for byte but for ``message.model`` in ``message_start``; on a broken
    stream, a closing ``error`` event unless the upstream sent its own."""

    def __init__(self, requested: str) -> None:
        self._requested = requested
        self._errored = False
        self._text: list[str] = []

    def feed(self, event: bytes) -> list[bytes]:
        kind, data = event_parts(event)
        if kind == "error":
            self._errored = True
        if kind not in ("message_start", "content_block_delta", "error"):
            return [event]
        try:
            obj = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            return [event]
        if obj.get("type") == "error":
            self._errored = True
        if kind == "content_block_delta":
            delta = obj.get("delta") if isinstance(obj.get("delta"), dict) else {}
            piece = delta.get("text") if delta.get("type") == "text_delta" else None
            if delta.get("type") == "input_json_delta":
                piece = delta.get("partial_json")
            if isinstance(piece, str):
                self._text.append(piece)
            return [event]
        message = obj.get("message")
        if kind != "message_start" or not isinstance(message, dict):
            return [event]
        return [sse(kind, dict(obj, message=dict(message, model=self._requested)))]

    def tail(self, *, usage: Usage, cost: Decimal, status: str, error_code: str) -> bytes:
        if status != "error" or self._errored:
            return b""
        message = _ERROR_MESSAGES.get(error_code, _ERROR_MESSAGES["upstream_error"])
        return sse("error", _error_object(message))

    def generated_text(self) -> str:
        return "".join(self._text)
