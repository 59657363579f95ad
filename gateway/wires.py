"""How one attempt travels: the upstream format and body, and how the answer returns to the client.

A call arrives in the client's format (``Call.dialect``; ``Call.api`` is then Chat Completions)
and is carried through the gateway as a canonical Chat Completions body (``Call.body``, see
``gateway.dialects``). Per attempt, the
deployment decides the wire:

- Chat Completions and embeddings: the body goes out as is (the provider adapter translates it
  for Anthropic), the answer comes back as is;
- a dialect the deployment serves **natively** (Messages on Anthropic, Responses on a provider
  with ``responses_api: native``, legacy Completions on OpenAI-kind providers): the client's own
  body goes upstream (model, output cap and conversation state set by the gateway) and the
  answer passes through with only ``model`` renamed;
- any other dialect: the canonical chat body goes upstream and the answer is translated back;
  a parameter the translation cannot honour is refused with a 400 naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from gateway import billable
from gateway.errors import GatewayError
from gateway.providers.base import CHAT
from gateway.records import ModelRecord


@dataclass(slots=True)
class Wire:
    api: str  # the upstream API the adapter builds the request for
    body: dict
    translated: bool
    json: Callable[[bytes], bytes]  # the upstream's 200 body -> the client's
    stream: object | None  # a gateway.dialects.base.ClientStream; None: the chat relay
    headers: dict = field(default_factory=dict)  # the client's, for a native upstream only


def _same(data: bytes) -> bytes:
    return data


# OpenAI's reasoning models refuse ``max_tokens`` ("use 'max_completion_tokens' instead"); the
# Messages and Responses translations (and older clients) send it
_REASONING = re.compile(r"^(o\d|gpt-5)")


def chat_upstream_body(call, model: ModelRecord, *, stream: bool) -> dict:
    """The canonical body as it goes upstream: the deployment's model name, the output cap the
    reservation assumed (when the client set none), ``max_tokens`` as ``max_completion_tokens``
    for an OpenAI reasoning model, and usage asked for on a stream."""
    body = dict(call.body)
    body["model"] = model.upstream_model
    if (
        call.api == CHAT
        and model.provider.kind in ("openai", "azure")
        and body.get("max_tokens") is not None
        and _REASONING.match(model.upstream_model)
    ):
        cap = body.pop("max_tokens")
        if body.get("max_completion_tokens") is None:
            body["max_completion_tokens"] = cap
    if (
        call.api == CHAT
        and body.get("max_completion_tokens") is None
        and body.get("max_tokens") is None
    ):
        # the reservation assumed this cap per choice; the provider must not exceed it
        body["max_completion_tokens"] = billable.output_cap(body, model)
    if stream:
        # always ask for usage; the usage chunk is stripped again if the client did not ask
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    return body


def wire_for(call, model: ModelRecord, *, stream: bool) -> Wire:
    dialect = call.dialect
    if dialect is None:
        return Wire(call.api, chat_upstream_body(call, model, stream=stream), False, _same, None)
    if dialect.native(model):
        body = dialect.native_body(call, model, stream=stream)
        return Wire(
            dialect.api,
            body,
            False,
            lambda data: dialect.native_json(data, call.requested),
            dialect.native_stream(call) if stream else None,
            call.passthrough,
        )
    if call.unsupported:
        names = ", ".join(call.unsupported)
        raise GatewayError(
            400,
            "unsupported_parameter",
            f"'{model.name}' is reached through Chat Completions, which cannot honour: {names}. "
            "Remove it, or route this call to a model that serves this API natively.",
            param=call.unsupported[0],
        )
    return Wire(
        CHAT,
        chat_upstream_body(call, model, stream=stream),
        True,
        lambda data: orjson.dumps(dialect.from_chat(orjson.loads(data), call)),
        dialect.client_stream(call) if stream else None,
    )
