"""Legacy text completions over Chat Completions, both ways, without the network; answers are
checked against OpenAI's published ``CreateCompletionResponse`` schema and the SDK's model."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import orjson
import pytest
from openai.types import Completion
from openai.types.chat import completion_create_params
from pydantic import TypeAdapter

from gateway.dialects.completions import (
    ChatToCompletionsStream,
    chat_to_completion,
    completions_to_chat,
)
from gateway.errors import GatewayError
from gateway.pricing import Usage
from tests.openai_schema import assert_valid

_CHAT = TypeAdapter(completion_create_params.CompletionCreateParams)


def _drain(value):
    if isinstance(value, dict):
        return {k: _drain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [_drain(v) for v in value]
    return value


def test_a_prompt_becomes_one_user_message_with_the_legacy_defaults():
    chat, unsupported = completions_to_chat(
        {
            "model": "gpt-3.5-turbo-instruct",
            "prompt": "Write a haiku about the sea.",
            "temperature": 0.7,
            "top_p": 0.95,
            "n": 2,
            "stop": ["\n\n"],
            "user": "alice",
            "seed": 7,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "best_of": 1,
            "echo": False,
            "logprobs": None,
            "suffix": None,
            "stream": True,
            "stream_options": {"include_usage": False},
        }
    )
    _drain(_CHAT.validate_python(chat))
    assert unsupported == []
    assert chat == {
        "model": "gpt-3.5-turbo-instruct",
        "messages": [{"role": "user", "content": "Write a haiku about the sea."}],
        "max_tokens": 16,
        "stop": ["\n\n"],
        "temperature": 0.7,
        "top_p": 0.95,
        "n": 2,
        "user": "alice",
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_a_list_of_one_prompt_and_an_explicit_max_tokens():
    chat, unsupported = completions_to_chat({"model": "m", "prompt": ["Hello"], "max_tokens": 300})
    assert unsupported == []
    assert chat["messages"] == [{"role": "user", "content": "Hello"}]
    assert chat["max_tokens"] == 300


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"prompt": ["one", "two"]}, ["prompt"]),
        ({"prompt": [1212, 318, 257]}, ["prompt"]),
        ({"prompt": [[1212, 318], [257]]}, ["prompt"]),
        ({"suffix": "\n}"}, ["suffix"]),
        ({"echo": True}, ["echo"]),
        ({"best_of": 3}, ["best_of"]),
        ({"logprobs": 2}, ["logprobs"]),
        ({"logprobs": 0, "echo": True, "suffix": ""}, ["suffix", "echo", "logprobs"]),
    ],
)
def test_what_chat_cannot_do_is_listed(extra, expected):
    _, unsupported = completions_to_chat({"model": "m", "prompt": "x", **extra})
    assert unsupported == expected


@pytest.mark.parametrize(
    "body", [[], {"model": "m"}, {"model": "m", "prompt": 5}, {"model": "m", "prompt": []}]
)
def test_invalid_bodies_are_a_400(body):
    with pytest.raises(GatewayError) as caught:
        completions_to_chat(body)
    assert caught.value.status == 400


def test_a_chat_completion_becomes_a_text_completion():
    chat = {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Waves fold into foam",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "length",
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": "Salt wind, grey water"},
                "logprobs": None,
                "finish_reason": "tool_calls",  # a chat-only reason: a stop to the legacy API
            },
        ],
        "usage": {
            "prompt_tokens": 14,
            "completion_tokens": 16,
            "total_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        "system_fingerprint": "fp_06737a9306",
    }
    out = chat_to_completion(chat, model="haiku-writer")
    assert_valid("CreateCompletionResponse", out)
    parsed = Completion.model_validate(out)
    assert out["object"] == "text_completion"
    assert out["id"] == "cmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert out["model"] == "haiku-writer"
    assert [(c.index, c.text, c.finish_reason) for c in parsed.choices] == [
        (0, "Waves fold into foam", "length"),
        (1, "Salt wind, grey water", "stop"),
    ]
    assert out["usage"]["total_tokens"] == 30


def _chat_chunk(delta: dict, finish: str | None = None, index: int = 0) -> bytes:
    chunk = {
        "id": "chatcmpl-xyz",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-mini",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _payloads(data: bytes) -> list:
    out = []
    for block in data.split(b"\n\n"):
        if block:
            assert block.startswith(b"data: ")
            out.append(block[6:] if block == b"data: [DONE]" else orjson.loads(block[6:]))
    return out


def test_a_chat_stream_becomes_text_completion_chunks_then_usage_and_done():
    stream = ChatToCompletionsStream("haiku-writer")
    sent = b""
    for chunk in [
        _chat_chunk({"role": "assistant", "content": ""}),
        _chat_chunk({"content": "Waves"}),
        _chat_chunk({"content": " fold"}),
        _chat_chunk({}, "stop"),
    ]:
        sent += b"".join(stream.feed(chunk))
    usage = Usage(uncached_input=10, cached_input=4, output=3)
    sent += stream.tail(usage=usage, cost=Decimal("0.0000123"), status="ok", error_code="")
    payloads = _payloads(sent)
    assert payloads[-1] == b"[DONE]"
    chunks = payloads[:-1]
    for chunk in chunks:
        # OpenAI sends "finish_reason": null mid-stream, where its spec and SDK say a string
        filled = [dict(c, finish_reason=c["finish_reason"] or "stop") for c in chunk["choices"]]
        assert_valid("CreateCompletionResponse", dict(chunk, choices=filled))
        Completion.model_validate(dict(chunk, choices=filled))
        assert chunk["object"] == "text_completion" and chunk["model"] == "haiku-writer"
        assert chunk["id"] == "cmpl-xyz"
    assert [c["choices"][0]["text"] for c in chunks[:-1]] == ["Waves", " fold", ""]
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 3,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4},
        "cost": "0.0000123",
    }
    assert stream.generated_text() == "Waves fold"


def test_no_usage_chunk_when_the_client_did_not_ask():
    stream = ChatToCompletionsStream("m", include_usage=False)
    stream.feed(_chat_chunk({"content": "hi"}))
    tail = stream.tail(usage=Usage(output=1), cost=Decimal(0), status="ok", error_code="")
    assert tail == b"data: [DONE]\n\n"


def test_an_upstream_failure_is_an_openai_error_event_then_done():
    stream = ChatToCompletionsStream("m")
    stream.feed(_chat_chunk({"content": "hi"}))
    payloads = _payloads(
        stream.tail(usage=Usage(), cost=Decimal(0), status="error", error_code="upstream_timeout")
    )
    assert_valid("ErrorResponse", payloads[0])
    assert payloads[0]["error"]["code"] == "upstream_timeout"
    assert payloads[1] == b"[DONE]"


def test_an_adapter_error_event_passes_once():
    stream = ChatToCompletionsStream("m")
    error = (
        b'data: {"error":{"message":"overloaded","type":"api_error","param":null,"code":"x"}}\n\n'
    )
    assert stream.feed(error) == [error]
    tail = stream.tail(
        usage=Usage(), cost=Decimal(0), status="error", error_code="upstream_stream_error"
    )
    assert tail == b"data: [DONE]\n\n"
