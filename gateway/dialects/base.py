"""Inbound wire formats ("dialects") other than Chat Completions, and the contract they meet.

The gateway's core (routing, budgets, metering, shadow traffic, experiments) works on one
*canonical* request: a Chat Completions body. An inbound dialect (OpenAI Responses, Anthropic
Messages, legacy Completions) therefore provides:

- ``to_chat(body)``: the canonical Chat Completions body of an inbound request. It raises
  ``gateway.errors.GatewayError`` (400, naming the parameter) for anything that changes what the
  model is asked to do and that Chat Completions cannot express; fields that only shape the
  exchange are left out silently (see each module's docstring for its table).
- for a deployment that serves the dialect **natively** (Anthropic for Messages, a provider with
  ``responses_api: native`` for Responses), the request goes upstream in the client's own format
  and the answer comes back untouched but for ``model`` (the name the client asked for);
- for any other deployment the call goes upstream as Chat Completions (translated onto the
  provider by its adapter as today) and the answer is translated back: ``from_chat`` for a JSON
  answer, a ``ClientStream`` for a stream.

Usage always reaches the gateway as ``gateway.pricing.Usage``, whichever way the call went.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import orjson

from gateway.pricing import Usage


class ClientStream(Protocol):
    """Turns the chat chunks of a translated stream into the client's events.

    ``feed`` takes one OpenAI chat chunk *event* as the provider adapter's stream parser emits
    it (``b"data: {...}\\n\\n"``; never ``[DONE]``, never the usage chunk) and returns the bytes
    to send to the client now (possibly none). ``tail`` returns the stream's closing events
    once the upstream is done: usage (and ``cost``, the call's USD as a fixed-point string, where
    the format has room for it) on success, or the format's error event when ``status`` is
    ``"error"`` (``error_code``: ``upstream_timeout``, ``upstream_error`` or
    ``upstream_stream_error``)."""

    def feed(self, event: bytes) -> list[bytes]: ...

    def tail(self, *, usage: Usage, cost: Decimal, status: str, error_code: str) -> bytes: ...

    def generated_text(self) -> str:
        """What was generated so far (text and tool-call arguments)."""


def rename_model(data: bytes, requested: str) -> bytes:
    """A native answer with ``model`` the name the client asked for (anything but a JSON
    object goes back unchanged)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    if not isinstance(obj, dict):
        return data
    obj["model"] = requested
    return orjson.dumps(obj)


def event_parts(event: bytes) -> tuple[str, bytes]:
    """(the ``event:`` name, the joined ``data:`` lines) of one SSE event."""
    kind, data = "", []
    for line in event.splitlines():
        if line.startswith(b"event:"):
            kind = line[6:].strip().decode(errors="replace")
        elif line.startswith(b"data:"):
            data.append(line[5:].strip())
    return kind, b"\n".join(data)
