"""Responses streams without the network: chat chunks turned into OpenAI's event sequence, a
native Responses stream parsed by the adapter (usage, errors) and passed through with only the
model rewritten, and the adapters' native Responses and legacy completions requests. Events
are checked with the SDK's ``ResponseStreamEvent`` union and OpenAI's published schema."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.dialects.responses import ChatToResponsesStream, NativeResponsesStream, native_json
from gateway.pricing import Usage
from gateway.providers.azure import AzureAdapter
from gateway.providers.openai import OpenAIAdapter, OpenAIStream, ResponsesStream
from gateway.records import ModelRecord, ProviderRecord
from tests.openai_schema import assert_valid

EVENT = TypeAdapter(ResponseStreamEvent)
REQUEST = {
    "model": "weather-bot",
    "input": "Weather in Paris and Rome?",
    "instructions": "Be brief.",
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        }
    ],
    "stream": True,
}


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1741569952,
        "model": "gpt-4.1-2025-04-14",
        "service_tier": "default",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _call(index: int, *, call_id: str | None = None, name: str | None = None, args: str = ""):
    call: dict = {"index": index, "function": {"arguments": args}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


# what OpenAI's chat API streams for a text answer followed by two parallel tool calls
CHAT_CHUNKS = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"content": "Checking"}),
    _chunk({"content": " both cities."}),
    _chunk(_call(0, call_id="call_paris", name="get_weather")),
    _chunk(_call(0, args='{"ci')),
    _chunk(_call(0, args='ty":"Paris"}')),
    _chunk(_call(1, call_id="call_rome", name="get_weather")),
    _chunk(_call(1, args='{"city":')),
    _chunk(_call(1, args='"Rome"}')),
    _chunk({}, "tool_calls"),
]


def _events(data: bytes) -> list[dict]:
    """Split an SSE body into event payloads, checking each ``event:`` names its ``type``."""
    events = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        payload = orjson.loads(lines[1][6:])
        assert payload["type"] == lines[0][7:]
        events.append(payload)
    return events


def _check(events: list[dict]) -> None:
    for event in events:
        EVENT.validate_python(event)
        assert_valid("ResponseStreamEvent", event)
    numbers = [e["sequence_number"] for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def _run(chunks: list[bytes], **tail) -> tuple[ChatToResponsesStream, list[dict]]:
    stream = ChatToResponsesStream("weather-bot", "resp_s1", REQUEST)
    out = b"".join(b"".join(stream.feed(c)) for c in chunks)
    defaults = {"usage": Usage(), "cost": Decimal(0), "status": "ok", "error_code": ""}
    out += stream.tail(**(defaults | tail))
    events = _events(out)
    _check(events)
    return stream, events


def test_text_and_two_tool_calls_give_the_full_event_sequence():
    usage = Usage(uncached_input=176, cached_input=1024, output=90)
    stream, events = _run(CHAT_CHUNKS, usage=usage, cost=Decimal("0.000812"))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["sequence_number"] == 0
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["id"] == "resp_s1" and created["model"] == "weather-bot"
    message_id = events[2]["item"]["id"]
    assert events[2]["item"]["status"] == "in_progress" and events[2]["output_index"] == 0
    assert {e["item_id"] for e in events[3:8]} == {message_id}
    assert events[6]["text"] == "Checking both cities."
    assert events[8]["item"]["status"] == "completed"
    paris, rome = events[9]["item"], events[14]["item"]
    assert rome["call_id"] == "call_rome" and rome["status"] == "in_progress"
    assert (paris["call_id"], paris["name"], paris["arguments"]) == (
        "call_paris",
        "get_weather",
        "",
    )
    assert events[9]["output_index"] == 1 and events[14]["output_index"] == 2
    assert events[12]["arguments"] == '{"city":"Paris"}' and events[12]["name"] == "get_weather"
    assert events[17]["arguments"] == '{"city":"Rome"}'
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["model"] == "weather-bot"
    assert done["instructions"] == "Be brief." and done["tools"][0]["name"] == "get_weather"
    assert [item["type"] for item in done["output"]] == [
        "message",
        "function_call",
        "function_call",
    ]
    assert done["output"][0]["content"][0]["text"] == "Checking both cities."
    assert [i["arguments"] for i in done["output"][1:]] == ['{"city":"Paris"}', '{"city":"Rome"}']
    assert all(item["status"] == "completed" for item in done["output"])
    assert done["usage"] == {
        "input_tokens": 1200,
        "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
        "output_tokens": 90,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 1290,
        "cost": "0.000812",
    }
    assert stream.generated_text() == (
        'Checking both cities.get_weather{"city":"Paris"}get_weather{"city":"Rome"}'
    )


def test_a_length_cut_ends_incomplete():
    chunks = [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Once upon"})]
    _, events = _run([*chunks, _chunk({}, "length")])
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["status"] == "incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["output"][0]["status"] == "incomplete"
    assert events[-2]["type"] == "response.output_item.done"


def test_a_refusal_streams_as_refusal_events():
    chunks = [_chunk({"role": "assistant", "refusal": "I can't"}), _chunk({"refusal": " help."})]
    _, events = _run([*chunks, _chunk({}, "stop")])
    kinds = [e["type"] for e in events]
    assert "response.refusal.delta" in kinds and "response.output_text.delta" not in kinds
    done = next(e for e in events if e["type"] == "response.refusal.done")
    assert done["refusal"] == "I can't help."


def test_an_upstream_failure_ends_with_response_failed():
    _, events = _run(CHAT_CHUNKS[:3], status="error", error_code="upstream_timeout")
    assert events[-1]["type"] == "response.failed"
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error" and "timed out" in failed["error"]["message"]


def test_a_failure_before_any_chunk_still_opens_the_response():
    _, events = _run([], status="error", error_code="upstream_error")
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]


def test_an_adapter_error_event_is_reported_in_the_failure():
    error = {"error": {"message": "overloaded", "type": "api_error", "param": None, "code": "x"}}
    chunks = [CHAT_CHUNKS[1], b"data: " + orjson.dumps(error) + b"\n\n"]
    _, events = _run(chunks, status="error", error_code="upstream_stream_error")
    assert events[-1]["response"]["error"]["message"] == "overloaded"
    # an error chunk passed on by the chat parser fails the response even if the relay saw none
    _, events = _run(chunks, status="ok")
    assert events[-1]["type"] == "response.failed"


# --- native pass-through ----------------------------------------------------------------------

_RESP = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "in_progress",
    "background": False,
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "service_tier": "auto",
    "store": False,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": None,
    "user": None,
    "metadata": {},
}
_MSG = {
    "id": "msg_67ccd2bf17f0",
    "type": "message",
    "status": "in_progress",
    "content": [],
    "role": "assistant",
}
_TEXT = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
_FINAL_TEXT = dict(_TEXT, text="Hi there!")
_FINAL_MSG = dict(_MSG, status="completed", content=[_FINAL_TEXT])
_USAGE = {
    "input_tokens": 1536,
    "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
    "output_tokens": 120,
    "output_tokens_details": {"reasoning_tokens": 64},
    "total_tokens": 1656,
}
_WHERE = {"item_id": _MSG["id"], "output_index": 0, "content_index": 0}
_TRANSCRIPT_EVENTS = [
    {"type": "response.created", "sequence_number": 0, "response": _RESP},
    {"type": "response.in_progress", "sequence_number": 1, "response": _RESP},
    {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0, "item": _MSG},
    {"type": "response.content_part.added", "sequence_number": 3, **_WHERE, "part": _TEXT},
    {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        **_WHERE,
        "delta": "Hi",
        "logprobs": [],
    },
    {
        "type": "response.output_text.delta",
        "sequence_number": 5,
        **_WHERE,
        "delta": " there!",
        "logprobs": [],
    },
    {
        "type": "response.output_text.done",
        "sequence_number": 6,
        **_WHERE,
        "text": "Hi there!",
        "logprobs": [],
    },
    {"type": "response.content_part.done", "sequence_number": 7, **_WHERE, "part": _FINAL_TEXT},
    {
        "type": "response.output_item.done",
        "sequence_number": 8,
        "output_index": 0,
        "item": _FINAL_MSG,
    },
    {
        "type": "response.completed",
        "sequence_number": 9,
        "response": dict(_RESP, status="completed", output=[_FINAL_MSG], usage=_USAGE),
    },
]


def _wire(events: list[dict], *, crlf: bool = False) -> list[bytes]:
    """The lines an HTTP client reads off OpenAI's stream (``event:``, ``data:``, blank)."""
    end = b"\r\n" if crlf else b"\n"
    lines = []
    for event in events:
        lines += [
            b"event: " + event["type"].encode() + end,
            b"data: " + orjson.dumps(event) + end,
            end,
        ]
    return lines


def _parse(lines: list[bytes]) -> tuple[ResponsesStream, list[bytes]]:
    parser = OpenAIAdapter().stream_parser(api="responses", model=MODEL)
    assert isinstance(parser, ResponsesStream)
    out = []
    for line in lines:
        out += parser.feed(line)
    return parser, out


@pytest.mark.parametrize("crlf", [False, True])
def test_native_parser_emits_whole_events_and_reads_the_usage(crlf):
    parser, out = _parse(_wire(_TRANSCRIPT_EVENTS, crlf=crlf))
    assert len(out) == len(_TRANSCRIPT_EVENTS)
    assert all(isinstance(e, bytes) and e.endswith(b"\n\n") for e in out)
    assert [orjson.loads(e.split(b"\ndata: ")[1]) for e in out] == _TRANSCRIPT_EVENTS
    assert parser.usage == Usage(uncached_input=512, cached_input=1024, output=120)
    assert parser.error is None
    assert parser.generated_text() == "Hi there!"


def test_native_stream_rewrites_only_the_model():
    _, out = _parse(_wire(_TRANSCRIPT_EVENTS))
    client = NativeResponsesStream("my-alias")
    sent = [e for event in out for e in client.feed(event)]
    sent.append(client.tail(usage=Usage(), cost=Decimal(0), status="ok", error_code=""))
    assert sent[-1] == b""
    events = _events(b"".join(sent))
    _check(events)
    for original, passed in zip(_TRANSCRIPT_EVENTS, events, strict=True):
        if "response" in original:
            assert passed["response"]["model"] == "my-alias"
            passed = dict(
                passed, response=dict(passed["response"], model=original["response"]["model"])
            )
        assert passed == original
    # the events without a Response go through byte for byte
    assert sent[2] == out[2] and sent[4] == out[4]
    assert client.generated_text() == "Hi there!"


def test_native_failure_sets_the_error_and_is_not_doubled():
    failed = {
        "type": "response.failed",
        "sequence_number": 3,
        "response": dict(
            _RESP, status="failed", error={"code": "server_error", "message": "boom"}, usage=_USAGE
        ),
    }
    parser, out = _parse(_wire([*_TRANSCRIPT_EVENTS[:3], failed]))
    assert parser.error == {"code": "server_error", "message": "boom"}
    assert parser.usage == Usage(uncached_input=512, cached_input=1024, output=120)
    client = NativeResponsesStream("my-alias")
    for event in out:
        client.feed(event)
    assert (
        client.tail(
            usage=Usage(), cost=Decimal(0), status="error", error_code="upstream_stream_error"
        )
        == b""
    )


def test_native_error_event_sets_the_error():
    error = {
        "type": "error",
        "sequence_number": 1,
        "code": "rate_limit_exceeded",
        "message": "slow down",
        "param": None,
    }
    parser, _ = _parse(_wire([_TRANSCRIPT_EVENTS[0], error]))
    assert parser.error["message"] == "slow down"


def test_native_broken_stream_gets_a_closing_failure():
    client = NativeResponsesStream("my-alias")
    for event in _parse(_wire(_TRANSCRIPT_EVENTS[:5]))[1]:
        client.feed(event)
    events = _events(
        client.tail(usage=Usage(), cost=Decimal(0), status="error", error_code="upstream_timeout")
    )
    _check(events)
    assert events[0]["type"] == "response.failed" and events[0]["sequence_number"] == 5
    assert events[0]["response"]["model"] == "my-alias"
    assert events[0]["response"]["status"] == "failed"
    bare = NativeResponsesStream("my-alias")
    events = _events(
        bare.tail(usage=Usage(), cost=Decimal(0), status="error", error_code="upstream_error")
    )
    _check(events)
    assert events[0]["type"] == "error"


def test_native_json_rewrites_the_model():
    body = orjson.dumps(dict(_RESP, status="completed", usage=_USAGE))
    out = orjson.loads(native_json(body, "my-alias"))
    assert out["model"] == "my-alias" and out["usage"] == _USAGE
    assert native_json(b"not json", "x") == b"not json"


# --- adapters -------------------------------------------------------------------------------

OPENAI = ProviderRecord(
    slug="oai", kind="openai", base_url="https://api.openai.com/v1", api_key="sk-x", api_version=""
)
MODEL = ModelRecord(
    name="gpt",
    upstream_model="gpt-4.1",
    mode="chat",
    max_output_tokens=None,
    provider=OPENAI,
    prices=(),
)
AZURE = ProviderRecord(
    slug="az",
    kind="azure",
    base_url="https://res.openai.azure.com",
    api_key="az-key",
    api_version="2024-10-21",
)
AZURE_MODEL = ModelRecord(
    name="gpt-az",
    upstream_model="my deployment",
    mode="chat",
    max_output_tokens=None,
    provider=AZURE,
    prices=(),
)


def test_openai_native_responses_request_and_response():
    body = {
        "model": "gpt-4.1",
        "input": "hi",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    request = OpenAIAdapter().build_request(model=MODEL, api="responses", body=body, stream=True)
    assert request.url == "https://api.openai.com/v1/responses"
    assert request.headers["authorization"] == "Bearer sk-x"
    sent = orjson.loads(request.body)
    assert sent == {"model": "gpt-4.1", "input": "hi", "stream": True}  # include_usage is chat's
    data = orjson.dumps(dict(_RESP, status="completed", usage=_USAGE))
    parsed = OpenAIAdapter().parse_response(api="responses", data=data)
    assert parsed.body == data
    assert parsed.usage == Usage(uncached_input=512, cached_input=1024, output=120)


def test_azure_native_responses_go_to_the_v1_api_with_the_deployment_as_model():
    body = {
        "model": "gpt-az",
        "input": "hi",
        "stream_options": {"include_obfuscation": False, "include_usage": True},
    }
    request = AzureAdapter().build_request(
        model=AZURE_MODEL, api="responses", body=body, stream=True
    )
    assert request.url == "https://res.openai.azure.com/openai/v1/responses"
    assert request.headers["api-key"] == "az-key"
    assert orjson.loads(request.body) == {
        "model": "my deployment",
        "input": "hi",
        "stream_options": {"include_obfuscation": False},
    }
    preview = dataclasses.replace(
        AZURE_MODEL, provider=dataclasses.replace(AZURE, api_version="preview")
    )
    url = AzureAdapter().build_request(model=preview, api="responses", body=body, stream=False).url
    assert url == "https://res.openai.azure.com/openai/v1/responses?api-version=preview"


def test_legacy_completions_paths_and_usage():
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 5}
    assert OpenAIAdapter().build_request(
        model=MODEL, api="completions", body=body, stream=False
    ).url == ("https://api.openai.com/v1/completions")
    assert AzureAdapter().build_request(
        model=AZURE_MODEL, api="completions", body=body, stream=False
    ).url == (
        "https://res.openai.azure.com/openai/deployments/my%20deployment/completions?api-version=2024-10-21"
    )
    answer = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": " hi", "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    parsed = OpenAIAdapter().parse_response(api="completions", data=orjson.dumps(answer))
    assert parsed.usage == Usage(uncached_input=3, output=2)


def test_the_chat_stream_parser_passes_legacy_completion_chunks_and_their_text():
    stream = OpenAIStream()
    chunk = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"text": "Hel", "index": 0, "logprobs": None, "finish_reason": None}],
    }
    usage = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    out = stream.feed(b"data: " + orjson.dumps(chunk) + b"\n")
    out += stream.feed(
        b"data: "
        + orjson.dumps(dict(chunk, choices=[dict(chunk["choices"][0], text="lo")]))
        + b"\n"
    )
    out += stream.feed(b"data: " + orjson.dumps(usage) + b"\n")
    assert len(out) == 3 and out[0].startswith(b"data: ")
    assert stream.generated_text() == "Hello"
    assert stream.usage == Usage(uncached_input=3, output=2)
