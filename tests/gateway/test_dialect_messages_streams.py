"""Messages streams: chat chunks translated into Anthropic's event sequence, and an Anthropic
deployment's events passed through natively, checked with the official SDKs' types."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import ErrorResponse, RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk

from gateway.dialects.messages import ChatToMessagesStream, NativeMessagesStream
from gateway.pricing import Usage
from gateway.providers.anthropic import AnthropicAdapter, AnthropicNativeStream
from gateway.records import ModelRecord, ProviderRecord

EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)
CHUNK = {"id": "chatcmpl-9x", "object": "chat.completion.chunk", "created": 1733000000}


def chunk(delta: dict, finish: str | None = None) -> dict:
    return dict(
        CHUNK,
        model="gpt-4o-2024-08-06",
        choices=[{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    )


def call(index: int, *, arguments: str, id_: str | None = None, name: str | None = None) -> dict:
    out: dict = {"index": index, "function": {"arguments": arguments}}
    if id_:
        out.update(id=id_, type="function")
        out["function"]["name"] = name
    return {"tool_calls": [out]}


# what OpenAI streams for "some text, then two tool calls" (usage comes in a last chunk the
# provider adapter holds back, so the dialect never sees it)
CHAT_CHUNKS = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Let me"}),
    chunk({"content": " check both."}),
    chunk(call(0, arguments="", id_="call_P", name="get_weather")),
    chunk(call(0, arguments='{"city"')),
    chunk(call(0, arguments=': "Paris"}')),
    chunk(call(1, arguments="", id_="call_L", name="get_weather")),
    chunk(call(1, arguments='{"city": ')),
    chunk(call(1, arguments='"London"}')),
    chunk({}, "tool_calls"),
]
USAGE = Usage(uncached_input=176, cached_input=1024, cache_write=0, output=58)


def parse_events(data: bytes) -> list[tuple[str, dict]]:
    """(event name, data) of each SSE event; every event is ``event: NAME\\ndata: JSON``."""
    assert data.endswith(b"\n\n")
    events = []
    for raw in data[:-2].split(b"\n\n"):
        name_line, data_line = raw.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        payload = orjson.loads(data_line[6:])
        assert payload["type"] == name_line[7:].decode()
        events.append((payload["type"], payload))
    return events


def translate(chunks: list[dict], **tail) -> list[tuple[str, dict]]:
    stream = ChatToMessagesStream("claude-sonnet", "msg_9x")
    out = b""
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
        out += b"".join(stream.feed(b"data: " + orjson.dumps(c) + b"\n\n"))
    tail = {"usage": USAGE, "cost": Decimal("0.0012"), "status": "ok", "error_code": ""} | tail
    return parse_events(out + stream.tail(**tail))


def test_text_then_two_tool_calls_become_anthropics_event_sequence():
    events = translate(CHAT_CHUNKS)
    names = [
        (n, e.get("index"), (e.get("content_block") or e.get("delta") or {}).get("type"))
        for n, e in events
    ]
    assert names == [
        ("message_start", None, None),
        ("content_block_start", 0, "text"),
        ("content_block_delta", 0, "text_delta"),
        ("content_block_delta", 0, "text_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "tool_use"),
        ("content_block_delta", 1, "input_json_delta"),
        ("content_block_delta", 1, "input_json_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    # the SDK's own accumulator rebuilds the message from the events
    snapshot, json_bufs = None, {}
    for _, payload in events:
        snapshot = accumulate_event(
            event=EVENT.validate_python(payload), current_snapshot=snapshot, json_bufs=json_bufs
        )
    message = snapshot.model_dump(exclude_none=True)
    assert message["id"] == "msg_9x" and message["model"] == "claude-sonnet"
    assert message["content"] == [
        {"type": "text", "text": "Let me check both."},
        {"type": "tool_use", "id": "call_P", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_L", "name": "get_weather", "input": {"city": "London"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 176,
        "output_tokens": 58,
        "cache_read_input_tokens": 1024,
        "cache_creation_input_tokens": 0,
    }
    start = events[0][1]["message"]
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}  # known only at the end


def test_generated_text_holds_text_and_tool_arguments():
    stream = ChatToMessagesStream("m", "msg_1")
    for c in CHAT_CHUNKS:
        stream.feed(b"data: " + orjson.dumps(c) + b"\n\n")
    text = stream.generated_text()
    assert text.startswith("Let me check both.") and '"London"}' in text


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_a_text_stream_ends_with_the_stop_reason_and_usage(finish, stop_reason):
    events = translate(
        [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}, finish)]
    )
    for _, payload in events:
        EVENT.validate_python(payload)
    assert [n for n, _ in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2][1]["delta"] == {"stop_reason": stop_reason, "stop_sequence": None}


def test_an_empty_stream_still_is_a_whole_message():
    events = translate([])
    assert [n for n, _ in events] == ["message_start", "message_delta", "message_stop"]
    for _, payload in events:
        EVENT.validate_python(payload)


def test_a_broken_stream_ends_with_an_error_event():
    events = translate(CHAT_CHUNKS[:3], status="error", error_code="upstream_timeout")
    assert events[-1][0] == "error" and "message_delta" not in [n for n, _ in events]
    error = ErrorResponse.model_validate(events[-1][1])
    assert error.error.type == "api_error" and "timed out" in error.error.message


def test_an_upstream_error_chunk_becomes_the_error_event_and_ends_the_stream():
    stream = ChatToMessagesStream("m", "msg_1")
    stream.feed(b"data: " + orjson.dumps(CHAT_CHUNKS[1]) + b"\n\n")
    error = {"error": {"message": "Overloaded", "type": "api_error", "param": None, "code": None}}
    out = parse_events(b"".join(stream.feed(b"data: " + orjson.dumps(error) + b"\n\n")))
    assert out == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "Overloaded"}})
    ]
    assert stream.feed(b"data: " + orjson.dumps(CHAT_CHUNKS[2]) + b"\n\n") == []
    assert stream.tail(usage=USAGE, cost=Decimal(0), status="error", error_code="x") == b""


# --- native ---------------------------------------------------------------------------------

# an Anthropic stream with thinking, text, a tool call and prompt caching, as sent on the wire
TRANSCRIPT = b"".join(
    f"event: {e['type']}\ndata: {orjson.dumps(e).decode()}\n\n".encode()
    for e in [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01XFD",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-5-20250929",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 472,
                    "cache_creation_input_tokens": 2048,
                    "cache_read_input_tokens": 10240,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 2048,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "output_tokens": 3,
                    "service_tier": "standard",
                },
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Paris is in France; "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "use celsius."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {
                "type": "signature_delta",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
            },
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Checking the weather."},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": 'is", "unit": "celsius"}'},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 161},
        },
        {"type": "message_stop"},
    ]
)
MODEL = ModelRecord(
    name="claude",
    upstream_model="claude-sonnet-4-5-20250929",
    mode="chat",
    max_output_tokens=8192,
    provider=ProviderRecord(
        slug="c", kind="anthropic", base_url="https://a.example", api_key="k", api_version=""
    ),
    prices=(),
)


def lines(data: bytes, ending: bytes = b"\n") -> list[bytes]:
    """The stream as aiohttp yields it: line by line, endings kept."""
    return [line + ending for line in data.split(b"\n")[:-1]]


def native(data: bytes, ending: bytes = b"\n"):
    parser = AnthropicAdapter().stream_parser(api="messages", model=MODEL)
    assert isinstance(parser, AnthropicNativeStream)
    events = [e for line in lines(data, ending) for e in parser.feed(line)]
    return parser, events


def test_the_native_parser_emits_whole_events_unchanged_and_reads_usage():
    parser, events = native(TRANSCRIPT)
    assert b"".join(events) == TRANSCRIPT
    assert len(events) == 17 and all(e.endswith(b"\n\n") and e.count(b"\n\n") == 1 for e in events)
    assert parser.usage == Usage(
        uncached_input=472, cached_input=10240, cache_write=2048, output=161
    )
    assert not parser.error
    assert parser.generated_text() == 'Checking the weather.{"city": "Paris", "unit": "celsius"}'
    for event in events:
        payload = orjson.loads(event.split(b"\ndata: ", 1)[1])
        if payload["type"] != "ping":
            EVENT.validate_python(payload)


def test_crlf_lines_and_comments_are_normalised():
    with_comment = b": keep-alive\n\n" + TRANSCRIPT
    parser, events = native(with_comment, b"\r\n")
    assert b"".join(events) == TRANSCRIPT
    assert parser.usage.output == 161


def test_the_client_stream_passes_events_through_with_the_requested_model():
    _, events = native(TRANSCRIPT)
    client = NativeMessagesStream("my-claude")
    out = [piece for e in events for piece in client.feed(e)]
    assert out[1:] == events[1:]  # byte for byte
    start = orjson.loads(out[0].split(b"\ndata: ", 1)[1])
    expected = orjson.loads(events[0].split(b"\ndata: ", 1)[1])
    expected["message"]["model"] = "my-claude"
    assert start == expected and out[0].startswith(b"event: message_start\ndata: ")
    assert client.tail(usage=Usage(), cost=Decimal(0), status="ok", error_code="") == b""
    assert client.generated_text() == 'Checking the weather.{"city": "Paris", "unit": "celsius"}'


def test_an_upstream_error_event_is_passed_on_once():
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    data = (
        TRANSCRIPT.split(b"event: content_block_start")[0]
        + b"event: error\ndata: "
        + orjson.dumps(error)
        + b"\n\n"
    )
    parser, events = native(data)
    assert parser.error == {"type": "overloaded_error", "message": "Overloaded"}
    assert parser.usage == Usage(uncached_input=472, cached_input=10240, cache_write=2048, output=3)
    client = NativeMessagesStream("my-claude")
    out = [piece for e in events for piece in client.feed(e)]
    assert out[-1] == events[-1]
    tail = client.tail(
        usage=Usage(), cost=Decimal(0), status="error", error_code="upstream_stream_error"
    )
    assert tail == b""  # the upstream's own error event ended the stream


def test_a_stream_that_breaks_gets_a_closing_error_event():
    client = NativeMessagesStream("my-claude")
    _, events = native(TRANSCRIPT)
    for e in events[:5]:
        client.feed(e)
    tail = client.tail(
        usage=Usage(), cost=Decimal(0), status="error", error_code="upstream_timeout"
    )
    ((name, payload),) = parse_events(tail)
    assert name == "error"
    assert ErrorResponse.model_validate(payload).error.type == "api_error"


def test_a_last_event_without_its_blank_line_is_flushed():
    parser = AnthropicNativeStream()
    for line in lines(TRANSCRIPT)[:-1]:  # the final blank line never came
        parser.feed(line)
    assert parser.flush() == [b'event: message_stop\ndata: {"type":"message_stop"}\n\n']
    assert parser.flush() == []
