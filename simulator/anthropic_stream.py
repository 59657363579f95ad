"""Anthropic's named-event SSE stream for one message, in the order the Messages API sends it:
``message_start`` (the message with no content, ``output_tokens`` at most 1), then per content
block ``content_block_start`` (the first followed by a ``ping``), its deltas and
``content_block_stop``; last ``message_delta`` (stop reason, usage) and ``message_stop``.

Deltas: a ``thinking`` block streams ``thinking_delta`` pieces then one ``signature_delta``;
``text`` streams ``text_delta`` pieces; ``tool_use`` streams its input's JSON as
``input_json_delta`` pieces."""

from __future__ import annotations

import orjson

from simulator.tokens import split
from simulator.wire import event, group


def _delta(index: int, delta: dict) -> tuple[bytes, bool]:
    body = {"type": "content_block_delta", "index": index, "delta": delta}
    return event(b"content_block_delta", body), True


def _block_events(index: int, block: dict, chunks: int) -> list[tuple[bytes, bool]]:
    kind = block["type"]
    if kind == "thinking":
        empty = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [
            _delta(index, {"type": "thinking_delta", "thinking": piece})
            for piece in split(block["thinking"], chunks)
        ]
        deltas.append(_delta(index, {"type": "signature_delta", "signature": block["signature"]}))
    elif kind == "tool_use":
        empty = dict(block, input={})
        arguments = orjson.dumps(block["input"]).decode() if block["input"] else ""
        deltas = [
            _delta(index, {"type": "input_json_delta", "partial_json": piece})
            for piece in split(arguments, chunks)
        ]
    else:
        empty = dict(block, text="")
        deltas = [
            _delta(index, {"type": "text_delta", "text": piece})
            for piece in split(block["text"], chunks)
        ]
    start = {"type": "content_block_start", "index": index, "content_block": empty}
    events = [(event(b"content_block_start", start), False)]
    if index == 0:
        events.append((event(b"ping", {"type": "ping"}), False))
    events.extend(deltas)
    stop = {"type": "content_block_stop", "index": index}
    events.append((event(b"content_block_stop", stop), False))
    return events


def stream_events(message: dict, usage: dict | None, chunks: int):
    """(message_start and the first block's start, each delta with the events just before it,
    the rest) for the finished ``message`` and its ``usage`` (None: reported nowhere)."""
    start = dict(message, content=[], stop_reason=None, stop_sequence=None)
    start.pop("usage", None)
    if usage is not None:
        start["usage"] = dict(usage, output_tokens=min(1, usage["output_tokens"]))
    events = [(event(b"message_start", {"type": "message_start", "message": start}), False)]
    for index, block in enumerate(message["content"]):
        events.extend(_block_events(index, block, chunks))
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
    }
    if usage is not None:
        delta["usage"] = {
            "input_tokens": usage["input_tokens"],
            "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
            "cache_read_input_tokens": usage["cache_read_input_tokens"],
            "output_tokens": usage["output_tokens"],
        }
    events.append((event(b"message_delta", delta), False))
    events.append((event(b"message_stop", {"type": "message_stop"}), False))
    return group(events)
