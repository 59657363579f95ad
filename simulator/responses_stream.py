"""The Responses API's SSE stream, in the order OpenAI sends it, each event named by its
``type`` and numbered by ``sequence_number`` from 0:

``response.created``, ``response.in_progress`` (the response with status ``in_progress``, no
output, no usage); then per output item ``response.output_item.added`` … and
``response.output_item.done``. Between them, a message has ``response.content_part.added``,
``response.output_text.delta`` per piece, ``response.output_text.done`` and
``response.content_part.done``; a function call has ``response.function_call_arguments.delta``
per piece and ``response.function_call_arguments.done`` (with the function's ``name``); a
reasoning item with a summary has ``response.reasoning_summary_part.added``,
``response.reasoning_summary_text.delta`` per piece, ``response.reasoning_summary_text.done``
and ``response.reasoning_summary_part.done`` (without one, nothing). Last,
``response.completed`` — or ``response.incomplete`` when the output cap was reached — with the
whole response and its usage."""

from __future__ import annotations

from simulator.tokens import split
from simulator.wire import event, group


class _Events:
    def __init__(self) -> None:
        self.events: list[tuple[bytes, bool]] = []

    def add(self, kind: str, payload: dict, *, delta: bool = False) -> None:
        body = {"type": kind, "sequence_number": len(self.events), **payload}
        self.events.append((event(kind.encode(), body), delta))


def _message(out: _Events, index: int, item: dict, chunks: int) -> None:
    where = {"item_id": item["id"], "output_index": index}
    part = item["content"][0]
    text = part["text"]
    out.add("response.output_item.added", {"output_index": index, "item": _opened(item)})
    empty = dict(part, text="")
    out.add("response.content_part.added", {**where, "content_index": 0, "part": empty})
    for piece in split(text, chunks):
        body = {**where, "content_index": 0, "delta": piece, "logprobs": []}
        out.add("response.output_text.delta", body, delta=True)
    done = {**where, "content_index": 0, "text": text, "logprobs": []}
    out.add("response.output_text.done", done)
    out.add("response.content_part.done", {**where, "content_index": 0, "part": part})
    out.add("response.output_item.done", {"output_index": index, "item": item})


def _function_call(out: _Events, index: int, item: dict, chunks: int) -> None:
    where = {"item_id": item["id"], "output_index": index}
    arguments = item["arguments"]
    out.add("response.output_item.added", {"output_index": index, "item": _opened(item)})
    for piece in split(arguments, chunks):
        out.add("response.function_call_arguments.delta", {**where, "delta": piece}, delta=True)
    done = {**where, "name": item["name"], "arguments": arguments}
    out.add("response.function_call_arguments.done", done)
    out.add("response.output_item.done", {"output_index": index, "item": item})


def _reasoning(out: _Events, index: int, item: dict, chunks: int) -> None:
    where = {"item_id": item["id"], "output_index": index}
    out.add("response.output_item.added", {"output_index": index, "item": _opened(item)})
    for number, part in enumerate(item["summary"]):
        at = {**where, "summary_index": number}
        out.add("response.reasoning_summary_part.added", {**at, "part": dict(part, text="")})
        for piece in split(part["text"], chunks):
            out.add("response.reasoning_summary_text.delta", {**at, "delta": piece}, delta=True)
        out.add("response.reasoning_summary_text.done", {**at, "text": part["text"]})
        out.add("response.reasoning_summary_part.done", {**at, "part": part})
    out.add("response.output_item.done", {"output_index": index, "item": item})


def _opened(item: dict) -> dict:
    """An output item as ``output_item.added`` shows it: in progress, nothing in it yet."""
    if item["type"] == "message":
        return dict(item, status="in_progress", content=[])
    if item["type"] == "function_call":
        return dict(item, status="in_progress", arguments="")
    if item["type"] == "reasoning":
        return dict(item, summary=[])
    return item


def stream_events(response: dict, *, chunks: int) -> tuple[bytes, list[bytes], bytes]:
    """(the events up to the first delta, each delta with what comes just before it, the
    rest) for the finished ``response``."""
    out = _Events()
    opening = dict(
        response,
        status="in_progress",
        output=[],
        usage=None,
        completed_at=None,
        incomplete_details=None,
    )
    out.add("response.created", {"response": opening})
    out.add("response.in_progress", {"response": opening})
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            _message(out, index, item, chunks)
        elif item["type"] == "function_call":
            _function_call(out, index, item, chunks)
        else:
            _reasoning(out, index, item, chunks)
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    out.add(final, {"response": response})
    return group(out.events)
