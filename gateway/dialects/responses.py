"""OpenAI's Responses API (``POST /v1/responses``) over the canonical Chat Completions body.

Requests (``responses_to_chat``): a string ``input`` is one user message; ``message`` items are
messages (``input_text`` → ``text``, ``input_image`` → ``image_url``, ``input_file`` with
``file_data`` → ``file``; assistant ``output_text`` and ``refusal`` → text and ``refusal``);
``function_call`` items are assistant ``tool_calls`` (consecutive calls, and calls right after
an assistant message, share one message, as Chat wants); ``function_call_output`` items are
``tool`` messages; ``reasoning`` items are dropped; ``instructions`` is a leading system
message. Function tools, ``tool_choice`` and ``parallel_tool_calls`` (these two only with
tools, as Chat requires); ``text.format`` → ``response_format``, ``text.verbosity`` →
``verbosity``, ``max_output_tokens`` → ``max_completion_tokens``, ``reasoning.effort`` →
``reasoning_effort``; ``temperature``, ``top_p``, ``user`` (else ``safety_identifier``) as
they are; a stream asks for usage.

Shape only, left out: ``metadata`` (tags; OpenAI's chat API refuses it without ``store:
true``, and the answer echoes it anyway), ``store``, ``include``, ``prompt_cache_key``,
``prompt_cache_retention``, ``service_tier``, ``truncation: disabled``, ``stream_options``,
``background: false``, ``max_tool_calls`` (it caps built-in tools only), ``reasoning.summary``
and ``previous_response_id`` (the gateway has expanded the conversation before calling us).
Unsupported, returned by path for the caller to refuse (a native deployment takes them):
``background: true``, ``conversation``, ``prompt``, ``top_logprobs``, ``truncation: auto``,
``context_management``, tools but functions (and a ``tool_choice`` naming one, or
``allowed_tools``), ``item_reference`` and built-in tools' items, ``file_id`` images and
files, ``file_url`` files, images and files outside user messages.

Answers: ``chat_to_responses`` (JSON), ``ChatToResponsesStream`` (the events OpenAI sends); a
native deployment's keep all but ``model``. ``conversation_items`` and ``expand_input`` serve
the gateway's own store of responses (``previous_response_id``).
"""

from __future__ import annotations

import time
from decimal import Decimal

import orjson

from gateway.dialects.base import event_parts, rename_model
from gateway.errors import GatewayError, invalid
from gateway.pricing import Usage, decimal_str

# tuples, not sets: a client's value may be any JSON, and a dict is not hashable
_ROLES = ("user", "assistant", "system", "developer")
_IMAGE_DETAILS = ("auto", "low", "high")
_TOOL_CHOICE_MODES = ("auto", "none", "required")
# Responses items Chat Completions has no way to carry: a reference to OpenAI's storage, and
# the items of built-in tools (besides these, every ``*_call`` and ``*_call_output``)
_UNSUPPORTED_ITEMS = frozenset(
    {
        "item_reference",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "tool_search_output",
        "additional_tools",
        "configuration_update",
        "compaction",
        "compaction_trigger",
        "program",
        "program_output",
    }
)
_BUILT_IN_ITEM_SUFFIXES = ("_call", "_call_output")
_PART_FIELD = {"output_text": "text", "refusal": "refusal"}  # content part type -> its text
# request settings a Response echoes, with the value OpenAI returns when the request has none
_ECHOED = {
    **dict.fromkeys(
        ("instructions", "max_output_tokens", "max_tool_calls", "previous_response_id")
    ),
    **dict.fromkeys(("prompt_cache_key", "safety_identifier", "user")),
    "parallel_tool_calls": True,
    "store": True,
    "temperature": 1.0,
    "top_p": 1.0,
}
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_ERROR_MESSAGES = {
    "upstream_timeout": "The upstream timed out before the response was complete.",
    "upstream_error": "The connection to the upstream failed before the response was complete.",
    "upstream_stream_error": "The upstream stream ended with an error.",
}


def _error_message(error_code: str) -> str:
    return _ERROR_MESSAGES.get(error_code, _ERROR_MESSAGES["upstream_error"])


def _bad_type(path: str, expected: str) -> GatewayError:
    return invalid("invalid_type", f"Invalid type for '{path}': expected {expected}.", path)


def _bad_value(path: str, detail: str) -> GatewayError:
    return invalid("invalid_value", f"Invalid value for '{path}': {detail}.", path)


def _missing(path: str) -> GatewayError:
    return invalid("missing_required_parameter", f"Missing required parameter: '{path}'.", path)


# --- requests ------------------------------------------------------------------------------


def responses_to_chat(body: dict) -> tuple[dict, list[str]]:
    """The canonical Chat Completions body of a Responses request, and the parameters (as
    paths such as ``tools[1]``) that Chat Completions cannot express."""
    if not isinstance(body, dict):
        raise invalid("invalid_type", "The request body must be a JSON object.")
    unsupported: list[str] = []
    messages: list[dict] = []
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _bad_type("instructions", "a string")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    messages.extend(_input_messages(body.get("input"), unsupported))
    chat: dict = {"model": body["model"]} if "model" in body else {}
    chat["messages"] = messages
    _copy_options(body, chat)
    _translate_tools(body, chat, unsupported)
    _translate_text(body.get("text"), chat)
    _unsupported_options(body, unsupported)
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, list(dict.fromkeys(unsupported))


def _input_messages(raw, unsupported: list[str]) -> list[dict]:
    if raw is None:
        raise _missing("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise _bad_type("input", "a string or an array of input items")
    messages: list[dict] = []
    for i, item in enumerate(raw):
        _add_item(messages, item, f"input[{i}]", unsupported)
    return messages


def _add_item(messages: list[dict], item, path: str, unsupported: list[str]) -> None:
    if not isinstance(item, dict):
        raise _bad_type(path, "an object")
    kind = item.get("type") or ("message" if "role" in item else None)  # easy messages
    if kind == "message":
        messages.append(_message(item, path, unsupported))
    elif kind == "function_call":
        _add_function_call(messages, item, path)
    elif kind == "function_call_output":
        messages.append(_tool_message(item, path, unsupported))
    elif kind == "reasoning":
        return  # the chat model reasons afresh; encrypted reasoning means nothing to it
    elif isinstance(kind, str) and (
        kind in _UNSUPPORTED_ITEMS or kind.endswith(_BUILT_IN_ITEM_SUFFIXES)
    ):
        unsupported.append(path)
    else:
        raise _bad_value(f"{path}.type", f"{kind!r} is not an input item type")


def _message(item: dict, path: str, unsupported: list[str]) -> dict:
    role = item.get("role")
    if role not in _ROLES:
        raise _bad_value(f"{path}.role", "expected one of user, assistant, system, developer")
    content = item.get("content")
    if not isinstance(content, str | list):
        raise _bad_type(f"{path}.content", "a string or an array of content parts")
    if role == "assistant":
        return _assistant_message(content, path)
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = []
    for j, part in enumerate(content):
        translated = _part(part, f"{path}.content[{j}]", role, unsupported)
        if translated is not None:
            parts.append(translated)
    return {"role": role, "content": parts}


def _text_of(part: dict, path: str) -> str:
    if not isinstance(part.get("text"), str):
        raise _bad_type(f"{path}.text", "a string")
    return part["text"]


def _part(part, path: str, role: str, unsupported: list[str]) -> dict | None:
    if not isinstance(part, dict):
        raise _bad_type(path, "an object")
    kind = part.get("type")
    if kind == "input_text":
        return {"type": "text", "text": _text_of(part, path)}
    if kind not in ("input_image", "input_file"):
        raise _bad_value(f"{path}.type", f"{kind!r} is not an input content type")
    if role != "user":  # Chat Completions takes only text from system and developer
        unsupported.append(path)
        return None
    if kind == "input_image":
        return _image_part(part, path, unsupported)
    return _file_part(part, path, unsupported)


def _image_part(part: dict, path: str, unsupported: list[str]) -> dict | None:
    url = part.get("image_url")
    if isinstance(url, str) and url:
        image = {"url": url}
        if part.get("detail") in _IMAGE_DETAILS:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if part.get("file_id"):
        unsupported.append(f"{path}.file_id")  # a file stored at OpenAI, out of our reach
        return None
    raise _missing(f"{path}.image_url")


def _file_part(part: dict, path: str, unsupported: list[str]) -> dict | None:
    data = part.get("file_data")
    if isinstance(data, str) and data:
        file = {"file_data": data}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    for name in ("file_id", "file_url"):
        if part.get(name):
            unsupported.append(f"{path}.{name}")
            return None
    raise _missing(f"{path}.file_data")


def _assistant_message(content, path: str) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts, refusals = [], []
    for j, part in enumerate(content):
        where = f"{path}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("output_text", "input_text"):
            texts.append(_text_of(part, where))
        elif kind == "refusal":
            refusals.append(str(part.get("refusal") or ""))
        else:
            raise _bad_value(f"{where}.type", "expected output_text or refusal")
    message: dict = {"role": "assistant", "content": "".join(texts) if texts else None}
    if refusals:
        message["refusal"] = "".join(refusals)
    return message


def _required_str(item: dict, name: str, path: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise _missing(f"{path}.{name}")
    return value


def _add_function_call(messages: list[dict], item: dict, path: str) -> None:
    call_id = _required_str(item, "call_id", path)
    name = _required_str(item, "name", path)
    arguments = item.get("arguments", "")
    if isinstance(arguments, dict):
        arguments = orjson.dumps(arguments).decode()
    elif not isinstance(arguments, str):
        raise _bad_type(f"{path}.arguments", "a string")
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_message(item: dict, path: str, unsupported: list[str]) -> dict:
    call_id = _required_str(item, "call_id", path)
    output = item.get("output")
    if isinstance(output, str):
        return {"role": "tool", "tool_call_id": call_id, "content": output}
    if not isinstance(output, list):
        raise _bad_type(f"{path}.output", "a string or an array of content parts")
    content = []
    for j, part in enumerate(output):
        where = f"{path}.output[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "input_text":
            content.append({"type": "text", "text": _text_of(part, where)})
        elif kind in ("input_image", "input_file"):
            unsupported.append(where)  # a tool message carries text only
        else:
            raise _bad_value(f"{where}.type", f"{kind!r} is not a tool output content type")
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _copy_options(body: dict, chat: dict) -> None:
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        chat["user"] = user
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise _bad_type("reasoning", "an object")
    if reasoning and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]


def _translate_tools(body: dict, chat: dict, unsupported: list[str]) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _bad_type("tools", "an array")
    out = []
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict):
            raise _bad_type(f"tools[{i}]", "an object")
        if tool.get("type") != "function":
            unsupported.append(f"tools[{i}]")
            continue
        function = {"name": _required_str(tool, "name", f"tools[{i}]")}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        out.append({"type": "function", "function": function})
    choice = _tool_choice(body.get("tool_choice"), unsupported)
    if not out:
        return  # Chat Completions refuses tool_choice and parallel_tool_calls without tools
    chat["tools"] = out
    if choice is not None:
        chat["tool_choice"] = choice
    if isinstance(body.get("parallel_tool_calls"), bool):
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]


def _tool_choice(choice, unsupported: list[str]):
    if choice is None or choice in _TOOL_CHOICE_MODES:
        return choice
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise _bad_value("tool_choice", "expected auto, none, required or an object")
    if choice["type"] == "function":
        name = _required_str(choice, "name", "tool_choice")
        return {"type": "function", "function": {"name": name}}
    # a built-in tool, or ``allowed_tools``: chat servers and the Anthropic adapter would ignore
    # the restriction, so the caller refuses it rather than let it pass unenforced
    unsupported.append("tool_choice")
    return None


def _translate_text(text, chat: dict) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise _bad_type("text", "an object")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
        return
    if kind != "json_schema":
        raise _bad_value("text.format.type", "expected text, json_object or json_schema")
    if not isinstance(fmt.get("schema"), dict):
        raise _missing("text.format.schema")
    spec = {"name": _required_str(fmt, "name", "text.format"), "schema": fmt["schema"]}
    for name in ("strict", "description"):
        if fmt.get(name) is not None:
            spec[name] = fmt[name]
    chat["response_format"] = {"type": "json_schema", "json_schema": spec}


def _unsupported_options(body: dict, unsupported: list[str]) -> None:
    if body.get("background") is True:
        unsupported.append("background")
    for name in ("conversation", "prompt", "context_management"):
        if body.get(name) is not None:
            unsupported.append(name)
    if body.get("top_logprobs") not in (None, 0):
        unsupported.append("top_logprobs")
    if body.get("truncation") == "auto":
        unsupported.append("truncation")


# --- answers -------------------------------------------------------------------------------


def _id_base(response_id: str) -> str:
    """The tail of ``resp_…``: item ids derive from it, so they are unique and reproducible."""
    return response_id.removeprefix("resp_") or "0"


def _status(finish_reason) -> tuple[str, dict | None]:
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def _echo_tools(tools) -> list[dict]:
    out = []
    for tool in tools or ():
        if isinstance(tool, dict) and tool.get("type") == "function":
            fields = ("name", "description", "parameters", "strict")
            out.append({"type": "function", **{name: tool.get(name) for name in fields}})
    return out


def _message_item(item_id: str, status: str, content: list[dict]) -> dict:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _call_item(item_id: str, *, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def _echo_text(text) -> dict:
    text = text if isinstance(text, dict) else {}
    return {
        "format": text.get("format") or {"type": "text"},
        "verbosity": text.get("verbosity") or "medium",
    }


def _response_object(
    request: dict,
    *,
    response_id: str,
    model: str,
    created_at: int,
    status: str,
    output: list[dict],
    usage: dict | None,
    error: dict | None = None,
    incomplete: dict | None = None,
    service_tier: str | None = None,
) -> dict:
    """A Response object: what was made, and the request's settings echoed with OpenAI's
    defaults."""
    reasoning = request.get("reasoning") if isinstance(request.get("reasoning"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        **{k: default if request.get(k) is None else request[k] for k, default in _ECHOED.items()},
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": service_tier or "default",
        "text": _echo_text(request.get("text")),
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": _echo_tools(request.get("tools")),
        "top_logprobs": request.get("top_logprobs") or 0,
        "truncation": request.get("truncation") or "disabled",
        "usage": usage,
        "metadata": request.get("metadata") or {},
    }


def _usage_object(usage: Usage, reasoning_tokens: int = 0) -> dict:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input,
            "cache_write_tokens": usage.cache_write,
        },
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.output,
    }


def _chat_usage(usage) -> dict | None:
    parsed = Usage.from_openai(usage)
    if parsed is None:
        return None
    details = usage.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else 0
    out = _usage_object(parsed, reasoning if isinstance(reasoning, int) else 0)
    if usage.get("cost") is not None:
        out["cost"] = usage["cost"]
    return out


def _content_parts(content, refusal) -> list[dict]:
    if isinstance(content, list):  # a few servers answer with parts
        content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    parts = []
    if isinstance(content, str) and content:
        parts.append({"type": "output_text", "text": content, "annotations": [], "logprobs": []})
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    return parts


def chat_to_responses(chat: dict, *, model: str, response_id: str, request: dict) -> dict:
    """A chat completion as the Response object the client asked for."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    status, incomplete = _status(choice.get("finish_reason"))
    base = _id_base(response_id)
    output: list[dict] = []
    content = _content_parts(message.get("content"), message.get("refusal"))
    if content:
        output.append(_message_item(f"msg_{base}", status, content))  # completed or incomplete
    for i, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        call_id = call.get("id") or f"call_{base}_{i}"
        name, arguments = function.get("name") or "", function.get("arguments") or ""
        item = _call_item(
            f"fc_{base}_{i}", call_id=call_id, name=name, arguments=arguments, status="completed"
        )
        output.append(item)
    created = chat.get("created")
    return _response_object(
        request,
        response_id=response_id,
        model=model,
        created_at=created if isinstance(created, int) else int(time.time()),
        status=status,
        output=output,
        usage=_chat_usage(chat.get("usage")),
        incomplete=incomplete,
        service_tier=chat.get("service_tier"),
    )


def _sse(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _payload(event: bytes) -> tuple[str, dict | None]:
    """(the ``event:`` name, the decoded ``data:`` object) of one SSE event."""
    kind, joined = event_parts(event)
    data = [joined] if joined else []
    try:
        obj = orjson.loads(b"\n".join(data)) if data else None
    except orjson.JSONDecodeError:
        obj = None
    return kind, obj if isinstance(obj, dict) else None


class ChatToResponsesStream:
    """Chat chunks in, the Responses event sequence out: ``response.created`` and
    ``response.in_progress``, then each output item (a message's content part and text deltas,
    or a function call and its argument deltas) opened, filled and closed in turn, and at the
    end ``response.completed`` / ``response.incomplete`` (or ``response.failed``) carrying the
    whole Response."""

    def __init__(self, model: str, response_id: str, request: dict) -> None:
        self.response: dict | None = None
        self._model = model
        self._id = response_id
        self._request = request
        self._base = _id_base(response_id)
        self._created_at = int(time.time())
        self._seq = 0
        self._started = False
        self._output: list[dict] = []
        self._index: dict[str, int] = {}  # item id -> output_index
        self._message: dict | None = None  # the open message item
        self._part: dict | None = None  # its open content part
        self._calls: dict[int, dict] = {}  # chat tool-call index -> function_call item
        self._call: dict | None = None  # the open function_call item
        self._finish: str | None = None
        self._service_tier: str | None = None
        self._error = ""
        self._text: list[str] = []

    def _event(self, kind: str, **fields) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return _sse(kind, payload)

    def _response(self, status: str, **fields) -> dict:
        return _response_object(
            self._request,
            response_id=self._id,
            model=self._model,
            created_at=self._created_at,
            status=status,
            output=self._output,
            service_tier=self._service_tier,
            **fields,
        )

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", response=self._response("in_progress", usage=None)),
            self._event("response.in_progress", response=self._response("in_progress", usage=None)),
        ]

    def _add_item(self, item: dict) -> bytes:
        self._index[item["id"]] = len(self._output)
        self._output.append(item)
        return self._event(
            "response.output_item.added", output_index=self._index[item["id"]], item=item
        )

    def feed(self, event: bytes) -> list[bytes]:
        chunk = _payload(event)[1]
        if chunk is None:
            return []
        out = self._start()
        if isinstance(chunk.get("error"), dict):  # an error event in the stream: tail reports it
            message = chunk["error"].get("message")
            self._error = str(message or _ERROR_MESSAGES["upstream_stream_error"])
            return out
        if chunk.get("service_tier"):
            self._service_tier = chunk["service_tier"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Responses has a single answer
            delta = choice.get("delta") or {}
            for kind, key in (("output_text", "content"), ("refusal", "refusal")):
                if isinstance(delta.get(key), str) and delta[key]:
                    out += self._text_delta(kind, delta[key])
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _text_delta(self, kind: str, text: str) -> list[bytes]:
        out = self._close_call("completed")
        if self._message is None:
            suffix = f"_{len(self._output)}" if self._output else ""
            self._message = _message_item(f"msg_{self._base}{suffix}", "in_progress", [])
            out.append(self._add_item(self._message))
        field = _PART_FIELD[kind]
        if self._part is None or self._part["type"] != kind:
            out += self._close_part()
            self._part = {"type": kind, field: ""}
            if kind == "output_text":
                self._part.update(annotations=[], logprobs=[])
            self._message["content"].append(self._part)
            out.append(self._event("response.content_part.added", **self._where(), part=self._part))
        self._text.append(text)
        self._part[field] += text
        extra = {"logprobs": []} if kind == "output_text" else {}
        out.append(self._event(f"response.{kind}.delta", **self._where(), delta=text, **extra))
        return out

    def _where(self) -> dict:
        """item_id, output_index and content_index of the open content part."""
        message = self._message
        assert message is not None
        return {
            "item_id": message["id"],
            "output_index": self._index[message["id"]],
            "content_index": len(message["content"]) - 1,
        }

    def _close_part(self) -> list[bytes]:
        part = self._part
        if part is None:
            return []
        kind, where = part["type"], self._where()
        done = {_PART_FIELD[kind]: part[_PART_FIELD[kind]]}
        if kind == "output_text":
            done["logprobs"] = []
        self._part = None
        return [
            self._event(f"response.{kind}.done", **where, **done),
            self._event("response.content_part.done", **where, part=part),
        ]

    def _close_message(self, status: str) -> list[bytes]:
        message = self._message
        if message is None:
            return []
        out = self._close_part()
        message["status"] = status
        out.append(
            self._event(
                "response.output_item.done", output_index=self._index[message["id"]], item=message
            )
        )
        self._message = None
        return out

    def _call_delta(self, call: dict) -> list[bytes]:
        index = call["index"] if isinstance(call.get("index"), int) else 0
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        item = self._calls.get(index)
        out: list[bytes] = []
        if item is None:
            out += self._close_message("completed")
            out += self._close_call("completed")
            number = f"{self._base}_{len(self._calls)}"
            name = function.get("name") or ""
            call_id = call.get("id") or f"call_{number}"
            item = _call_item(
                f"fc_{number}", call_id=call_id, name=name, arguments="", status="in_progress"
            )
            self._calls[index] = self._call = item
            self._text.append(item["name"])
            out.append(self._add_item(item))
        elif function.get("name") and not item["name"]:
            item["name"] = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            self._text.append(arguments)
            if item is self._call:  # a late delta of a closed call only completes the Response
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=self._index[item["id"]],
                        delta=arguments,
                    )
                )
        return out

    def _close_call(self, status: str) -> list[bytes]:
        item = self._call
        if item is None:
            return []
        item["status"] = status
        where = {"item_id": item["id"], "output_index": self._index[item["id"]]}
        self._call = None
        return [
            self._event(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=item["arguments"],
            ),
            self._event("response.output_item.done", output_index=where["output_index"], item=item),
        ]

    def tail(self, *, usage: Usage, cost: Decimal, status: str, error_code: str) -> bytes:
        out = self._start()
        if status == "error" or self._error:
            error = {"code": "server_error", "message": self._error or _error_message(error_code)}
            response = self._response("failed", usage=None, error=error)
            out.append(self._event("response.failed", response=response))
            return b"".join(out)
        state, incomplete = _status(self._finish)
        item_status = "incomplete" if state == "incomplete" else "completed"
        out += self._close_message(item_status)
        out += self._close_call(item_status)
        summary = dict(_usage_object(usage), cost=decimal_str(cost))
        response = self._response(state, usage=summary, incomplete=incomplete)
        self.response = response  # the final Response (the gateway stores it)
        out.append(self._event(f"response.{state}", response=response))
        return b"".join(out)

    def generated_text(self) -> str:
        return "".join(self._text)


# --- native deployments --------------------------------------------------------------------


native_json = rename_model  # a native deployment's Response, with the model asked for


class NativeResponsesStream:
    """A native deployment's Responses events, passed through with ``response.model`` the
    name the client asked for; on a broken stream, a closing ``response.failed`` unless the
    upstream sent its own failure."""

    def __init__(self, requested: str) -> None:
        self._requested = requested
        self._last_seq = -1
        self._snapshot: dict | None = None  # the latest Response object the upstream sent
        self._failed = False
        self._text: list[str] = []

    def feed(self, event: bytes) -> list[bytes]:
        kind, obj = _payload(event)
        if obj is None:
            return [event]
        if isinstance(obj.get("type"), str):
            kind = obj["type"]
        if isinstance(obj.get("sequence_number"), int):
            self._last_seq = max(self._last_seq, obj["sequence_number"])
        if kind in ("response.failed", "error"):
            self._failed = True
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
            self._text.append(str(obj.get("delta") or ""))
        response = obj.get("response")  # created, in_progress, completed, incomplete, failed …
        if not isinstance(response, dict):
            return [event]
        self._snapshot = response
        return [_sse(kind, dict(obj, response=dict(response, model=self._requested)))]

    def tail(self, *, usage: Usage, cost: Decimal, status: str, error_code: str) -> bytes:
        if status != "error" or self._failed:
            return b""
        message, seq = _error_message(error_code), self._last_seq + 1
        if self._snapshot is None:  # nothing to fail yet: the bare error event
            error = {"code": error_code, "message": message, "param": None}
            return _sse("error", {"type": "error", "sequence_number": seq, **error})
        error = {"code": "server_error", "message": message}
        response = dict(self._snapshot, model=self._requested, status="failed", error=error)
        return _sse(
            "response.failed",
            {"type": "response.failed", "sequence_number": seq, "response": response},
        )

    @property
    def response(self) -> dict | None:
        """The final Response the upstream sent (the gateway stores it), if it finished."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.get("status") not in ("completed", "incomplete"):
            return None
        return dict(snapshot, model=self._requested)

    def generated_text(self) -> str:
        return "".join(self._text)


# --- conversation state --------------------------------------------------------------------


def input_items(raw) -> list:
    """A request's ``input`` as a list of items (a string is one user message)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}
        ]
    if not isinstance(raw, list):
        raise _bad_type("input", "a string or an array of input items")
    items = []
    for item in raw:
        if isinstance(item, dict) and "type" not in item and "role" in item:
            item = {"type": "message", **item}
        items.append(item)
    return items


def conversation_items(request_input_items: list, response: dict) -> list:
    """What a stored response contributes to a follow-up: its whole input, then its output.

    Reasoning items without ``encrypted_content`` are left out: the gateway sends upstream with
    ``store: false``, where such an item (a bare reference to OpenAI's storage) is refused."""
    output = [
        item
        for item in response.get("output") or ()
        if isinstance(item, dict)
        and (item.get("type") != "reasoning" or item.get("encrypted_content"))
    ]
    return [*request_input_items, *output]


def expand_input(previous_items: list, body: dict) -> dict:
    """The request with the stored conversation in front of its own input and without
    ``previous_response_id``. The earlier ``instructions`` are not carried over (OpenAI's rule:
    a follow-up states its own)."""
    expanded = {k: v for k, v in body.items() if k != "previous_response_id"}
    expanded["input"] = [*previous_items, *input_items(body.get("input"))]
    return expanded
