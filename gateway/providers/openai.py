"""OpenAI and every OpenAI-compatible server (vLLM, Ollama's /v1, Together, Groq, DeepSeek,
OpenRouter …). ``base_url`` is what the OpenAI SDK takes, ``/v1`` included."""

from __future__ import annotations

import orjson

from gateway.pricing import Usage
from gateway.providers.base import CHAT, ParsedResponse, UpstreamRequest, UsageChunk
from gateway.records import ModelRecord

RESPONSES = "responses"  # OpenAI's Responses API, sent natively
COMPLETIONS = "completions"  # the legacy text completions API
_PATHS = {
    CHAT: "/chat/completions",
    "embeddings": "/embeddings",
    RESPONSES: "/responses",
    COMPLETIONS: "/completions",
}
_NULL_USAGE = (b'"usage":null', b'"usage": null')
# the Responses events that carry the whole Response, its usage included
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_DELTA_EVENTS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


def responses_body(body: dict) -> dict:
    """A Responses body as it goes upstream: ``stream_options.include_usage`` is a Chat
    Completions option that the Responses API refuses (its streams always end with usage)."""
    options = body.get("stream_options")
    if not isinstance(options, dict) or "include_usage" not in options:
        return body
    options = {k: v for k, v in options.items() if k != "include_usage"}
    out = {k: v for k, v in body.items() if k != "stream_options"}
    if options:
        out["stream_options"] = options
    return out


class OpenAIAdapter:
    def build_request(
        self, *, model: ModelRecord, api: str, body: dict, stream: bool
    ) -> UpstreamRequest:
        headers = {"content-type": "application/json"}
        if model.provider.api_key:
            headers["authorization"] = f"Bearer {model.provider.api_key}"
        if api == RESPONSES:
            body = responses_body(body)
        return UpstreamRequest(
            url=model.provider.base_url + _PATHS[api], headers=headers, body=orjson.dumps(body)
        )

    def parse_response(self, *, api: str, data: bytes) -> ParsedResponse:
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            return ParsedResponse(body=data, usage=None)
        read = Usage.from_responses if api == RESPONSES else Usage.from_openai
        return ParsedResponse(body=data, usage=read(obj.get("usage")))

    def stream_parser(self, *, api: str, model: ModelRecord) -> OpenAIStream | ResponsesStream:
        return ResponsesStream() if api == RESPONSES else OpenAIStream()

    def parse_error(self, *, status: int, data: bytes) -> tuple[str, str | None]:
        try:
            err = orjson.loads(data).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            err = None
        if isinstance(err, dict):
            return str(err.get("message") or f"upstream returned {status}"), err.get("code")
        if isinstance(err, str):
            return err, None
        return f"upstream returned HTTP {status}", None


class OpenAIStream:
    """Passes chunks through untouched; only the usage chunk is parsed (and handed back)."""

    __slots__ = ("usage", "_payloads")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self._payloads: list[bytes] = []

    def feed(self, line: bytes) -> list[bytes | UsageChunk]:
        if not line.startswith(b"data:"):
            return []  # blank separators, comments, event names
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            return []  # the gateway sends its own [DONE] after the usage chunk
        if b'"usage"' in payload and not any(n in payload for n in _NULL_USAGE):
            obj = orjson.loads(payload)
            usage = obj.get("usage")
            if isinstance(usage, dict):
                self.usage = Usage.from_openai(usage)
                if obj.get("choices"):
                    # a content chunk that also carries usage: forward the content without it
                    self._payloads.append(payload)
                    content = dict(obj, usage=None)
                    return [
                        b"data: " + orjson.dumps(content) + b"\n\n",
                        UsageChunk(dict(obj, choices=[])),
                    ]
                return [UsageChunk(obj)]
        self._payloads.append(payload)
        return [b"data: " + payload + b"\n\n"]

    def generated_text(self) -> str:
        parts: list[str] = []
        for payload in self._payloads:
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            for choice in obj.get("choices") or ():
                if isinstance(choice.get("text"), str):  # a legacy completions chunk
                    parts.append(choice["text"])
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
                for call in delta.get("tool_calls") or ():
                    fn = (call or {}).get("function") or {}
                    parts.append(str(fn.get("name") or ""))
                    parts.append(str(fn.get("arguments") or ""))
        return "".join(parts)


class ResponsesStream:
    """A native Responses stream: lines in, each whole SSE event (``event:`` and ``data:``
    lines and the blank line) out untouched. The usage comes from the final event's Response
    (``response.completed``, ``.incomplete`` or ``.failed``); ``error`` is set by a
    ``response.failed`` or an ``error`` event."""

    __slots__ = ("usage", "error", "_lines", "_deltas")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.error: dict | None = None
        self._lines: list[bytes] = []
        self._deltas: list[str] = []

    def feed(self, line: bytes) -> list[bytes | UsageChunk]:
        line = line.rstrip(b"\r\n")
        if not line.strip():
            return self._flush()
        out: list[bytes | UsageChunk] = []
        if line.startswith(b"event:") and any(x.startswith(b"data:") for x in self._lines):
            out = self._flush()  # a new event without the blank line before it
        self._lines.append(line)
        return out

    def _flush(self) -> list[bytes | UsageChunk]:
        lines, self._lines = self._lines, []
        if not lines:
            return []
        kind = ""
        data = []
        for line in lines:
            if line.startswith(b"event:"):
                kind = line[6:].strip().decode(errors="replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        payload = b"\n".join(data)
        if payload == b"[DONE]":
            return []
        if payload and (
            not kind or kind in _FINAL_EVENTS or kind in _DELTA_EVENTS or kind == "error"
        ):
            self._inspect(kind, payload)
        return [b"\n".join(lines) + b"\n\n"]

    def _inspect(self, kind: str, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if isinstance(event.get("type"), str):
            kind = event["type"]
        if kind in _DELTA_EVENTS:
            self._deltas.append(str(event.get("delta") or ""))
            return
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        if kind in _FINAL_EVENTS and isinstance(response.get("usage"), dict):
            self.usage = Usage.from_responses(response["usage"])
        if kind == "response.failed":
            self.error = response.get("error") or {"message": "response failed"}
        elif kind == "error":
            self.error = event

    def generated_text(self) -> str:
        return "".join(self._deltas)
