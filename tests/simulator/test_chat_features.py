"""Chat Completions and legacy Completions as the official ``openai`` SDK uses them: offered
tools called by the documented rule, structured output parsed into pydantic models, ``n``
distinct choices, reasoning tokens, cached tokens on a repeated long prompt; bodies and chunks
checked against OpenAI's published schemas."""

from __future__ import annotations

import openai
import orjson
import pytest
from pydantic import BaseModel

from simulator import SimConfig, generated_text
from tests.openai_schema import assert_valid
from tests.simulator.conftest import threaded_sim

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
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the handbook",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


class Verdict(BaseModel):
    winner: str
    score: int
    reasons: list[str]


def chunks_of(raw: bytes) -> list[dict]:
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    assert events[-1] == b"data: [DONE]"
    return [orjson.loads(e[6:]) for e in events[:-1]]


def test_offered_tools_are_called_by_the_rule(server):
    client = server.openai()
    completion = client.chat.completions.create(
        model="gpt-4o", messages=ASK, tools=[SEARCH, WEATHER]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"  # shares "weather" with the prompt
    assert orjson.loads(call.function.arguments) == {"city": "sim"}
    assert completion.usage.completion_tokens == 3 + 4  # "get_weather", '{"city":"sim"}'
    # no word in common: the first tool
    other = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi!"}], tools=[SEARCH, WEATHER]
    )
    assert other.choices[0].message.tool_calls[0].function.name == "search_docs"
    assert other.choices[0].message.tool_calls[0].function.arguments == '{"query":"sim"}'


def test_no_tool_call_after_a_tool_result_or_with_tool_choice_none(server):
    client = server.openai()
    first = client.chat.completions.create(model="gpt-4o", messages=ASK, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    answer = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            *ASK,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
        tools=[WEATHER],
    )
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == generated_text(16)
    # the assistant's call is part of the prompt: its name and arguments count
    tools = (len(orjson.dumps([WEATHER])) + 3) // 4
    assert answer.usage.prompt_tokens == 3 + (3 + 8) + (3 + 3 + 4) + (3 + 3) + tools
    none = client.chat.completions.create(
        model="gpt-4o", messages=ASK, tools=[WEATHER], tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None


def test_streamed_tool_call_deltas(server):
    response = server.post(
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": ASK, "tools": [WEATHER], "stream": True},
        headers={"x-sim-chunks": "3"},
    )
    chunks = chunks_of(response.content)
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    opening = chunks[0]["choices"][0]["delta"]
    assert opening["role"] == "assistant"
    assert opening["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert opening["tool_calls"][0]["id"].startswith("call_")
    pieces = [c["choices"][0]["delta"]["tool_calls"][0]["function"] for c in chunks[1:-1]]
    assert len(pieces) == 3
    assert "".join(p["arguments"] for p in pieces) == '{"city":"sim"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # the SDK's stream helper puts them together
    with server.openai().chat.completions.stream(
        model="gpt-4o", messages=ASK, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"city":"sim"}'


def test_parse_returns_a_pydantic_model(server):
    client = server.openai()
    completion = client.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "Judge"}], response_format=Verdict
    )
    message = completion.choices[0].message
    assert message.parsed == Verdict(winner="sim", score=0, reasons=["sim"])
    assert completion.usage.completion_tokens == (len(message.content) + 3) // 4
    # a strict pydantic tool is parsed too
    tool = client.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Judge"}],
        tools=[openai.pydantic_function_tool(Verdict)],
    )
    assert tool.choices[0].message.tool_calls[0].function.parsed_arguments == Verdict(
        winner="sim", score=0, reasons=["sim"]
    )


def test_json_object_answer_and_a_capped_schema_answer(server):
    client = server.openai()
    plain = client.chat.completions.create(
        model="gpt-4o", messages=ASK, response_format={"type": "json_object"}
    )
    assert isinstance(orjson.loads(plain.choices[0].message.content), dict)
    capped = client.chat.completions.create(
        model="gpt-4o",
        messages=ASK,
        max_tokens=3,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "v", "schema": Verdict.model_json_schema()},
        },
    )
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage.completion_tokens == 3
    assert len(capped.choices[0].message.content) == 12  # what three tokens hold


def test_n_choices_are_distinct_and_all_counted(server):
    raw = server.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=ASK, n=3
    )
    assert_valid("CreateChatCompletionResponse", orjson.loads(raw.http_response.content))
    completion = raw.parse()
    texts = [c.message.content for c in completion.choices]
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert texts[0] == generated_text(16) and len(set(texts)) == 3
    assert all(len(t.split()) == 16 for t in texts)
    assert completion.usage.completion_tokens == 48
    stream = server.post(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": ASK,
            "n": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    chunks = chunks_of(stream.content)
    text = {0: "", 1: "", 2: ""}
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
        for choice in chunk["choices"]:
            text[choice["index"]] += choice["delta"].get("content") or ""
    assert list(text.values()) == texts
    assert chunks[-1]["usage"]["completion_tokens"] == 48


def test_reasoning_effort_costs_reasoning_tokens(server):
    completion = server.openai().chat.completions.create(
        model="o3-mini", messages=ASK, reasoning_effort="medium"
    )
    usage = completion.usage
    assert usage.completion_tokens_details.reasoning_tokens == 32
    assert usage.completion_tokens == 32 + 16
    assert completion.choices[0].message.content == generated_text(16)


def test_repeated_long_prompt_reports_cached_tokens(server):
    client = server.openai()
    document = [{"role": "system", "content": "Every invoice line is checked twice. " * 150}]
    first = client.chat.completions.create(
        model="gpt-4o", messages=[*document, {"role": "user", "content": "First question?"}]
    )
    second = client.chat.completions.create(
        model="gpt-4o", messages=[*document, {"role": "user", "content": "Another one?"}]
    )
    assert first.usage.prompt_tokens >= 1024
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0 and cached < second.usage.prompt_tokens
    short = [{"role": "user", "content": "short prompt"}]
    for _ in range(2):
        again = client.chat.completions.create(model="gpt-4o", messages=short)
        assert again.usage.prompt_tokens_details.cached_tokens == 0  # under 1,024 tokens


def test_bill_max_reports_no_cache_discount():
    with threaded_sim(SimConfig(bill_max=True)) as sim:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x " * 3000}]}
        for _ in range(2):
            usage = sim.post("/v1/chat/completions", {**body, "max_tokens": 7}).json()["usage"]
            assert usage["prompt_tokens_details"]["cached_tokens"] == 0
            assert usage["completion_tokens"] == 7


# --- legacy completions ------------------------------------------------------------------------


def test_legacy_completion_json(server):
    client = server.openai()
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt=["Say hi", "Say bye"], n=2, max_tokens=5
    )
    assert_valid("CreateCompletionResponse", orjson.loads(raw.http_response.content))
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    assert completion.choices[0].text == generated_text(5)
    assert completion.choices[1].text != completion.choices[0].text
    assert {c.finish_reason for c in completion.choices} == {"length"}
    assert completion.usage.prompt_tokens == 2 + 2
    assert completion.usage.completion_tokens == 4 * 5
    echo = client.completions.create(model="m", prompt="Hello", echo=True, max_tokens=2)
    assert echo.choices[0].text == "Hello" + generated_text(2)


def test_legacy_completion_stream(server):
    stream = server.openai().completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say hi",
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            text += choice.text
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert text == generated_text(16)
    assert finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, 16)


@pytest.mark.parametrize("prompt", [None, [], 5, [[1, 2], "x", {}]])
def test_legacy_completion_rejects_bad_prompts(server, prompt):
    response = server.post("/v1/completions", {"model": "m", "prompt": prompt})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"


def test_legacy_completion_on_an_azure_deployment(server):
    client = openai.AzureOpenAI(
        azure_endpoint=server.url, api_key="az-key", api_version="2024-10-21"
    )
    completion = client.completions.create(model="instruct-deploy", prompt=[1, 2, 3])
    assert completion.model == "instruct-deploy"
    assert completion.usage.prompt_tokens == 3
