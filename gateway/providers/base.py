"""The contract every provider adapter meets. The gateway view knows nothing of any provider:
it asks the adapter to build the upstream request, parse a response, parse stream lines and
extract usage, and always speaks OpenAI's wire format to its own clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.pricing import Usage
from gateway.records import ModelRecord

CHAT = "chat.completions"
EMBEDDINGS = "embeddings"


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class ParsedResponse:
    body: bytes  # OpenAI-shaped JSON for the client
    usage: Usage | None


@dataclass(slots=True)
class UsageChunk:
    """A stream's final usage chunk, as an OpenAI chunk object; the gateway adds the cost."""

    chunk: dict


class StreamParser(Protocol):
    usage: Usage | None

    def feed(self, line: bytes) -> list[bytes | UsageChunk]:
        """One upstream line in; OpenAI SSE events (``data: …\\n\\n``) or a usage chunk out."""

    def generated_text(self) -> str:
        """What was generated so far (for estimating usage when the upstream gives none)."""


class Adapter(Protocol):
    def build_request(
        self, *, model: ModelRecord, api: str, body: dict, stream: bool
    ) -> UpstreamRequest: ...

    def parse_response(self, *, api: str, data: bytes) -> ParsedResponse: ...

    def stream_parser(self, *, api: str, model: ModelRecord) -> StreamParser: ...

    def parse_error(self, *, status: int, data: bytes) -> tuple[str, str | None]:
        """(message, upstream error code) from an upstream error body."""
