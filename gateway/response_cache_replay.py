"""The response cache's entries, and their replay in the client's format.

An entry keeps the answer in the format it came back in from the upstream (``f``): a Chat
Completions object (``chat.completions``: chat clients, and every dialect whose call went
upstream translated onto chat) or an embeddings list — both rendered for any inbound format
by the dialects' own translators (``from_chat``, ``client_stream``) — or, when the call went
upstream natively (Messages on Anthropic, Responses, legacy Completions), that format's own
object, replayed to a client of that format only. A stream is stored once complete,
assembled into the non-stream answer (``gateway.response_cache_assemble``); a hit replays a
stream in the event shapes the gateway sends (one delta per content block rather than the
upstream's chunking), usage last.

An entry (orjson): ``{"v": 1, "f": format, "a": answer, "u": [uncached input, cached input,
cache write, output, estimated], "m": the configured model that answered, "t": stored at}``.
"""

from __future__ import annotations

import time
from decimal import Decimal

import orjson

from gateway.dialects.messages import message_id, sse
from gateway.pricing import Usage
from gateway.providers.base import CHAT, EMBEDDINGS
from gateway.response_cache_assemble import COMPLETIONS, MESSAGES, RESPONSES

ZERO = Decimal(0)


def entry_usage(entry: dict) -> Usage:
    uncached, cached, written, output, estimated = entry["u"]
    return Usage(uncached, cached, written, output, bool(estimated))


def usage_vector(usage: Usage) -> list[int]:
    return [
        usage.uncached_input,
        usage.cached_input,
        usage.cache_write,
        usage.output,
        int(usage.estimated),
    ]


def renderable(entry: dict, call) -> bool:
    """Can this entry answer this call, in the client's format?"""
    kind = entry.get("f")
    if kind == CHAT:
        return call.api == CHAT
    if kind == EMBEDDINGS:
        return call.api == EMBEDDINGS and call.dialect is None
    return call.dialect is not None and call.dialect.api == kind


# --- JSON hits --------------------------------------------------------------------------------


def _fresh(entry: dict, call) -> dict:
    """The stored answer under this request's own id (ids stay unique per response: the
    Responses store keys by them) and the name the client asked for where the format echoes it."""
    answer = dict(entry["a"])
    kind = entry["f"]
    rid = call.request_id
    if kind == CHAT:
        answer["id"] = f"chatcmpl-{rid}"
    elif kind == MESSAGES:
        answer.update(id=message_id(f"x-{rid}"), model=call.requested)
    elif kind == RESPONSES:
        answer.update(id=f"resp_{rid}", model=call.requested, created_at=int(time.time()))
    elif kind == COMPLETIONS:
        answer.update(id=f"cmpl-{rid}", model=call.requested)
    return answer


def render_json(entry: dict, call) -> bytes:
    answer = _fresh(entry, call)
    if entry["f"] == CHAT and call.dialect is not None:
        return orjson.dumps(call.dialect.from_chat(answer, call))
    return orjson.dumps(answer)


# --- stream hits ------------------------------------------------------------------------------


def _chunk(base: dict, choices: list, **extra) -> bytes:
    return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"


def chat_chunks(answer: dict) -> list[bytes]:
    """A chat completion as the chunks of its stream: per choice the role, each text field in
    one delta, each tool call in one delta, the finish reason (usage is the tail's)."""
    base = {
        "id": answer.get("id", ""),
        "object": "chat.completion.chunk",
        "created": answer.get("created", int(time.time())),
        "model": answer.get("model", ""),
    }
    if answer.get("system_fingerprint"):
        base["system_fingerprint"] = answer["system_fingerprint"]
    out = []
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        role = {"role": message.get("role") or "assistant", "content": ""}
        out.append(_chunk(base, [{"index": index, "delta": role, "finish_reason": None}]))
        for name, value in message.items():
            if name not in ("role", "tool_calls") and isinstance(value, str) and value:
                delta = {"index": index, "delta": {name: value}, "finish_reason": None}
                out.append(_chunk(base, [delta]))
        for i, call in enumerate(message.get("tool_calls") or ()):
            fn = call.get("function") or {}
            piece = {
                "index": i,
                "id": call.get("id"),
                "type": call.get("type") or "function",
                "function": {"name": fn.get("name") or "", "arguments": fn.get("arguments") or ""},
            }
            delta = {"index": index, "delta": {"tool_calls": [piece]}, "finish_reason": None}
            out.append(_chunk(base, [delta]))
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        out.append(_chunk(base, [finish]))
    return out


def _chat_tail(call, answer: dict, usage: Usage) -> bytes:
    if not (call.body.get("stream_options") or {}).get("include_usage"):
        return b"data: [DONE]\n\n"
    summary = dict(answer.get("usage") or {})
    summary.setdefault("prompt_tokens", usage.prompt_tokens)
    summary.setdefault("completion_tokens", usage.output)
    summary.setdefault("total_tokens", usage.prompt_tokens + usage.output)
    summary["cost"] = 0
    base = {
        "id": answer.get("id", ""),
        "object": "chat.completion.chunk",
        "created": answer.get("created", int(time.time())),
        "model": answer.get("model", ""),
    }
    return _chunk(base, [], usage=summary) + b"data: [DONE]\n\n"


def render_stream(entry: dict, call) -> tuple[bytes, object]:
    """The whole replayed stream, and what the call's ``on_answer`` is given (the client
    stream object, whose ``response`` the Responses store keeps)."""
    answer = _fresh(entry, call)
    usage = entry_usage(entry)
    kind = entry["f"]
    if kind == CHAT:
        chunks = chat_chunks(answer)
        if call.dialect is None:
            return b"".join(chunks) + _chat_tail(call, answer, usage), None
        out = call.dialect.client_stream(call)
        parts = [data for chunk in chunks for data in out.feed(chunk)]
        parts.append(out.tail(usage=usage, cost=ZERO, status="ok", error_code=""))
        return b"".join(parts), out
    if kind == MESSAGES:
        return b"".join(messages_events(answer)), None
    if kind == RESPONSES:
        return b"".join(responses_events(answer)), _Replayed(answer)
    include = bool(((call.inbound or {}).get("stream_options") or {}).get("include_usage"))
    return completions_stream(answer, include_usage=include), None


class _Replayed:
    """What ``on_answer`` reads of a replayed native Responses stream."""

    def __init__(self, response: dict) -> None:
        self.response = response


def messages_events(message: dict) -> list[bytes]:
    """A ``Message`` as Anthropic's event sequence."""
    usage = dict(message.get("usage") or {})
    start = dict(message, content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = dict(usage, output_tokens=0)
    out = [sse("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message.get("content") or ()):
        kind = block.get("type")
        opened, deltas = dict(block), []
        if kind == "text":
            opened["text"] = ""
            deltas.append({"type": "text_delta", "text": block.get("text") or ""})
        elif kind == "tool_use":
            opened["input"] = {}
            partial = orjson.dumps(block.get("input") or {}).decode()
            deltas.append({"type": "input_json_delta", "partial_json": partial})
        elif kind == "thinking":
            opened.update(thinking="", signature="")
            deltas.append({"type": "thinking_delta", "thinking": block.get("thinking") or ""})
            deltas.append({"type": "signature_delta", "signature": block.get("signature") or ""})
        start_event = {"type": "content_block_start", "index": index, "content_block": opened}
        out.append(sse("content_block_start", start_event))
        for delta in deltas:
            event = {"type": "content_block_delta", "index": index, "delta": delta}
            out.append(sse("content_block_delta", event))
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    out.append(sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    out.append(sse("message_stop", {"type": "message_stop"}))
    return out


def responses_events(response: dict) -> list[bytes]:
    """A Response as the Responses event sequence (created, in progress, each output item
    opened, filled and closed, then completed or incomplete with the whole Response)."""
    out: list[bytes] = []

    def emit(kind: str, **fields) -> None:
        payload = {"type": kind, "sequence_number": len(out), **fields}
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

    shell = dict(response, status="in_progress", output=[], usage=None, completed_at=None)
    emit("response.created", response=shell)
    emit("response.in_progress", response=shell)
    for oi, item in enumerate(response.get("output") or ()):
        kind = item.get("type")
        if kind == "message":
            emit("response.output_item.added", output_index=oi, item=dict(item, content=[]))
            for ci, part in enumerate(item.get("content") or ()):
                _response_part(emit, item.get("id"), oi, ci, part)
        elif kind == "function_call":
            opened = dict(item, status="in_progress", arguments="")
            emit("response.output_item.added", output_index=oi, item=opened)
            where = {"item_id": item.get("id"), "output_index": oi}
            emit("response.function_call_arguments.delta", **where, delta=item.get("arguments"))
            emit(
                "response.function_call_arguments.done",
                **where,
                name=item.get("name"),
                arguments=item.get("arguments"),
            )
        else:
            emit("response.output_item.added", output_index=oi, item=item)
        emit("response.output_item.done", output_index=oi, item=item)
    final = (
        "response.incomplete" if response.get("status") == "incomplete" else "response.completed"
    )
    emit(final, response=response)
    return out


def _response_part(emit, item_id, oi: int, ci: int, part: dict) -> None:
    where = {"item_id": item_id, "output_index": oi, "content_index": ci}
    field = {"output_text": "text", "refusal": "refusal"}.get(part.get("type"))
    if field is None:
        emit("response.content_part.added", **where, part=part)
    else:
        emit("response.content_part.added", **where, part=dict(part, **{field: ""}))
        extra = {"logprobs": []} if field == "text" else {}
        emit(f"response.{part['type']}.delta", **where, delta=part.get(field) or "", **extra)
        emit(f"response.{part['type']}.done", **where, **{field: part.get(field) or ""}, **extra)
    emit("response.content_part.done", **where, part=part)


def completions_stream(answer: dict, *, include_usage: bool) -> bytes:
    base = {k: v for k, v in answer.items() if k not in ("choices", "usage")}
    parts = [_chunk(base, [choice]) for choice in answer.get("choices") or ()]
    if include_usage and isinstance(answer.get("usage"), dict):
        parts.append(_chunk(base, [], usage=dict(answer["usage"], cost=0)))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)
