"""The one token path: what a request may be billed for, counted the same way everywhere.

Admission reserves ``cost_bound`` (an upper bound of what the provider may bill, so that a
block budget is a hard promise), routing checks the context window with ``prompt_tokens(...,
bound=False)`` (a fair count: a window check that used the byte-length bound would refuse
prompts that fit), and metering estimates usage the upstream did not report with the bound.

A chat prompt is billed for everything the provider reads: every message (text parts, tool
calls and their arguments, tool results), the tool and function schemas, a ``response_format``
JSON schema, images (``gateway.image_tokens``), audio and files. Output is billed per choice:
``n`` choices of at most ``max_completion_tokens`` (or ``max_tokens``, or the model's own cap,
or the cap the gateway itself sets upstream: ``output_cap``). A prompt can never be billed past
the model's context window, which bounds what cannot be measured here (a file by id).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from decimal import Decimal

import orjson

from gateway.image_tokens import image_tokens
from gateway.records import ModelRecord
from gateway.tokens import count_input, count_messages, count_text

DEFAULT_MAX_OUTPUT = 4096  # the cap set upstream when neither the client nor the model has one
MAX_CHOICES = 128  # OpenAI's limit for ``n``; more is refused at decode
PER_TOOL = 12  # framing of one function definition beyond its JSON
AUDIO_BYTES_PER_TOKEN = 32  # >= 8 kbit/s at <= 32 tokens/s of audio: a bound, not an estimate
UNMEASURED_PART = 1_000_000  # a file by id on a model with no context window configured
FAIR_FAMILY = "gpt-4o"  # the encoding a fair count uses for families tiktoken does not know


@dataclass(frozen=True, slots=True)
class Bound:
    prompt: int
    output: int  # over all choices

    def cost(self, price) -> Decimal:
        input_price = max(price.input, price.cached_input, price.cache_write)
        return self.prompt * input_price + self.output * price.output


def choices(body: dict) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def output_cap(body: dict, model: ModelRecord) -> int:
    """Per choice: what the client asked for, else the model's cap, else the gateway's own."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return model.max_output_tokens or DEFAULT_MAX_OUTPUT


def bound(api: str, body: dict, model: ModelRecord) -> Bound:
    prompt = prompt_tokens(api, body, model, bound=True)
    if api == "embeddings":
        return Bound(prompt, 0)
    return Bound(prompt, output_cap(body, model) * choices(body))


def prompt_tokens(api: str, body: dict, model: ModelRecord, *, bound: bool) -> int:
    """Prompt tokens of a request for ``model``: an upper bound (``bound=True``; families
    tiktoken does not know count UTF-8 bytes, and the context window caps the total) or a fair
    count (their text counted with the gpt-4o encoding)."""
    name = model.upstream_model
    if not bound and not count_text("", model=name)[1]:
        name = FAIR_FAMILY
    if api == "embeddings":
        return count_input(body.get("input"), model=name)
    counter = _Counter(model, name)
    total = counter.messages(body.get("messages"))
    total += counter.schemas(body)
    if bound and model.context_window:
        total = min(total, model.context_window)
    return total


class _Counter:
    """Counts the parts of one chat request with one encoding and one provider's image rule."""

    def __init__(self, model: ModelRecord, family: str) -> None:
        self.kind = model.provider.kind
        self.model = model.upstream_model
        self.family = family
        self.window = model.context_window

    def text(self, value) -> int:
        if value is None:
            return 0
        if not isinstance(value, str):
            value = orjson.dumps(value).decode()
        return count_text(value, model=self.family)[0]

    def messages(self, messages) -> int:
        """The messages' text as ``gateway.tokens.count_messages`` counts it (roles, names, text
        parts, tool calls and results), plus every part that is not text."""
        if not isinstance(messages, list):
            return 0
        total = count_messages(messages, model=self.family)
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, list):
                total += sum(self.part(p) for p in content if not _is_text(p))
            elif content is not None and not isinstance(content, str):
                total += self.text(content)
            if isinstance(message.get("function_call"), dict):
                total += self.text(message["function_call"]) + PER_TOOL
        return total

    def part(self, part) -> int:
        if not isinstance(part, dict):
            return self.text(part)
        kind = part.get("type")
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else image
            detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
            return image_tokens(self.kind, self.model, url=url or "", detail=detail)
        if kind == "input_audio":
            audio = part.get("input_audio") or {}
            data = audio.get("data", "") if isinstance(audio, dict) else ""
            return max(1, _decoded_length(data) // AUDIO_BYTES_PER_TOKEN)
        if kind == "file":
            return self.file(part.get("file") or {})
        return self.text(part)  # a part type we do not know: its JSON, counted as text

    def file(self, file) -> int:
        """A file's text costs at most a token per byte, plus an image per page of a PDF."""
        data = file.get("file_data", "") if isinstance(file, dict) else ""
        if not data:
            return self.window or UNMEASURED_PART  # by id: only the window bounds it
        raw = _decoded(data.split(",", 1)[-1])
        pages = raw.count(b"/Type /Page") - raw.count(b"/Type /Pages") if raw else 0
        page_image = image_tokens(self.kind, self.model, url="", detail="high")
        return len(raw) + max(0, pages) * page_image

    def schemas(self, body: dict) -> int:
        total = 0
        for name in ("tools", "functions"):
            tools = body.get(name)
            if isinstance(tools, list):
                total += sum(self.text(tool) + PER_TOOL for tool in tools)
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            total += self.text(response_format.get("json_schema"))
        return total


def _is_text(part) -> bool:
    return isinstance(part, dict) and isinstance(part.get("text"), str)


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return data.encode("utf-8", "replace")


def _decoded_length(data: str) -> int:
    return len(data) * 3 // 4 if isinstance(data, str) else 0
