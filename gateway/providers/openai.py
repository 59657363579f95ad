"""OpenAI and every OpenAI-compatible server (vLLM, Ollama's /v1, Together, Groq, DeepSeek,
OpenRouter …). ``base_url`` is what the OpenAI SDK takes, ``/v1`` included."""

from __future__ import annotations

import orjson

from gateway.pricing import Usage
from gateway.providers.base import CHAT, ParsedResponse, UpstreamRequest, UsageChunk
from gateway.records import ModelRecord

_PATHS = {CHAT: "/chat/completions", "embeddings": "/embeddings"}
_NULL_USAGE = (b'"usage":null', b'"usage": null')


class OpenAIAdapter:
    def build_request(
        self, *, model: ModelRecord, api: str, body: dict, stream: bool
    ) -> UpstreamRequest:
        headers = {"content-type": "application/json"}
        if model.provider.api_key:
            headers["authorization"] = f"Bearer {model.provider.api_key}"
        return UpstreamRequest(
            url=model.provider.base_url + _PATHS[api], headers=headers, body=orjson.dumps(body)
        )

    def parse_response(self, *, api: str, data: bytes) -> ParsedResponse:
        obj = orjson.loads(data)
        usage = Usage.from_openai(obj.get("usage")) if isinstance(obj, dict) else None
        return ParsedResponse(body=data, usage=usage)

    def stream_parser(self, *, api: str, model: ModelRecord) -> OpenAIStream:
        return OpenAIStream()

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
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
                for call in delta.get("tool_calls") or ():
                    fn = (call or {}).get("function") or {}
                    parts.append(str(fn.get("name") or ""))
                    parts.append(str(fn.get("arguments") or ""))
        return "".join(parts)
