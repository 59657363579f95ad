"""The Anthropic adapter refuses what it cannot honour, carries JSON response formats as a
forced tool, turns reasoning effort into extended thinking, and serves Messages natively."""

from __future__ import annotations

import orjson
import pydantic
import pytest
from anthropic.types import MessageCreateParams
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.errors import GatewayError
from gateway.pricing import Usage
from gateway.providers.anthropic import (
    ANTHROPIC_VERSION,
    JSON_TOOL,
    AnthropicAdapter,
    AnthropicNativeStream,
    AnthropicStream,
    translate_request,
    translate_response,
)
from gateway.providers.base import UsageChunk
from gateway.records import ModelRecord, ProviderRecord

PROVIDER = ProviderRecord(
    slug="claude",
    kind="anthropic",
    base_url="https://api.anthropic.example",
    api_key="sk-ant",
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
MESSAGES = [{"role": "user", "content": "What's the weather in Paris?"}]
WEATHER = {
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
REPORT_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "weather_report",
        "description": "Today's weather",
        "schema": REPORT_SCHEMA,
        "strict": True,
    },
}
ANTHROPIC_REQUEST = pydantic.TypeAdapter(MessageCreateParams)


def _force(value):
    if type(value).__name__ == "ValidatorIterator":
        return [_force(v) for v in value]
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_force(v) for v in value]
    return value


def translate(**body) -> dict:
    out = translate_request({"model": "claude-sonnet", "messages": MESSAGES, **body}, MODEL)
    _force(ANTHROPIC_REQUEST.validate_python(out))
    return out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("seed", 7),
        ("seed", 0),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -0.4),
        ("logit_bias", {"50256": -100}),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("web_search_options", {}),
        ("verbosity", "low"),
        ("functions", [WEATHER["function"]]),
        ("function_call", {"name": "get_weather"}),
        ("tools", [{"type": "custom", "custom": {"name": "grammar"}}]),
    ],
)
def test_parameters_anthropic_cannot_honour_are_refused_by_name(name, value):
    with pytest.raises(GatewayError) as exc:
        translate(**{name: value})
    assert (exc.value.status, exc.value.code, exc.value.param) == (
        400,
        "unsupported_parameter",
        name,
    )
    assert name in exc.value.message and "claude-sonnet" in exc.value.message


def test_default_and_empty_values_of_refused_parameters_pass():
    out = translate(
        n=1,
        logprobs=False,
        top_logprobs=0,
        seed=None,
        frequency_penalty=0,
        presence_penalty=0.0,
        logit_bias={},
        modalities=["text"],
        verbosity="medium",
        function_call="auto",
    )
    assert set(out) == {"model", "messages", "max_tokens"}


def test_shape_only_fields_are_left_out_or_mapped():
    out = translate(
        tools=[WEATHER],
        parallel_tool_calls=False,
        stream=True,
        stream_options={"include_usage": True},
        store=True,
        service_tier="auto",
        prompt_cache_key="tenant-7",
        metadata={"team": "search"},
        safety_identifier="user-hash-1",
        prediction={"type": "content", "content": "Sunny"},
        response_format={"type": "text"},
    )
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert out["metadata"] == {"user_id": "user-hash-1"}
    assert out["stream"] is True
    for name in ("stream_options", "store", "service_tier", "prompt_cache_key", "prediction"):
        assert name not in out


def test_a_json_schema_response_format_becomes_a_forced_tool():
    out = translate(response_format=JSON_SCHEMA_FORMAT)
    assert out["tools"] == [
        {
            "name": JSON_TOOL,
            "description": "Give your answer as this tool's input: a JSON object matching its "
            "schema (the 'weather_report' format). Today's weather.",
            "input_schema": REPORT_SCHEMA,
        }
    ]
    assert out["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


def test_a_json_object_response_format_forces_an_object():
    out = translate(response_format={"type": "json_object"})
    assert out["tools"][0]["input_schema"] == {"type": "object"}
    assert out["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


def test_with_the_clients_tools_the_model_must_call_one_tool_or_answer_in_json():
    out = translate(response_format=JSON_SCHEMA_FORMAT, tools=[WEATHER], parallel_tool_calls=False)
    assert [t["name"] for t in out["tools"]] == ["get_weather", JSON_TOOL]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    # tool_choice none: no client tool may be called, so the JSON answer is forced
    out = translate(response_format=JSON_SCHEMA_FORMAT, tools=[WEATHER], tool_choice="none")
    assert out["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_a_turn_that_must_call_a_client_tool_has_no_answer_to_shape(choice):
    out = translate(response_format=JSON_SCHEMA_FORMAT, tools=[WEATHER], tool_choice=choice)
    assert [t["name"] for t in out["tools"]] == ["get_weather"]


def test_the_json_tool_name_is_reserved_and_unknown_formats_are_invalid():
    clash = dict(WEATHER, function=dict(WEATHER["function"], name=JSON_TOOL))
    with pytest.raises(GatewayError) as exc:
        translate(response_format={"type": "json_object"}, tools=[clash])
    assert exc.value.param == "tools"
    with pytest.raises(GatewayError) as exc:
        translate(response_format={"type": "xml"})
    assert exc.value.param == "response_format.type"


def anthropic_message(*content, stop_reason="tool_use") -> dict:
    return {
        "id": "msg_01J",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 90, "output_tokens": 30, "cache_read_input_tokens": 10},
    }


REPORT_CALL = {
    "type": "tool_use",
    "id": "toolu_J",
    "name": JSON_TOOL,
    "input": {"city": "Paris", "celsius": 21},
}


def test_the_json_tools_input_comes_back_as_the_answer():
    body, usage = translate_response(anthropic_message(REPORT_CALL))
    ChatCompletion.model_validate(body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert orjson.loads(choice["message"]["content"]) == {"city": "Paris", "celsius": 21}
    assert "tool_calls" not in choice["message"]
    assert usage == Usage(uncached_input=90, cached_input=10, output=30)


def test_a_client_tool_called_beside_the_json_tool_stays_a_tool_call():
    weather = {
        "type": "tool_use",
        "id": "toolu_W",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    body, _ = translate_response(
        anthropic_message({"type": "text", "text": "Let me check."}, weather)
    )
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"]["content"] == "Let me check."
    body, _ = translate_response(anthropic_message(REPORT_CALL, weather))
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def _sse_lines(events: list[dict]) -> list[bytes]:
    return [
        line
        for e in events
        for line in (f"event: {e['type']}\n".encode(), b"data: " + orjson.dumps(e) + b"\n", b"\n")
    ]


def test_a_streamed_json_tool_becomes_content_deltas_and_a_stop():
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01J",
                "model": "claude-sonnet-4-5",
                "usage": {"input_tokens": 90, "output_tokens": 1},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_J", "name": JSON_TOOL, "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris", '},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '"celsius": 21}'},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 30},
        },
        {"type": "message_stop"},
    ]
    parser = AnthropicAdapter().stream_parser(api="chat.completions", model=MODEL)
    assert isinstance(parser, AnthropicStream)
    out = [item for line in _sse_lines(events) for item in parser.feed(line)]
    chunks = [orjson.loads(o[6:]) for o in out if isinstance(o, bytes)]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert not any("tool_calls" in d for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert orjson.loads(content) == {"city": "Paris", "celsius": 21}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert isinstance(out[-1], UsageChunk) and out[-1].chunk["usage"]["completion_tokens"] == 30


@pytest.mark.parametrize(
    ("effort", "budget"), [("minimal", 1024), ("low", 1024), ("medium", 4096), ("high", 16384)]
)
def test_reasoning_effort_becomes_a_thinking_budget(effort, budget):
    out = translate(reasoning_effort=effort, max_completion_tokens=20000)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert out["max_tokens"] == 20000


def test_thinking_fits_inside_the_cap_the_budget_reserved_and_drops_sampling_it_forbids():
    out = translate(reasoning_effort="high", max_tokens=5000, temperature=0.2, top_k=40, top_p=0.5)
    # max_tokens is what admission reserved: the thinking budget shrinks to fit under it
    assert (out["max_tokens"], out["thinking"]["budget_tokens"]) == (5000, 4999)
    for name in ("temperature", "top_k", "top_p"):
        assert name not in out
    assert translate(reasoning_effort="low", top_p=0.97)["top_p"] == 0.97
    # no cap given: the model's own (8192) is above the low budget already
    assert translate(reasoning_effort="low")["max_tokens"] == 8192
    with pytest.raises(GatewayError) as exc:  # no room for the minimum budget of 1024
        translate(reasoning_effort="high", max_tokens=1000)
    assert exc.value.param == "max_tokens"


def test_reasoning_effort_none_and_invalid_values():
    assert "thinking" not in translate(reasoning_effort="none", temperature=0.5)
    with pytest.raises(GatewayError) as exc:
        translate(reasoning_effort="extreme")
    assert (exc.value.code, exc.value.param) == ("invalid_value", "reasoning_effort")


@pytest.mark.parametrize(
    "forcing",
    [
        {"response_format": {"type": "json_object"}},
        {"tools": [WEATHER], "tool_choice": "required"},
        {
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    ],
)
def test_reasoning_effort_with_a_forced_tool_is_refused(forcing):
    with pytest.raises(GatewayError) as exc:
        translate(reasoning_effort="medium", **forcing)
    assert (exc.value.code, exc.value.param) == ("unsupported_parameter", "reasoning_effort")


def test_reasoning_effort_with_tools_on_auto_is_fine():
    out = translate(reasoning_effort="medium", tools=[WEATHER], tool_choice="auto")
    assert out["thinking"]["budget_tokens"] == 4096 and out["tool_choice"] == {"type": "auto"}


# --- native Messages ------------------------------------------------------------------------

NATIVE_BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "Hi"}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "top_k": 5,
}


@pytest.mark.parametrize(
    ("api", "path"),
    [("messages", "/v1/messages"), ("messages.count_tokens", "/v1/messages/count_tokens")],
)
def test_native_requests_go_as_they_are(api, path):
    request = AnthropicAdapter().build_request(model=MODEL, api=api, body=NATIVE_BODY, stream=False)
    assert request.url == "https://api.anthropic.example" + path
    assert orjson.loads(request.body) == NATIVE_BODY
    assert request.headers == {
        "content-type": "application/json",
        "anthropic-version": ANTHROPIC_VERSION,
        "x-api-key": "sk-ant",
    }


def test_a_base_url_with_a_trailing_slash_and_no_key():
    provider = ProviderRecord(
        slug="c", kind="anthropic", base_url="http://sim:8080/", api_key="", api_version=""
    )
    model = ModelRecord(
        name="c",
        upstream_model="claude",
        mode="chat",
        max_output_tokens=None,
        provider=provider,
        prices=(),
    )
    request = AnthropicAdapter().build_request(
        model=model, api="messages", body=NATIVE_BODY, stream=True
    )
    assert request.url == "http://sim:8080/v1/messages" and "x-api-key" not in request.headers


def test_native_answers_pass_through_with_their_usage():
    data = orjson.dumps(anthropic_message({"type": "text", "text": "Hi"}, stop_reason="end_turn"))
    parsed = AnthropicAdapter().parse_response(api="messages", data=data)
    assert parsed.body == data
    assert parsed.usage == Usage(uncached_input=90, cached_input=10, output=30)
    counted = AnthropicAdapter().parse_response(
        api="messages.count_tokens", data=b'{"input_tokens": 14}'
    )
    assert counted.body == b'{"input_tokens": 14}' and counted.usage is None


def test_the_native_stream_parser_is_chosen_for_messages():
    adapter = AnthropicAdapter()
    assert isinstance(adapter.stream_parser(api="messages", model=MODEL), AnthropicNativeStream)
    assert isinstance(adapter.stream_parser(api="chat.completions", model=MODEL), AnthropicStream)


def _error(kind: str, message: str) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    )


@pytest.mark.parametrize(
    "message",
    [
        "prompt is too long: 210123 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000, "
        "decrease input length or `max_tokens` and try again",
        "The request exceeds the context window of this model.",
    ],
)
def test_prompts_too_long_are_context_length_errors(message):
    assert AnthropicAdapter().parse_error(
        status=400, data=_error("invalid_request_error", message)
    ) == (
        message,
        "context_length_exceeded",
    )


def test_other_errors_keep_anthropics_type():
    adapter = AnthropicAdapter()
    assert adapter.parse_error(
        status=400, data=_error("invalid_request_error", "messages: required")
    ) == (
        "messages: required",
        "invalid_request_error",
    )
    assert adapter.parse_error(status=529, data=_error("overloaded_error", "Overloaded")) == (
        "Overloaded",
        "overloaded_error",
    )
    assert adapter.parse_error(status=502, data=b"<html>") == ("upstream returned HTTP 502", None)


def test_a_context_window_stop_is_a_length_finish():
    body, _ = translate_response(
        anthropic_message(
            {"type": "text", "text": "…"}, stop_reason="model_context_window_exceeded"
        )
    )
    assert body["choices"][0]["finish_reason"] == "length"


PDF_PART = {
    "type": "file",
    "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"},
}


def test_inline_files_become_documents_and_other_inputs_are_refused():
    out = translate(
        messages=[{"role": "user", "content": [PDF_PART, {"type": "text", "text": "Sum up."}]}]
    )
    assert out["messages"][0]["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
    }
    for part in (
        {"type": "file", "file": {"file_id": "file-abc"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ):
        with pytest.raises(GatewayError) as exc:
            translate(messages=[{"role": "user", "content": [part]}])
        assert (exc.value.code, exc.value.param) == ("unsupported_parameter", "messages")
