"""OpenAI Responses requests as Chat Completions bodies, chat completions as Response objects,
and the conversation helpers behind ``previous_response_id``; no network. Inputs are checked
against the official SDK's request types, outputs against its ``Response`` model and OpenAI's
published schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai.types.chat import completion_create_params
from openai.types.responses import Response, response_create_params
from pydantic import BaseModel, TypeAdapter

from gateway.dialects.responses import (
    chat_to_responses,
    conversation_items,
    expand_input,
    responses_to_chat,
)
from gateway.errors import GatewayError
from gateway.pricing import Usage
from tests.openai_schema import assert_valid

_REQUEST = TypeAdapter(response_create_params.ResponseCreateParamsNonStreaming)
_CHAT = TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming)
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def _drain(value):
    """Consume pydantic's lazy iterators so that every element is validated."""
    if isinstance(value, dict):
        return {k: _drain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [_drain(v) for v in value]
    return value


def _request(body: dict) -> dict:
    _drain(_REQUEST.validate_python(body))  # a body the SDK itself could send
    return body


def _translate(body: dict) -> tuple[dict, list[str]]:
    chat, unsupported = responses_to_chat(_request(body))
    _drain(_CHAT.validate_python(chat))  # a body the chat API accepts
    return chat, unsupported


class Weather(BaseModel):
    city: str
    celsius: float
    summary: str


def test_string_input_with_instructions_and_options():
    chat, unsupported = _translate(
        {
            "model": "gpt-4.1-mini",
            "instructions": "Answer in French.",
            "input": "What is the capital of Italy?",
            "max_output_tokens": 200,
            "temperature": 0.2,
            "top_p": 0.9,
            "metadata": {"ticket": "T-1"},
            "safety_identifier": "user-42",
            "reasoning": {"effort": "low", "summary": "auto"},
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "k1",
            "service_tier": "auto",
            "truncation": "disabled",
            "background": False,
            "previous_response_id": "resp_123",
        }
    )
    assert unsupported == []
    # metadata only tags the call (and OpenAI's chat API refuses it without store: true)
    assert chat == {
        "model": "gpt-4.1-mini",
        "messages": [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "What is the capital of Italy?"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 200,
        "user": "user-42",
        "reasoning_effort": "low",
    }


def test_user_wins_over_safety_identifier_and_a_stream_asks_for_usage():
    chat, _ = responses_to_chat(
        {"model": "m", "input": "hi", "user": "alice", "safety_identifier": "bob", "stream": True}
    )
    assert chat["user"] == "alice"
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}


def test_message_items_with_images_files_and_assistant_history():
    chat, unsupported = _translate(
        {
            "model": "gpt-4.1",
            "input": [
                {"role": "developer", "content": "Describe images tersely."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is in this picture?"},
                        {"type": "input_image", "image_url": PNG, "detail": "low"},
                        {
                            "type": "input_image",
                            "image_url": "https://example.com/cat.jpg",
                            "detail": "auto",
                        },
                    ],
                },
                {
                    "id": "msg_abc",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": "A cat on a mat.", "annotations": []}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "input_file",
                            "filename": "report.pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0xLjQK",
                        },
                        {"type": "input_text", "text": "And summarise this."},
                    ],
                },
            ],
        }
    )
    assert unsupported == []
    assert chat["messages"] == [
        {"role": "developer", "content": "Describe images tersely."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.jpg", "detail": "auto"},
                },
            ],
        },
        {"role": "assistant", "content": "A cat on a mat."},
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {
                        "file_data": "data:application/pdf;base64,JVBERi0xLjQK",
                        "filename": "report.pdf",
                    },
                },
                {"type": "text", "text": "And summarise this."},
            ],
        },
    ]


WEATHER_TOOL = {
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


def test_function_call_history_merges_calls_and_maps_outputs():
    chat, unsupported = _translate(
        {
            "model": "gpt-4.1",
            "input": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [],
                    "encrypted_content": "gAAAA...",
                },
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": "Checking both.", "annotations": []}
                    ],
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_paris",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                    "status": "completed",
                },
                {
                    "type": "function_call",
                    "call_id": "call_rome",
                    "name": "get_weather",
                    "arguments": '{"city":"Rome"}',
                },
                {"type": "function_call_output", "call_id": "call_paris", "output": '{"c":18}'},
                {
                    "type": "function_call_output",
                    "call_id": "call_rome",
                    "output": [{"type": "input_text", "text": '{"c":24}'}],
                },
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
        }
    )
    assert unsupported == []
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_paris",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_rome",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_paris", "content": '{"c":18}'},
        {
            "role": "tool",
            "tool_call_id": "call_rome",
            "content": [{"type": "text", "text": '{"c":24}'}],
        },
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": WEATHER_TOOL["parameters"],
                "strict": True,
            },
        }
    ]
    assert chat["tool_choice"] == "auto"
    assert chat["parallel_tool_calls"] is True


def test_function_calls_without_a_text_message_make_their_own_assistant_turn():
    chat, _ = responses_to_chat(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "go"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
                {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
            ],
            "tools": [{"type": "function", "name": "f", "parameters": None, "strict": None}],
        }
    )
    assistant = [m for m in chat["messages"] if m["role"] == "assistant"]
    assert [len(m["tool_calls"]) for m in assistant] == [1, 1]
    assert assistant[0]["content"] is None
    assert chat["tools"] == [{"type": "function", "function": {"name": "f"}}]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", "none"),
        ("required", "required"),
        (
            {"type": "function", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_mapping(choice, expected):
    chat, unsupported = _translate(
        {"model": "m", "input": "x", "tools": [WEATHER_TOOL], "tool_choice": choice}
    )
    assert unsupported == []
    assert chat["tool_choice"] == expected


def test_allowed_tools_is_refused_rather_than_left_unenforced():
    body = {
        "model": "m",
        "input": "x",
        "tools": [WEATHER_TOOL],
        "tool_choice": {
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "get_weather"}],
        },
    }
    chat, unsupported = responses_to_chat(_request(body))
    assert unsupported == ["tool_choice"]
    assert "tool_choice" not in chat


def test_tool_choice_and_parallel_calls_are_left_out_without_tools():
    chat, _ = responses_to_chat(
        {
            "model": "m",
            "input": "x",
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": False,
        }
    )
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat


def test_text_format_json_schema_from_a_pydantic_model():
    schema = Weather.model_json_schema()
    schema["additionalProperties"] = False
    chat, unsupported = _translate(
        {
            "model": "gpt-4.1",
            "input": "Weather in Oslo, as JSON.",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "weather",
                    "schema": schema,
                    "strict": True,
                },
                "verbosity": "low",
            },
        }
    )
    assert unsupported == []
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": schema, "strict": True},
    }
    assert chat["verbosity"] == "low"


def test_text_format_json_object_and_text():
    chat, _ = _translate({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}})
    assert chat["response_format"] == {"type": "json_object"}
    chat, _ = _translate({"model": "m", "input": "x", "text": {"format": {"type": "text"}}})
    assert "response_format" not in chat


def test_what_chat_cannot_express_is_listed_by_path():
    chat, unsupported = responses_to_chat(
        {
            "model": "gpt-4.1",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Look"},
                        {"type": "input_image", "file_id": "file-123", "detail": "auto"},
                        {"type": "input_file", "file_id": "file-456"},
                        {"type": "input_file", "file_url": "https://example.com/a.pdf"},
                    ],
                },
                {"type": "item_reference", "id": "msg_old"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {}},
                {"role": "system", "content": [{"type": "input_image", "image_url": PNG}]},
            ],
            "tools": [
                WEATHER_TOOL,
                {"type": "web_search"},
                {"type": "file_search", "vector_store_ids": ["vs_1"]},
                {"type": "code_interpreter", "container": {"type": "auto"}},
                {"type": "mcp", "server_label": "x", "server_url": "https://mcp.example"},
                {"type": "image_generation"},
                {"type": "custom", "name": "grammar"},
                {
                    "type": "computer_use_preview",
                    "display_width": 1,
                    "display_height": 1,
                    "environment": "linux",
                },
            ],
            "tool_choice": {"type": "web_search_preview"},
            "background": True,
            "conversation": "conv_1",
            "prompt": {"id": "pmpt_1", "version": "2"},
            "top_logprobs": 3,
            "truncation": "auto",
        }
    )
    assert unsupported == [
        "input[0].content[1].file_id",
        "input[0].content[2].file_id",
        "input[0].content[3].file_url",
        "input[1]",
        "input[2]",
        "input[3].content[0]",
        "tools[1]",
        "tools[2]",
        "tools[3]",
        "tools[4]",
        "tools[5]",
        "tools[6]",
        "tools[7]",
        "tool_choice",
        "background",
        "conversation",
        "prompt",
        "top_logprobs",
        "truncation",
    ]
    assert chat["messages"][0]["content"] == [{"type": "text", "text": "Look"}]
    assert [t["function"]["name"] for t in chat["tools"]] == ["get_weather"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 42}, "input"),
        ({"model": "m", "input": [{"type": "bogus_item"}]}, "input[0].type"),
        ({"model": "m", "input": ["hello"]}, "input[0]"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": ["user"], "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"type": {"a": 1}}]}, "input[0].type"),
        ({"model": "m", "input": "x", "tool_choice": {"type": {"a": 1}}}, "tool_choice"),
        ({"model": "m", "input": "x", "tool_choice": ["auto"]}, "tool_choice"),
        ({"model": "m", "input": [{"role": "user"}]}, "input[0].content"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "audio"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        (
            {"model": "m", "input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]},
            "input[0].name",
        ),
        (
            {"model": "m", "input": [{"type": "function_call_output", "output": "x"}]},
            "input[0].call_id",
        ),
        (
            {
                "model": "m",
                "input": [{"type": "function_call_output", "call_id": "c", "output": 3}],
            },
            "input[0].output",
        ),
        ({"model": "m", "input": "x", "instructions": ["a"]}, "instructions"),
        ({"model": "m", "input": "x", "tools": {"type": "function"}}, "tools"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        (
            {"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
            "text.format.schema",
        ),
        (
            {"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
        ),
        ({"model": "m", "input": "x", "reasoning": "high"}, "reasoning"),
    ],
)
def test_invalid_bodies_are_a_400_naming_the_parameter(body, param):
    with pytest.raises(GatewayError) as caught:
        responses_to_chat(body)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"


# --- chat completion -> Response ------------------------------------------------------------

CHAT_ANSWER = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me check the weather in both cities.",
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {
                        "id": "call_paris",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_rome",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 90,
        "total_tokens": 1290,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_123",
}
REQUEST = {
    "model": "weather-bot",
    "instructions": "Be brief.",
    "input": "Weather in Paris and Rome?",
    "tools": [WEATHER_TOOL],
    "tool_choice": "auto",
    "max_output_tokens": 500,
    "metadata": {"ticket": "T-1"},
    "store": True,
    "previous_response_id": "resp_prev",
}


def _validated(response: dict) -> Response:
    assert_valid("Response", response)
    model = Response.model_validate(response)
    assert "output_text" not in response  # an SDK property, never a field
    return model


def test_chat_completion_with_text_and_tool_calls_becomes_a_response():
    out = chat_to_responses(
        CHAT_ANSWER, model="weather-bot", response_id="resp_abc123", request=REQUEST
    )
    parsed = _validated(out)
    assert out["id"] == "resp_abc123"
    assert out["object"] == "response"
    assert out["status"] == "completed"
    assert out["model"] == "weather-bot"
    assert out["created_at"] == 1741569952
    assert [item["type"] for item in out["output"]] == ["message", "function_call", "function_call"]
    message, paris, rome = out["output"]
    assert message["id"].startswith("msg_") and message["role"] == "assistant"
    assert message["status"] == "completed"
    assert message["content"][0]["text"] == "Let me check the weather in both cities."
    assert message["content"][0]["annotations"] == []
    assert paris["id"].startswith("fc_") and paris["id"] != rome["id"]
    assert (paris["call_id"], paris["name"], paris["arguments"]) == (
        "call_paris",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert paris["status"] == "completed"
    assert out["usage"] == {
        "input_tokens": 1200,
        "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
        "output_tokens": 90,
        "output_tokens_details": {"reasoning_tokens": 64},
        "total_tokens": 1290,
    }
    assert parsed.output_text == "Let me check the weather in both cities."
    # the request's settings, echoed
    assert out["instructions"] == "Be brief."
    assert out["max_output_tokens"] == 500
    assert out["metadata"] == {"ticket": "T-1"}
    assert out["previous_response_id"] == "resp_prev"
    assert out["tool_choice"] == "auto"
    assert out["tools"][0]["name"] == "get_weather" and out["tools"][0]["strict"] is True
    assert out["store"] is True
    assert out["incomplete_details"] is None and out["error"] is None


def test_defaults_echoed_as_openai_returns_them():
    out = chat_to_responses(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi"},
                    "finish_reason": "stop",
                }
            ]
        },
        model="m",
        response_id="resp_1",
        request={"model": "m", "input": "hello"},
    )
    _validated(out)
    assert out["usage"] is None
    assert out["temperature"] == 1.0 and out["top_p"] == 1.0
    assert out["parallel_tool_calls"] is True
    assert out["tool_choice"] == "auto" and out["tools"] == []
    assert out["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    assert out["truncation"] == "disabled"
    assert out["reasoning"] == {"effort": None, "summary": None}
    assert out["metadata"] == {} and out["store"] is True


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_truncated_or_filtered_answers_are_incomplete(finish, reason):
    chat = {
        "created": 1,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Once upon"},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21},
    }
    out = chat_to_responses(chat, model="m", response_id="resp_2", request={"input": "story"})
    _validated(out)
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": reason}
    assert out["output"][0]["status"] == "incomplete"


def test_a_refusal_becomes_a_refusal_part():
    chat = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": "I can't help with that.",
                },
                "finish_reason": "stop",
            }
        ]
    }
    out = chat_to_responses(chat, model="m", response_id="resp_3", request={"input": "x"})
    _validated(out)
    assert out["output"][0]["content"] == [
        {"type": "refusal", "refusal": "I can't help with that."}
    ]


def test_json_schema_answer_echoes_the_text_format():
    schema = Weather.model_json_schema()
    request = {
        "input": "Oslo?",
        "text": {
            "format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": False}
        },
    }
    chat = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": '{"city":"Oslo","celsius":3.5,"summary":"cold"}',
                },
                "finish_reason": "stop",
            }
        ]
    }
    out = chat_to_responses(chat, model="m", response_id="resp_4", request=request)
    parsed = _validated(out)
    assert out["text"]["format"]["name"] == "weather"
    assert Weather.model_validate_json(parsed.output_text).city == "Oslo"


# --- conversation state ---------------------------------------------------------------------


def test_conversation_items_then_expand_input_for_a_follow_up():
    first_input = expand_input(
        [], {"model": "m", "input": "Weather in Paris?", "instructions": "Brief."}
    )
    assert "previous_response_id" not in first_input
    assert first_input["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Weather in Paris?"}],
        }
    ]
    response = {
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAA"},
            {
                "id": "fc_1",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
        ]
    }
    history = conversation_items(first_input["input"], response)
    assert [item.get("id") for item in history] == [None, "rs_2", "fc_1"]
    follow_up = {
        "model": "m",
        "previous_response_id": "resp_1",
        "instructions": "Now in French.",
        "input": [
            {"type": "function_call_output", "call_id": "call_1", "output": '{"c":18}'},
            {"role": "user", "content": "And tomorrow?"},
        ],
    }
    expanded = expand_input(history, follow_up)
    assert "previous_response_id" not in expanded
    assert expanded["instructions"] == "Now in French."  # its own, not the first one's
    assert expanded["input"][:3] == history
    assert expanded["input"][3]["type"] == "function_call_output"
    assert expanded["input"][4] == {"type": "message", "role": "user", "content": "And tomorrow?"}
    _request(expanded)
    chat, unsupported = _translate(expanded)
    assert unsupported == []
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert chat["messages"][0]["content"] == "Now in French."
    assert follow_up["previous_response_id"] == "resp_1"  # the caller's body is left alone


def test_expand_input_refuses_a_bad_input():
    with pytest.raises(GatewayError) as caught:
        expand_input([], {"input": 7})
    assert caught.value.param == "input"


# --- usage ----------------------------------------------------------------------------------


def test_responses_usage_counts_cache_reads_and_writes_inside_input_tokens():
    usage = {
        "input_tokens": 2000,
        "input_tokens_details": {"cached_tokens": 1500, "cache_write_tokens": 300},
        "output_tokens": 400,
        "output_tokens_details": {"reasoning_tokens": 350},
        "total_tokens": 2400,
    }
    parsed = Usage.from_responses(usage)
    assert parsed == Usage(uncached_input=200, cached_input=1500, cache_write=300, output=400)
    assert parsed.prompt_tokens == 2000  # as input_tokens counts it


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (None, None),
        ("12", None),
        ({"input_tokens": 10, "output_tokens": 3}, Usage(uncached_input=10, output=3)),
        (
            {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 99}, "output_tokens": 1},
            Usage(cached_input=10, output=1),
        ),
        ({"input_tokens": -4, "input_tokens_details": None, "output_tokens": "7"}, Usage()),
    ],
)
def test_responses_usage_tolerates_missing_and_odd_fields(usage, expected):
    assert Usage.from_responses(usage) == expected
