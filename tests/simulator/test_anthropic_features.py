"""The simulator's Anthropic Messages API as the official ``anthropic`` SDK uses it: tool use by
the documented rule, extended thinking (JSON and streamed), token counting that agrees with the
usage of a message, ``cache_control`` prefixes written then read, structured output, and
Anthropic-shaped errors."""

from __future__ import annotations

import anthropic
import httpx
import orjson
import pytest
from pydantic import BaseModel

from simulator import generated_text

MODEL = "claude-sonnet-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
    },
}
CLOCK = {"name": "local_time", "description": "Time of day", "input_schema": {"type": "object"}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
THINKING = {"type": "enabled", "budget_tokens": 2048}


class Forecast(BaseModel):
    city: str
    high: int


def named_events(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in raw.split(b"\n\n"):
        if block.strip():
            name, data = block.split(b"\n", 1)
            out.append((name[7:].decode(), orjson.loads(data[6:])))
    return out


def test_offered_tool_is_used_then_the_result_answered(server):
    client = server.anthropic()
    message = client.messages.create(
        model=MODEL, max_tokens=500, messages=ASK, tools=[CLOCK, WEATHER]
    )
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == {"city": "sim", "days": 1}
    assert block.id.startswith("toolu_")
    answer = client.messages.create(
        model=MODEL,
        max_tokens=500,
        tools=[CLOCK, WEATHER],
        messages=[
            *ASK,
            {"role": "assistant", "content": [block.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Sunny"}],
            },
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].text == generated_text(16)
    none = client.messages.create(
        model=MODEL, max_tokens=500, messages=ASK, tools=[WEATHER], tool_choice={"type": "none"}
    )
    assert none.content[0].type == "text"
    forced = client.messages.create(
        model=MODEL,
        max_tokens=500,
        messages=ASK,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "tool", "name": "local_time"},
    )
    assert forced.content[0].name == "local_time" and forced.content[0].input == {}


def test_thinking_comes_first_and_counts_as_output(server):
    message = server.anthropic().messages.create(
        model=MODEL,
        max_tokens=4096,
        thinking=THINKING,
        messages=[{"role": "user", "content": "hi"}],
    )
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.signature
    assert len(thinking.thinking.split()) == 24
    assert text.type == "text" and text.text == generated_text(16)
    assert message.usage.output_tokens == 24 + 16


def test_stream_with_tools_and_thinking(server):
    client = server.anthropic()
    with client.messages.stream(
        model=MODEL,
        max_tokens=4096,
        thinking=THINKING,
        tools=[WEATHER],
        messages=ASK,
        extra_headers={"x-sim-chunks": "4"},
    ) as stream:
        kinds = [
            (event.type, getattr(getattr(event, "delta", None), "type", None)) for event in stream
        ]
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"]
    assert final.content[1].input == {"city": "sim", "days": 1}
    assert final.content[0].signature
    assert final.stop_reason == "tool_use"
    deltas = [d for kind, d in kinds if kind == "content_block_delta"]
    assert deltas == ["thinking_delta"] * 4 + ["signature_delta"] + ["input_json_delta"] * 4
    assert final.usage.output_tokens == 24 + 3 + 6  # thinking, "get_weather", the input JSON


def test_raw_stream_indexes_blocks_in_order(server):
    response = httpx.post(
        f"{server.url}/v1/messages",
        json={
            "model": MODEL,
            "max_tokens": 4096,
            "stream": True,
            "thinking": THINKING,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": "k", "x-sim-chunks": "2"},
    )
    events = named_events(response.content)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    starts = [e for name, e in events if name == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [
        (0, "thinking"),
        (1, "text"),
    ]
    assert starts[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[-2][1]["usage"]["output_tokens"] == 24 + 16


def test_count_tokens_agrees_with_message_usage(server):
    client = server.anthropic()
    body = {
        "model": MODEL,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "hello there"}],
        "tools": [WEATHER],
    }
    counted = client.messages.count_tokens(**body)
    message = client.messages.create(max_tokens=100, tool_choice={"type": "none"}, **body)
    usage = message.usage
    total = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    assert counted.input_tokens == total == 13 + (len(orjson.dumps([WEATHER])) + 3) // 4
    missing = httpx.post(
        f"{server.url}/v1/messages/count_tokens",
        json={"model": MODEL},
        headers={"x-api-key": "k"},
    )
    assert missing.status_code == 400
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "invalid_request_error"


def test_cache_control_prefix_is_written_then_read(server):
    client = server.anthropic()
    policy = "Refunds are issued within thirty days of purchase. " * 120  # ~1,530 tokens
    system = [{"type": "text", "text": policy, "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=ASK)
    second = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=ASK)
    assert first.usage.cache_creation_input_tokens > 1024
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert (
        first.usage.input_tokens + first.usage.cache_creation_input_tokens
        == second.usage.input_tokens + second.usage.cache_read_input_tokens
    )
    short = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):
        small = client.messages.create(model=MODEL, max_tokens=50, system=short, messages=ASK)
        assert small.usage.cache_creation_input_tokens == 0  # under the minimum: not cached
        assert small.usage.cache_read_input_tokens == 0


def test_structured_output_is_valid_json(server):
    client = server.anthropic()
    message = client.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "Forecast please"}],
        output_config={"format": {"type": "json_schema", "schema": Forecast.model_json_schema()}},
    )
    assert Forecast.model_validate_json(message.content[0].text) == Forecast(city="sim", high=0)
    parsed = client.messages.parse(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "Forecast please"}],
        output_format=Forecast,
    )
    assert parsed.parsed_output == Forecast(city="sim", high=0)
    assert parsed.usage.output_tokens == (len(parsed.content[0].text) + 3) // 4


def test_thinking_errors_and_overload_are_anthropic_shaped(server):
    client = server.anthropic()
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model=MODEL,
            max_tokens=1000,
            thinking={"type": "enabled", "budget_tokens": 2048},
            messages=ASK,
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model=MODEL,
            max_tokens=4096,
            thinking=THINKING,
            tools=[WEATHER],
            tool_choice={"type": "any"},
            messages=ASK,
        )
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.count_tokens(
            model=MODEL, messages=ASK, extra_headers={"x-sim-status": "529"}
        )
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"
