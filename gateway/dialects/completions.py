"""OpenAI's legacy text completions (``POST /v1/completions``) over Chat Completions.

A prompt (a string, or a list holding one string) becomes one user message. ``max_tokens``
defaults to 16, as the legacy API does; ``stop``, ``temperature``, ``top_p``, ``n``, ``user``,
``seed``, ``presence_penalty``, ``frequency_penalty``, ``logit_bias`` and ``stream`` carry over
as they are. Unsupported, returned by name: several prompts or token arrays (``prompt``),
``suffix``, ``echo``, ``best_of`` above 1 and ``logprobs``: each changes what the model is asked
or what comes back, and a chat model cannot do it. ``stream_options`` only shapes the stream.

Answers come back as ``text_completion`` objects (``chat_to_completion``) or chunks
(``ChatToCompletionsStream``), ``choices[].text`` holding what the chat model wrote.
"""

from __future__ import annotations

import time
from decimal import Decimal

import orjson

from gateway.errors import invalid
from gateway.pricing import Usage, decimal_str

DEFAULT_MAX_TOKENS = 16
_COPIED = (
    "stop",
    "temperature",
    "top_p",
    "n",
    "user",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
)
_ERROR_MESSAGES = {
    "upstream_timeout": "The upstream timed out before the completion was complete.",
    "upstream_error": "The connection to the upstream failed before the completion was complete.",
    "upstream_stream_error": "The upstream stream ended with an error.",
}


def _prompt_text(prompt, unsupported: list[str]) -> str:
    if prompt is None:
        raise invalid(
            "missing_required_parameter", "Missing required parameter: 'prompt'.", "prompt"
        )
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str | int | list) for p in prompt):
        unsupported.append("prompt")  # a batch of prompts, or token ids
        return ""
    raise invalid(
        "invalid_type",
        "'prompt' must be a string, an array of strings or an array of token arrays.",
        "prompt",
    )


def completions_to_chat(body: dict) -> tuple[dict, list[str]]:
    """The canonical Chat Completions body of a legacy completions request, and the
    parameters Chat Completions cannot express."""
    if not isinstance(body, dict):
        raise invalid("invalid_type", "The request body must be a JSON object.")
    unsupported: list[str] = []
    text = _prompt_text(body.get("prompt"), unsupported)
    if body.get("suffix") is not None:
        unsupported.append("suffix")
    if body.get("echo"):
        unsupported.append("echo")
    best_of = body.get("best_of")
    if isinstance(best_of, int) and best_of > 1:
        unsupported.append("best_of")
    if body.get("logprobs") is not None:
        unsupported.append("logprobs")
    chat: dict = {"model": body["model"]} if "model" in body else {}
    chat["messages"] = [{"role": "user", "content": text}]
    max_tokens = body.get("max_tokens")
    chat["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    for name in _COPIED:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, unsupported


def _finish(reason) -> str | None:
    """The legacy API knows three reasons; a chat-only one (``tool_calls``) is a plain stop."""
    if reason is None:
        return None
    return reason if reason in ("stop", "length", "content_filter") else "stop"


def _completion_id(chat_id) -> str:
    tail = str(chat_id or "").removeprefix("chatcmpl-")
    return f"cmpl-{tail}" if tail else f"cmpl-{int(time.time() * 1000)}"


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _usage_object(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output,
        "total_tokens": usage.prompt_tokens + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input},
    }


def chat_to_completion(chat: dict, *, model: str) -> dict:
    """A chat completion as a ``text_completion`` object."""
    choices = [
        {
            "text": _text(choice.get("message") or {}),
            "index": choice.get("index", i),
            "logprobs": None,
            "finish_reason": _finish(choice.get("finish_reason")) or "stop",
        }
        for i, choice in enumerate(chat.get("choices") or ())
        if isinstance(choice, dict)
    ]
    created = chat.get("created")
    out = {
        "id": _completion_id(chat.get("id")),
        "object": "text_completion",
        "created": created if isinstance(created, int) else int(time.time()),
        "model": model,
        "choices": choices,
    }
    if chat.get("system_fingerprint"):
        out["system_fingerprint"] = chat["system_fingerprint"]
    if isinstance(chat.get("usage"), dict):
        out["usage"] = chat["usage"]  # the same CompletionUsage object in both APIs
    return out


class ChatToCompletionsStream:
    """Chat chunks in, ``text_completion`` chunks out; the tail adds the usage chunk (with the
    call's ``cost``) when ``include_usage``, then ``[DONE]``."""

    def __init__(self, model: str, *, include_usage: bool = True) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = ""
        self._created = int(time.time())
        self._error_sent = False
        self._text: list[str] = []

    def _chunk(self, choices: list[dict], **extra) -> bytes:
        chunk = {
            "id": self._id or _completion_id(""),
            "object": "text_completion",
            "created": self._created,
            "model": self._model,
            "choices": choices,
            **extra,
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def feed(self, event: bytes) -> list[bytes]:
        if not event.startswith(b"data:"):
            return []
        try:
            obj = orjson.loads(event[5:].strip())
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        if isinstance(obj.get("error"), dict):  # an adapter's error event: already in shape
            self._error_sent = True
            return [event]
        if not self._id:
            self._id = _completion_id(obj.get("id"))
            if isinstance(obj.get("created"), int):
                self._created = obj["created"]
        choices = []
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            content = (choice.get("delta") or {}).get("content")
            text = content if isinstance(content, str) else ""
            if not text and not choice.get("finish_reason"):
                continue  # the role chunk, tool-call deltas: nothing to show as text
            self._text.append(text)
            choices.append(
                {
                    "text": text,
                    "index": choice.get("index", 0),
                    "logprobs": None,
                    "finish_reason": _finish(choice.get("finish_reason")),
                }
            )
        return [self._chunk(choices)] if choices else []

    def tail(self, *, usage: Usage, cost: Decimal, status: str, error_code: str) -> bytes:
        out: list[bytes] = []
        if status == "error":
            if not self._error_sent:
                error = {
                    "message": _ERROR_MESSAGES.get(error_code, _ERROR_MESSAGES["upstream_error"]),
                    "type": "api_error",
                    "param": None,
                    "code": error_code,
                }
                out.append(b"data: " + orjson.dumps({"error": error}) + b"\n\n")
        elif self._include_usage:
            summary = dict(_usage_object(usage), cost=decimal_str(cost))
            out.append(self._chunk([], usage=summary))
        out.append(b"data: [DONE]\n\n")
        return b"".join(out)

    def generated_text(self) -> str:
        return "".join(self._text)
