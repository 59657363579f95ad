"""Anthropic- and Azure-kind models behind /v1/chat/completions, over real HTTP with the openai
SDK as the client and the simulator as the provider; costs checked to the last digit."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from tests.openai_schema import assert_valid

pytestmark = pytest.mark.live

MTOK = Decimal(1_000_000)
CLAUDE = {
    "in": Decimal("3.00"),
    "out": Decimal("15.00"),
    "read": Decimal("0.30"),
    "write": Decimal("3.75"),
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def client(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.base_url, api_key=live.key_secret, max_retries=0)


def last_upstream(live, path: str) -> dict:
    return httpx.get(f"{live.simulator.url}/_sim/last", params={"path": path}).json()


def claude_cost(row) -> Decimal:
    uncached = row.prompt_tokens - row.cached_tokens - row.cache_write_tokens
    return (
        uncached * CLAUDE["in"]
        + row.cached_tokens * CLAUDE["read"]
        + row.cache_write_tokens * CLAUDE["write"]
        + row.completion_tokens * CLAUDE["out"]
    ) / MTOK


def test_anthropic_model_plain_chat_is_translated_and_priced(live):
    raw = client(live).chat.completions.with_raw_response.create(
        model="claude-sonnet",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hello there"},
        ],
        stop=["END"],
    )
    completion = raw.parse()
    assert_valid("CreateChatCompletionResponse", orjson.loads(raw.http_response.content))
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    sent = last_upstream(live, "/v1/messages")
    assert sent["body"]["model"] == "claude-sonnet-4-5"
    assert sent["body"]["max_tokens"] == 8192  # the model's max_output_tokens
    assert sent["body"]["system"] == [{"type": "text", "text": "Be terse."}]
    assert sent["body"]["stop_sequences"] == ["END"]
    assert sent["headers"]["x-api-key"] and sent["headers"]["anthropic-version"] == "2023-06-01"
    [row] = live.events(raw.headers["x-request-id"])
    assert row.provider == "sim-claude" and row.upstream_model == "claude-sonnet-4-5"
    assert row.prompt_tokens == completion.usage.prompt_tokens
    assert row.cost == claude_cost(row) == Decimal(raw.headers["x-finops-cost"])


def test_anthropic_model_streams_openai_chunks_with_cost(live):
    with httpx.stream(
        "POST",
        f"{live.base_url}/chat/completions",
        headers={"authorization": f"Bearer {live.key_secret}"},
        json={
            "model": "claude-sonnet",
            "messages": [{"role": "user", "content": "Stream please"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 50,
        },
        timeout=30,
    ) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks)
    [row] = live.events(request_id)
    assert Decimal(str(chunks[-1]["usage"]["cost"])) == row.cost == claude_cost(row)
    assert row.streamed and not row.estimated


def test_anthropic_tool_call_round_trip(live):
    completion = client(live).chat.completions.create(
        model="claude-sonnet",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "sim"}
    sent = last_upstream(live, "/v1/messages")["body"]
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    # the tool result goes back as a tool_result block
    client(live).chat.completions.create(
        model="claude-sonnet",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
        tools=[WEATHER_TOOL],
    )
    sent = last_upstream(live, "/v1/messages")["body"]
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call.id,
        "content": "sunny, 21C",
    }


def test_anthropic_streamed_tool_call(live):
    stream = client(live).chat.completions.create(
        model="claude-sonnet",
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        stream=True,
    )
    chunks = list(stream)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather"
    assert orjson.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "sim"}
    assert any(c.choices and c.choices[0].finish_reason == "tool_calls" for c in chunks)


def test_anthropic_cache_write_then_read_are_priced_per_direction(live):
    long_context = "Policy text. " * 400
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": long_context, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Question one?"},
            ],
        },
    ]
    first = client(live).chat.completions.with_raw_response.create(
        model="claude-sonnet", messages=messages
    )
    second = client(live).chat.completions.with_raw_response.create(
        model="claude-sonnet", messages=messages
    )
    [write_row] = live.events(first.headers["x-request-id"])
    [read_row] = live.events(second.headers["x-request-id"])
    assert write_row.cache_write_tokens > 0 and write_row.cached_tokens == 0
    assert (
        read_row.cached_tokens == write_row.cache_write_tokens and read_row.cache_write_tokens == 0
    )
    assert write_row.prompt_tokens == read_row.prompt_tokens
    for row in (write_row, read_row):
        assert row.cost == claude_cost(row)
        assert row.cache_write_cost == row.cache_write_tokens * CLAUDE["write"] / MTOK
        assert row.cached_input_cost == row.cached_tokens * CLAUDE["read"] / MTOK
    assert read_row.cost < write_row.cost
    assert second.parse().usage.prompt_tokens_details.cached_tokens == read_row.cached_tokens


def test_azure_model_uses_deployment_url_api_version_and_api_key(live):
    raw = client(live).chat.completions.with_raw_response.create(
        model="azure-gpt-4o", messages=[{"role": "user", "content": "Hello Azure"}]
    )
    usage = raw.parse().usage
    sent = last_upstream(live, "/openai/deployments/gpt4o-deploy/chat/completions")
    assert "api-version=2024-10-21" in sent["query"]
    assert sent["headers"]["api-key"]
    assert "authorization" not in sent["headers"]
    cost = (
        usage.prompt_tokens * Decimal("2.50") + usage.completion_tokens * Decimal("10.00")
    ) / MTOK
    [row] = live.events(raw.headers["x-request-id"])
    assert row.cost == cost == Decimal(raw.headers["x-finops-cost"])
    assert row.provider == "sim-azure"
