"""The response cache's misses: a stream's events assembled into the answer they carry, so
that a streamed answer is stored once complete, as the non-stream answer (see
``gateway.response_cache_replay`` for the entry and its replay).

``Tap`` wraps the adapter's stream parser: every event the parser emits (the events the relay
passes on) also goes to the assembler of the upstream's format. An assembler that meets
something it cannot put back together exactly (logprobs, an unknown delta, an error event)
gives up, and that answer is not stored.
"""

from __future__ import annotations

import time

import orjson

from gateway.dialects.base import event_parts
from gateway.providers.base import CHAT, UsageChunk

RESPONSES = "responses"
MESSAGES = "messages"
COMPLETIONS = "completions"


def _data(event: bytes) -> dict | None:
    _kind, data = event_parts(event)
    if not data or data == b"[DONE]":
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


class ChatAssembler:
    """Chat chunks (the adapters' stream parsers' events) into one chat completion; any
    delta it cannot put back together (logprobs, a non-text field) makes it give up."""

    def __init__(self) -> None:
        self.head: dict = {}
        self.choices: dict[int, dict] = {}
        self.calls: dict[int, dict[int, dict]] = {}
        self.usage: dict | None = None
        self.faithful = True

    def add(self, event) -> None:
        if isinstance(event, UsageChunk):
            self.usage = event.chunk.get("usage")
            return
        obj = _data(event)
        if obj is None:
            return
        if "error" in obj:
            self.faithful = False
            return
        for name in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if obj.get(name) is not None:
                self.head.setdefault(name, obj[name])
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict):
                self._choice(choice)

    def _choice(self, choice: dict) -> None:
        index = choice.get("index", 0)
        out = self.choices.setdefault(
            index,
            {
                "index": index,
                "message": {"role": "assistant", "content": None},
                "finish_reason": None,
            },
        )
        if choice.get("logprobs"):
            self.faithful = False
        message = out["message"]
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        for name, value in delta.items():
            if name == "tool_calls":
                for call in value or ():
                    self._tool_call(index, call)
            elif name == "role":
                message["role"] = value or "assistant"
            elif isinstance(value, str):
                message[name] = (message.get(name) or "") + value
            elif value is not None:
                self.faithful = False
        if choice.get("finish_reason"):
            out["finish_reason"] = choice["finish_reason"]

    def _tool_call(self, index: int, call) -> None:
        if not isinstance(call, dict):
            self.faithful = False
            return
        calls = self.calls.setdefault(index, {})
        position = call.get("index", len(calls))
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        kept = calls.setdefault(
            position, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if call.get("id"):
            kept["id"] = call["id"]
        if call.get("type"):
            kept["type"] = call["type"]
        kept["function"]["name"] += fn.get("name") or ""
        kept["function"]["arguments"] += fn.get("arguments") or ""

    def answer(self) -> dict | None:
        if not self.faithful or not self.choices:
            return None
        choices = []
        for index in sorted(self.choices):
            choice = self.choices[index]
            if choice["finish_reason"] in (None, "error"):
                return None  # the stream did not finish this answer
            calls = self.calls.get(index)
            if calls:
                choice["message"]["tool_calls"] = [calls[i] for i in sorted(calls)]
            choices.append(choice)
        out = {
            "id": self.head.get("id", ""),
            "object": "chat.completion",
            "created": self.head.get("created", int(time.time())),
            "model": self.head.get("model", ""),
            "choices": choices,
        }
        for name in ("system_fingerprint", "service_tier"):
            if name in self.head:
                out[name] = self.head[name]
        if self.usage is not None:
            out["usage"] = self.usage
        return out


class MessagesAssembler:
    """Anthropic's native events into the ``Message`` they describe."""

    def __init__(self) -> None:
        self.message: dict | None = None
        self.blocks: dict[int, dict] = {}
        self.done = False
        self.faithful = True

    def add(self, event) -> None:
        obj = _data(event) if isinstance(event, bytes) else None
        if obj is None:
            return
        kind = obj.get("type")
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            self.message = dict(obj["message"])
        elif kind == "content_block_start" and isinstance(obj.get("content_block"), dict):
            self.blocks[obj.get("index", len(self.blocks))] = dict(obj["content_block"])
        elif kind == "content_block_delta":
            self._delta(self.blocks.get(obj.get("index")), obj.get("delta") or {})
        elif kind == "content_block_stop":
            block = self.blocks.get(obj.get("index"))
            if block is not None and "_json" in block:
                try:
                    block["input"] = orjson.loads(block.pop("_json") or "{}")
                except orjson.JSONDecodeError:
                    self.faithful = False
        elif kind == "message_delta" and self.message is not None:
            self.message.update(obj.get("delta") or {})
            self.message["usage"] = {
                **(self.message.get("usage") or {}),
                **(obj.get("usage") or {}),
            }
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            self.faithful = False

    def _delta(self, block: dict | None, delta: dict) -> None:
        kind = delta.get("type")
        fields = {"text_delta": "text", "thinking_delta": "thinking"}
        if block is None:
            self.faithful = False
        elif kind in fields:
            block[fields[kind]] = block.get(fields[kind], "") + (delta.get(fields[kind]) or "")
        elif kind == "input_json_delta":
            block["_json"] = block.get("_json", "") + (delta.get("partial_json") or "")
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature") or ""
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))
        else:
            self.faithful = False

    def answer(self) -> dict | None:
        if not (self.done and self.faithful and self.message is not None):
            return None
        return dict(self.message, content=[self.blocks[i] for i in sorted(self.blocks)])


class ResponsesAssembler:
    """A native Responses stream: its final event carries the whole Response."""

    def __init__(self) -> None:
        self.response: dict | None = None

    def add(self, event) -> None:
        obj = _data(event) if isinstance(event, bytes) else None
        if obj is not None and obj.get("type") in ("response.completed", "response.incomplete"):
            self.response = obj.get("response") if isinstance(obj.get("response"), dict) else None

    def answer(self) -> dict | None:
        return self.response


class CompletionsAssembler:
    """Legacy completion chunks into one ``text_completion``."""

    def __init__(self) -> None:
        self.head: dict = {}
        self.choices: dict[int, dict] = {}
        self.usage: dict | None = None
        self.faithful = True

    def add(self, event) -> None:
        if isinstance(event, UsageChunk):
            self.usage = event.chunk.get("usage")
            return
        obj = _data(event)
        if obj is None or "error" in obj:
            self.faithful = obj is None and self.faithful
            return
        for name in ("id", "created", "model", "system_fingerprint"):
            if obj.get(name) is not None:
                self.head.setdefault(name, obj[name])
        for choice in obj.get("choices") or ():
            index = choice.get("index", 0)
            out = self.choices.setdefault(
                index, {"text": "", "index": index, "logprobs": None, "finish_reason": None}
            )
            if choice.get("logprobs"):
                self.faithful = False
            out["text"] += choice.get("text") or ""
            out["finish_reason"] = choice.get("finish_reason") or out["finish_reason"]

    def answer(self) -> dict | None:
        choices = [self.choices[i] for i in sorted(self.choices)]
        if not self.faithful or not choices or any(c["finish_reason"] is None for c in choices):
            return None
        out = {"object": "text_completion", "choices": choices, **self.head}
        if self.usage is not None:
            out["usage"] = self.usage
        return out


ASSEMBLERS = {
    CHAT: ChatAssembler,
    MESSAGES: MessagesAssembler,
    RESPONSES: ResponsesAssembler,
    COMPLETIONS: CompletionsAssembler,
}


class Tap:
    """A stream parser that also hands every event it emits to an assembler; everything else
    (``usage``, ``error``, ``generated_text``) is the parser's own."""

    def __init__(self, parser, assembler) -> None:
        self._parser = parser
        self.assembler = assembler

    def feed(self, line: bytes) -> list:
        events = self._parser.feed(line)
        for event in events:
            self.assembler.add(event)
        return events

    def __getattr__(self, name: str):
        return getattr(self._parser, name)
