"""Anthropic Messages ⇄ Chat Completions (``gateway.dialects.messages``): requests, JSON
answers, errors and local token counting, checked against the official SDKs' types."""

from __future__ import annotations

import base64

import anthropic
import orjson
import pydantic
import pytest
from anthropic.types import ErrorResponse, Message, MessageCreateParams
from openai.types.chat import ChatCompletion, completion_create_params

from gateway import billable
from gateway.dialects.messages import (
    ANTHROPIC_ERROR_TYPES,
    anthropic_error,
    chat_to_messages,
    count_tokens_local,
    effort_for_budget,
    message_id,
    messages_to_chat,
    native_json,
)
from gateway.errors import GatewayError
from gateway.providers.anthropic import translate_request
from gateway.records import ModelRecord, ProviderRecord

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF").decode()
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
CACHE = {"type": "ephemeral"}


def request() -> dict:
    """A realistic Messages request: cached system blocks, images, a tool round with thinking in
    the history, an error result, parallel tool use off, thinking on, streaming."""
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16000,
        "system": [
            {"type": "text", "text": "You are a concise weather assistant."},
            {"type": "text", "text": "Station list: " + "LHR CDG " * 200, "cache_control": CACHE},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://ex.com/map.jpg"}},
                    {"type": "text", "text": "Weather where this was taken, and in Paris?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "The photo shows Big Ben, so London.",
                        "signature": "EqQBCkYIARgCIkBsig==",
                    },
                    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
                    {"type": "text", "text": "Let me check both."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01A",
                        "name": "get_weather",
                        "input": {"city": "London"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_01B",
                        "name": "get_weather",
                        "input": {"city": "Paris", "unit": "celsius"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "15°C, rain"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01B",
                        "content": [{"type": "text", "text": "service unavailable"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "Thanks. Summarise.", "cache_control": CACHE},
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather for a city",
                "input_schema": WEATHER_SCHEMA,
                "cache_control": CACHE,
            }
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "stop_sequences": ["\n\nHuman:"],
        "metadata": {"user_id": "user-7f3a"},
        "thinking": {"type": "enabled", "budget_tokens": 8000},
        "stream": True,
    }


def _force(value):
    """pydantic validates ``Iterable`` fields lazily: run every validator."""
    if type(value).__name__ == "ValidatorIterator":
        return [_force(v) for v in value]
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_force(v) for v in value]
    return value


# module-level: the lazy validators need their adapter alive while they run
ANTHROPIC_REQUEST = pydantic.TypeAdapter(MessageCreateParams)
CHAT_REQUEST = pydantic.TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming)
CHAT_STREAM_REQUEST = pydantic.TypeAdapter(completion_create_params.CompletionCreateParamsStreaming)


def assert_anthropic_request(body: dict) -> None:
    _force(ANTHROPIC_REQUEST.validate_python(body))


def assert_chat_request(body: dict) -> None:
    adapter = CHAT_STREAM_REQUEST if body.get("stream") else CHAT_REQUEST
    _force(adapter.validate_python(body))


def test_a_realistic_request_becomes_the_canonical_chat_body():
    body = request()
    assert_anthropic_request(body)
    chat, unsupported = messages_to_chat(body)
    assert unsupported == []
    assert_chat_request(chat)
    assert chat == {
        "model": "claude-sonnet-4-5",
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "You are a concise weather assistant."},
                    {"type": "text", "text": body["system"][1]["text"], "cache_control": CACHE},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://ex.com/map.jpg"}},
                    {"type": "text", "text": "Weather where this was taken, and in Paris?"},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me check both.",
                "tool_calls": [
                    {
                        "id": "toolu_01A",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"London"}'},
                    },
                    {
                        "id": "toolu_01B",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"city":"Paris","unit":"celsius"}',
                        },
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "15°C, rain"},
            {"role": "tool", "tool_call_id": "toolu_01B", "content": "Error: service unavailable"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Thanks. Summarise.", "cache_control": CACHE}],
            },
        ],
        "max_tokens": 16000,
        "stop": ["\n\nHuman:"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER_SCHEMA,
                    "description": "Current weather for a city",
                },
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning_effort": "medium",
        "user": "user-7f3a",  # not in metadata: OpenAI takes metadata only with store: true
        "stream": True,
        "stream_options": {"include_usage": True},
    }


MODEL = ModelRecord(
    name="claude",
    upstream_model="claude-sonnet-4-5",
    mode="chat",
    max_output_tokens=8192,
    provider=ProviderRecord(
        slug="claude", kind="anthropic", base_url="https://a.example", api_key="k", api_version=""
    ),
    prices=(),
)


def test_round_trip_through_the_anthropic_adapter_gives_back_the_request_less_thinking():
    original = request()
    chat, _ = messages_to_chat(original)
    back = translate_request(chat, MODEL)
    assert_anthropic_request(back)
    assert back["system"] == original["system"]
    assert back["messages"][0] == original["messages"][0]
    # the history's thinking blocks only shaped that exchange; they are not sent again
    assert back["messages"][1]["content"] == original["messages"][1]["content"][2:]
    results = back["messages"][2]["content"]
    assert [r["type"] for r in results] == ["tool_result", "tool_result", "text"]
    assert results[1]["content"] == "Error: service unavailable"
    assert results[2]["cache_control"] == CACHE
    assert back["tools"][0]["input_schema"] == WEATHER_SCHEMA
    assert back["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert back["stop_sequences"] == ["\n\nHuman:"]
    assert back["metadata"] == {"user_id": "user-7f3a"}
    assert back["thinking"] == {"type": "enabled", "budget_tokens": 4096}  # medium
    assert back["max_tokens"] == 16000 and back["stream"] is True


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high")],
)
def test_thinking_budgets_map_to_reasoning_effort(budget, effort):
    assert effort_for_budget(budget) == effort
    body = {
        "model": "m",
        "max_tokens": 32000,
        "messages": [{"role": "user", "content": "think"}],
        "thinking": {"type": "enabled", "budget_tokens": budget},
    }
    assert messages_to_chat(body)[0]["reasoning_effort"] == effort


def test_documents_plain_options_and_structured_output():
    body = {
        "model": "m",
        "max_tokens": 500,
        "system": "Be brief.",
        "temperature": 0.3,
        "top_p": 0.8,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "report.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "content",
                            "content": [{"type": "text", "text": "chunk one"}],
                        },
                    },
                    {"type": "text", "text": "Summarise these."},
                ],
            }
        ],
        "tool_choice": {"type": "any"},  # no tools: Chat takes no tool_choice
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": {}}},
        "service_tier": "auto",
        "cache_control": CACHE,
    }
    assert_anthropic_request(body)
    chat, unsupported = messages_to_chat(body)
    assert unsupported == []
    assert_chat_request(chat)
    assert chat["messages"][0] == {"role": "system", "content": "Be brief."}
    assert chat["messages"][1]["content"] == [
        {
            "type": "file",
            "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "report.pdf"},
        },
        {"type": "text", "text": "notes"},
        {"type": "text", "text": "chunk one"},
        {"type": "text", "text": "Summarise these."},
    ]
    assert (chat["temperature"], chat["top_p"], chat["reasoning_effort"]) == (0.3, 0.8, "low")
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "json_response", "schema": {}, "strict": True},
    }
    assert "tool_choice" not in chat and "stream" not in chat


def _with(**changes) -> dict:
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    body.update(changes)
    return body


def _user(*blocks) -> list[dict]:
    return [{"role": "user", "content": list(blocks)}]


URL_DOC = {"type": "document", "source": {"type": "url", "url": "https://ex.com/a.pdf"}}
FILE_IMAGE = {"type": "image", "source": {"type": "file", "file_id": "file_011"}}
CITED_DOC = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "x"},
    "citations": {"enabled": True},
}
IMAGE_RESULT = {
    "type": "tool_result",
    "tool_use_id": "toolu_1",
    "content": [
        {"type": "text", "text": "screenshot:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ],
}
SEARCH_RESULT = {
    "type": "search_result",
    "source": "https://ex.com",
    "title": "t",
    "content": [{"type": "text", "text": "x"}],
}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
CUSTOM_TOOL = {"name": "f", "input_schema": {"type": "object"}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_with(top_k=40), ["top_k"]),
        (_with(service_tier="standard_only"), ["service_tier"]),
        (_with(container="container_011"), ["container"]),
        (_with(inference_geo="us"), ["inference_geo"]),
        (
            _with(mcp_servers=[{"type": "url", "url": "https://mcp.ex/sse", "name": "x"}]),
            ["mcp_servers"],
        ),
        (_with(context_management={"edits": []}), ["context_management"]),
        (_with(tools=[CUSTOM_TOOL, WEB_SEARCH]), ["tools[1]"]),
        (
            _with(tools=[dict(CUSTOM_TOOL, input_examples=[{"a": 1}])]),
            ["tools[0].input_examples"],
        ),
        (_with(messages=_user(URL_DOC)), ["messages[0].content[0].source"]),
        (_with(messages=_user(FILE_IMAGE)), ["messages[0].content[0].source"]),
        (_with(messages=_user(CITED_DOC)), ["messages[0].content[0].citations"]),
        (_with(messages=_user(IMAGE_RESULT)), ["messages[0].content[0].content[1]"]),
        (_with(messages=_user(SEARCH_RESULT)), ["messages[0].content[0]"]),
        (_with(output_config={"effort": "max"}), ["output_config.effort"]),
        (
            _with(
                messages=[
                    {"role": "user", "content": "Answer in JSON."},
                    {"role": "assistant", "content": "{"},
                ]
            ),
            ["messages[1]"],
        ),
        (_with(top_k=5, tools=[WEB_SEARCH], service_tier="auto"), ["tools[0]", "top_k"]),
    ],
)
def test_parameters_chat_cannot_express_are_reported_by_name(body, expected):
    chat, unsupported = messages_to_chat(body)
    assert unsupported == expected
    assert_chat_request(chat)  # what could be translated still is a valid chat body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([{"role": "user"}], None),
        (_with(messages=None), "messages"),
        (_with(messages=[]), "messages"),
        (_with(messages={"role": "user", "content": "x"}), "messages"),
        (_with(messages=[{"role": "tool", "content": "x"}]), "messages[0].role"),
        (_with(messages=["hello"]), "messages[0]"),
        (_with(messages=_user({"type": 7, "url": "x"})), "messages[0].content[0].type"),
        (_with(messages=_user({"type": "text"})), "messages[0].content[0].text"),
        (
            _with(messages=_user({"type": "tool_use", "id": "t", "name": "f", "input": {}})),
            "messages[0].content[0].type",
        ),
        (
            _with(messages=_user({"type": "tool_result", "content": "x"})),
            "messages[0].content[0].tool_use_id",
        ),
        (
            _with(messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]}]),
            "messages[0].content[0].name",
        ),
        (_with(messages=_user({"type": "image", "source": {}})), "messages[0].content[0].source"),
        (_with(max_tokens=None), "max_tokens"),
        (_with(max_tokens=0), "max_tokens"),
        (_with(max_tokens="100"), "max_tokens"),
        (_with(max_tokens=True), "max_tokens"),
        (_with(system=[{"type": "image"}]), "system[0]"),
        (_with(system=7), "system"),
        (_with(tools={"name": "f"}), "tools"),
        (_with(tools=[{"name": "f"}]), "tools[0].input_schema"),
        (_with(tool_choice={"type": "required"}), "tool_choice"),
        (_with(thinking={"type": "enabled"}), "thinking.budget_tokens"),
        (_with(thinking={"type": "on"}), "thinking.type"),
        (_with(stop_sequences="END"), "stop_sequences"),
        (_with(metadata="user"), "metadata"),
        (_with(output_config={"format": {"type": "regex"}}), "output_config.format.type"),
    ],
)
def test_invalid_requests_are_400s_naming_the_parameter(body, param):
    with pytest.raises(GatewayError) as exc:
        messages_to_chat(body)
    assert exc.value.status == 400
    assert exc.value.type == "invalid_request_error"
    assert exc.value.param == param


def test_metadata_user_id_becomes_user_and_attribution_keys_stay():
    chat, _ = messages_to_chat(
        _with(metadata={"user_id": "u-1", "feature": "search", "endpoint": "/ask", "n": 3})
    )
    assert chat["user"] == "u-1"
    assert chat["metadata"] == {"feature": "search", "endpoint": "/ask"}
    chat, _ = messages_to_chat(_with(metadata={"user_id": "u-1"}))
    assert "metadata" not in chat


def test_a_system_turn_and_a_tool_only_assistant_turn():
    chat, unsupported = messages_to_chat(
        _with(
            messages=[
                {"role": "system", "content": "Use tools."},
                {"role": "user", "content": "Weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Oslo"}}
                    ],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
            ]
        )
    )
    assert unsupported == []
    assert_chat_request(chat)
    assert chat["messages"][0] == {"role": "system", "content": "Use tools."}
    assert chat["messages"][2]["content"] is None
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": ""}
    assert len(chat["messages"]) == 4  # a turn of tool results only adds no empty user message


def completion(**message) -> dict:
    return {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1733000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, **message},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "total_tokens": 1280,
            "prompt_tokens_details": {"cached_tokens": 1024},
        },
    }


def test_a_chat_completion_with_tool_calls_becomes_a_message():
    chat = completion(
        content="Checking both cities.",
        tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Lon'},
            },
        ],
    )
    chat["choices"][0]["finish_reason"] = "tool_calls"
    ChatCompletion.model_validate(chat)
    message = chat_to_messages(chat, model="claude-sonnet")
    Message.model_validate(message)
    assert message == {
        "id": "msg_AbC123",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet",
        "content": [
            {"type": "text", "text": "Checking both cities."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            # the upstream model wrote invalid JSON: kept, not lost
            {
                "type": "tool_use",
                "id": "call_2",
                "name": "get_weather",
                "input": {"_raw": '{"city": "Lon'},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 176,  # prompt_tokens counts the cached ones; Anthropic's does not
            "output_tokens": 80,
            "cache_read_input_tokens": 1024,
            "cache_creation_input_tokens": 0,
        },
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_finish_reasons_become_stop_reasons(finish, stop_reason):
    chat = completion(content="ok")
    chat["choices"][0]["finish_reason"] = finish
    message = chat_to_messages(chat, model="m")
    Message.model_validate(message)
    assert message["stop_reason"] == stop_reason


def test_a_refusal_and_an_answer_without_usage():
    chat = completion(content=None, refusal="I can't help with that.")
    del chat["usage"]
    message = chat_to_messages(chat, model="m")
    Message.model_validate(message)
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"
    assert message["usage"]["input_tokens"] == 0 and message["usage"]["output_tokens"] == 0


def test_message_ids_keep_the_chat_ids_tail():
    assert message_id("chatcmpl-AbC123") == "msg_AbC123"
    assert message_id("abc") == "msg_abc"
    assert message_id(None).startswith("msg_") and len(message_id(None)) > 10


def test_native_answers_only_have_their_model_rewritten():
    upstream = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    out = orjson.loads(native_json(orjson.dumps(upstream), "my-claude"))
    assert out == dict(upstream, model="my-claude")
    Message.model_validate(out)
    assert native_json(b"[1, 2]", "x") == b"[1, 2]"
    assert native_json(b"<html>bad gateway</html>", "x") == b"<html>bad gateway</html>"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_errors_take_anthropics_shape_and_types(status, kind):
    body = orjson.loads(anthropic_error(status, "Budget exceeded."))
    assert body == {"type": "error", "error": {"type": kind, "message": "Budget exceeded."}}
    if kind != "request_too_large":  # Cloudflare's answer: documented, not in the SDK's union
        ErrorResponse.model_validate(body)
    assert ANTHROPIC_ERROR_TYPES.get(status, kind) == kind


def test_the_sdk_raises_the_right_exception_for_our_error_bodies():
    # what an anthropic SDK client makes of the body (its status decides the class)
    body = orjson.loads(anthropic_error(529, "Overloaded"))
    assert ErrorResponse.model_validate(body).error.type == "overloaded_error"
    assert issubclass(anthropic.InternalServerError, anthropic.APIStatusError)


GPT = ModelRecord(
    name="gpt",
    upstream_model="gpt-4o",
    mode="chat",
    max_output_tokens=None,
    provider=ProviderRecord(
        slug="oai", kind="openai", base_url="https://o.example/v1", api_key="", api_version=""
    ),
    prices=(),
)


def test_local_token_counts_agree_with_the_budget_estimate():
    body = request()
    del body["max_tokens"], body["stream"]  # a count_tokens body has neither
    chat, _ = messages_to_chat(dict(body, max_tokens=1))
    counted = count_tokens_local(body, model=GPT)
    assert counted == billable.prompt_tokens("chat.completions", chat, GPT, bound=True)
    assert counted > 1000  # the cached station list alone is ~1000 tokens
    # with no deployment at hand, the request's own model is counted (bytes for claude)
    assert count_tokens_local(body) >= counted


def test_local_token_counts_include_what_chat_cannot_carry():
    plain = _with(tools=[CUSTOM_TOOL])
    with_server_tool = _with(tools=[CUSTOM_TOOL, WEB_SEARCH])
    assert count_tokens_local(with_server_tool, model=GPT) > count_tokens_local(plain, model=GPT)
    with pytest.raises(GatewayError):
        count_tokens_local({"model": "m", "messages": []}, model=GPT)


def test_a_pdf_document_round_trips_through_the_anthropic_adapter():
    document = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        "cache_control": CACHE,
    }
    chat, _ = messages_to_chat(_with(messages=_user(document, {"type": "text", "text": "Sum up."})))
    back = translate_request(chat, MODEL)
    assert_anthropic_request(back)
    assert back["messages"][0]["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        "cache_control": CACHE,
    }


def test_a_block_type_newer_than_the_translation_is_reported_not_refused():
    """A native Anthropic deployment still gets it as sent; a translation refuses it by name."""
    chat, unsupported = messages_to_chat(_with(messages=_user({"type": "video", "url": "x"})))
    assert unsupported == ["messages[0].content[0]"]
    assert chat["messages"][0]["role"] == "user"
