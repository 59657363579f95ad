"""The inbound formats besides Chat Completions, and per deployment how each travels (see
``gateway.dialects.base`` for the contract and ``gateway.wires`` for its use)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway import billable
from gateway.dialects import completions, messages, responses
from gateway.dialects.base import rename_model
from gateway.records import ModelRecord

RESPONSES = "responses"
MESSAGES = "messages"
COMPLETIONS = "completions"
_OPENAI_KINDS = frozenset({"openai", "azure"})


@dataclass(frozen=True, slots=True)
class Dialect:
    api: str  # the client's format, as the ledger's ``api`` column records it
    to_chat: Callable[[dict], tuple[dict, list[str]]]
    native: Callable[[ModelRecord], bool]  # does this deployment speak it?
    native_body: Callable  # (call, model, *, stream) -> the upstream body in the client's format
    native_json: Callable[[bytes, str], bytes]
    native_stream: Callable  # (call) -> ClientStream | None (None: the chat relay as is)
    from_chat: Callable  # (chat completion object, call) -> the client's object
    client_stream: Callable  # (call) -> ClientStream


def _native_messages_body(call, model: ModelRecord, *, stream: bool) -> dict:
    body = dict(call.inbound)
    body["model"] = model.upstream_model
    body["stream"] = stream
    return body


def _native_responses_body(call, model: ModelRecord, *, stream: bool) -> dict:
    """The client's request, its conversation already expanded by the gateway's own store: so
    the upstream keeps no state (``store: false``) and needs no ``previous_response_id``."""
    body = dict(call.inbound)
    body.pop("previous_response_id", None)
    body["model"] = model.upstream_model
    body["store"] = False
    body["stream"] = stream
    if body.get("max_output_tokens") is None:
        # the reservation assumed this cap; the provider must not exceed it
        body["max_output_tokens"] = billable.output_cap(call.body, model)
    return body


def _native_completions_body(call, model: ModelRecord, *, stream: bool) -> dict:
    body = dict(call.inbound)
    body["model"] = model.upstream_model
    body["max_tokens"] = call.body.get("max_tokens") or body.get("max_tokens") or 16
    body["stream"] = stream
    if stream:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return body


def _response_id(call) -> str:
    return f"resp_{call.request_id}"


DIALECTS: dict[str, Dialect] = {
    MESSAGES: Dialect(
        api=MESSAGES,
        to_chat=messages.messages_to_chat,
        native=lambda model: model.provider.kind == "anthropic",
        native_body=_native_messages_body,
        native_json=messages.native_json,
        native_stream=lambda call: messages.NativeMessagesStream(call.requested),
        from_chat=lambda chat, call: messages.chat_to_messages(chat, model=call.requested),
        client_stream=lambda call: messages.ChatToMessagesStream(
            call.requested, messages.message_id(call.request_id)
        ),
    ),
    RESPONSES: Dialect(
        api=RESPONSES,
        to_chat=responses.responses_to_chat,
        native=lambda model: (
            model.provider.kind in _OPENAI_KINDS and model.provider.responses_native
        ),
        native_body=_native_responses_body,
        native_json=responses.native_json,
        native_stream=lambda call: responses.NativeResponsesStream(call.requested),
        from_chat=lambda chat, call: responses.chat_to_responses(
            chat, model=call.requested, response_id=_response_id(call), request=call.inbound
        ),
        client_stream=lambda call: responses.ChatToResponsesStream(
            call.requested, _response_id(call), call.inbound
        ),
    ),
    COMPLETIONS: Dialect(
        api=COMPLETIONS,
        to_chat=completions.completions_to_chat,
        native=lambda model: model.provider.kind in _OPENAI_KINDS,
        native_body=_native_completions_body,
        native_json=rename_model,
        native_stream=lambda call: None,
        from_chat=lambda chat, call: completions.chat_to_completion(chat, model=call.requested),
        client_stream=lambda call: completions.ChatToCompletionsStream(
            call.requested,
            include_usage=bool((call.inbound.get("stream_options") or {}).get("include_usage")),
        ),
    ),
}
