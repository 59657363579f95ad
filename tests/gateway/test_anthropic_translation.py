"""OpenAI chat <-> Anthropic Messages translation, both ways, without the network."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import GatewayError
from gateway.providers.anthropic import (
    AnthropicAdapter,
    AnthropicStream,
    translate_request,
    translate_response,
)
from gateway.providers.base import UsageChunk
from gateway.records import ModelRecord, ProviderRecord
from tests.openai_schema import assert_valid

PROVIDER = ProviderRecord(
    slug="claude",
    kind="anthropic",
    base_url="https://api.anthropic.example",
    api_key="k",
    api_version="",
)
MODEL = ModelRecord(
    name="claude-sonnet",
    upstream_model="claude-sonnet-4-5",
    mode="chat",
    max_output_tokens=8192,
    provider=PROVIDER,
    prices=(),
)


def test_system_prompt_parts_stop_sequences_and_max_tokens_default():
    out = translate_request(
        {
            "model": "claude-sonnet",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}
                    ],
                },
                {"role": "user", "content": "again"},
            ],
            "stop": "END",
            "temperature": 0.1,
            "user": "alice",
            "logit_bias": {},  # empty: nothing to honour (a non-empty one is refused)
        },
        MODEL,
    )
    assert out["model"] == "claude-sonnet-4-5"
    assert out["system"] == [{"type": "text", "text": "Be brief."}]
    assert out["max_tokens"] == 8192
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "alice"}
    assert "logit_bias" not in out
    # consecutive user turns are merged; cache breakpoints survive
    assert len(out["messages"]) == 1
    assert out["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_tools_tool_calls_and_tool_results_round_trip():
    out = translate_request(
        {
            "model": "claude-sonnet",
            "max_tokens": 100,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "weather",
                        "description": "w",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
        },
        MODEL,
    )
    assert out["max_tokens"] == 100
    assert out["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}
    assert out["tool_choice"] == {"type": "tool", "name": "weather"}
    assistant, tool_result = out["messages"][1], out["messages"][2]
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}
    ]
    assert tool_result == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}],
    }


def test_response_with_tool_use_becomes_an_openai_tool_call():
    body, usage = translate_response(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
            ],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 20,
            },
        }
    )
    assert_valid("CreateChatCompletionResponse", body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": '{"city":"Paris"}',
    }
    assert body["usage"]["prompt_tokens"] == 130
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 100
    assert (usage.uncached_input, usage.cached_input, usage.cache_write, usage.output) == (
        10,
        100,
        20,
        5,
    )


def _sse(event: dict) -> list[bytes]:
    return [f"event: {event['type']}".encode(), b"data: " + orjson.dumps(event), b""]


def test_stream_events_become_openai_chunks_with_usage_last():
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "model": "claude-sonnet-4-5",
                "usage": {"input_tokens": 12, "cache_read_input_tokens": 30, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    parser = AnthropicStream()
    out = [item for e in events for line in _sse(e) for item in parser.feed(line)]
    chunks = [orjson.loads(o[6:]) for o in out if isinstance(o, bytes)]
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[1]["choices"][0]["delta"]["content"] == "Hello"
    arguments = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    )
    assert arguments == '{"city":"Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert isinstance(out[-1], UsageChunk)
    assert (
        out[-1].chunk["usage"]["prompt_tokens"] == 42
        and out[-1].chunk["usage"]["completion_tokens"] == 9
    )
    assert (parser.usage.uncached_input, parser.usage.cached_input, parser.usage.output) == (
        12,
        30,
        9,
    )


def test_request_headers_and_url_follow_the_anthropic_sdk():
    request = AnthropicAdapter().build_request(
        model=MODEL,
        api="chat.completions",
        body={"messages": [{"role": "user", "content": "x"}]},
        stream=False,
    )
    assert request.url == "https://api.anthropic.example/v1/messages"
    assert request.headers["x-api-key"] == "k" and request.headers["anthropic-version"]


def test_embeddings_on_an_anthropic_model_are_refused():
    with pytest.raises(GatewayError) as exc:
        AnthropicAdapter().build_request(
            model=MODEL, api="embeddings", body={"input": "x"}, stream=False
        )
    assert exc.value.code == "invalid_value"
