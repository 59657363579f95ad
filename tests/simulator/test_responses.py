"""The simulator's Responses API driven by the official ``openai`` SDK over real HTTP: plain,
streamed, with tools, chained by ``previous_response_id``, parsed into pydantic models, capped by
``max_output_tokens``; every body and event checked against OpenAI's published schemas."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest
from openai.lib._tools import pydantic_responses_function_tool
from pydantic import BaseModel

from simulator import generated_text
from tests.openai_schema import assert_valid

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}
CLOCK = {
    "type": "function",
    "name": "local_time",
    "description": "The time of day somewhere",
    "parameters": {"type": "object", "properties": {}},
}
# chat's count of the same conversation: 3 + (3 + 3) for "Be terse." + (3 + 3) for "hello there"
PROMPT_TOKENS = 15


class Flight(BaseModel):
    number: str
    seats: int
    stops: list[str]


def raw_events(sim, body: dict) -> list[tuple[str, dict]]:
    response = sim.post("/v1/responses", {**body, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.content.split(b"\n\n"):
        if not block.strip():
            continue
        name, data = block.split(b"\n", 1)
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        payload = orjson.loads(data[6:])
        assert payload["type"] == name[7:].decode()
        assert_valid("ResponseStreamEvent", payload)
        events.append((payload["type"], payload))
    return events


def test_plain_response_parses_and_counts_like_chat(server):
    client = server.openai()
    raw = client.responses.with_raw_response.create(
        model="gpt-4.1", instructions="Be terse.", input="hello there", metadata={"team": "a"}
    )
    assert_valid("Response", orjson.loads(raw.http_response.content))
    response = raw.parse()
    assert response.status == "completed" and response.object == "response"
    assert response.output_text == generated_text(16)
    assert response.metadata == {"team": "a"}
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (15, 16, 31)
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    chat = client.chat.completions.create(
        model="gpt-4.1",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hello there"},
        ],
    )
    assert chat.usage.prompt_tokens == usage.input_tokens == PROMPT_TOKENS


def test_input_items_count_text_and_images(server):
    response = server.openai().responses.create(
        model="gpt-4.1",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},  # 4
                    {"type": "input_image", "image_url": "https://x.test/a.png"},  # 85
                ],
            }
        ],
    )
    assert response.usage.input_tokens == 3 + 3 + 4 + 85


def test_stream_sends_every_event_in_order(server):
    events = raw_events(server, {"model": "gpt-4.1", "input": "hello there"})
    kinds = [kind for kind, _ in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert kinds.count("response.output_text.delta") == 20  # --chunks default
    assert [e["sequence_number"] for _, e in events] == list(range(len(events)))
    created = events[0][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["usage"] is None
    deltas = "".join(e["delta"] for kind, e in events if kind == "response.output_text.delta")
    assert deltas == generated_text(16) == events[-4][1]["text"]
    done = events[-1][1]["response"]
    assert done["usage"]["input_tokens"] == 3 + 3 + 3
    assert done["usage"]["output_tokens"] == 16


def test_stream_through_the_sdk_helper(server):
    client = server.openai()
    with client.responses.stream(
        model="o3-mini", input="hello there", reasoning={"effort": "low"}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds[2:4] == ["response.output_item.added", "response.output_item.done"]
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == generated_text(16)
    usage = final.usage
    assert usage.output_tokens_details.reasoning_tokens == 16
    assert usage.output_tokens == 16 + 16
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_offered_tool_is_called_then_the_result_is_answered(server):
    client = server.openai()
    first = client.responses.create(
        model="gpt-4.1", input="What is the weather in Paris?", tools=[CLOCK, WEATHER]
    )
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"  # shares "weather"
    assert orjson.loads(call.arguments) == {"city": "sim", "unit": "c"}
    assert call.call_id and call.status == "completed"
    assert first.usage.output_tokens == 3 + 7  # "get_weather", '{"city":"sim","unit":"c"}'
    second = client.responses.create(
        model="gpt-4.1",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[CLOCK, WEATHER],
    )
    assert second.output[0].type == "message"
    assert second.output_text == generated_text(16)
    assert second.previous_response_id == first.id
    # the first prompt, then its call (3 + name + arguments), then the output as a tool message
    assert second.usage.input_tokens == first.usage.input_tokens + (3 + 3 + 7) + (3 + 2)


def test_tool_choice_none_answers_with_text_and_a_named_tool_is_forced(server):
    client = server.openai()
    text = client.responses.create(
        model="gpt-4.1", input="Weather in Rome?", tools=[WEATHER], tool_choice="none"
    )
    assert text.output[0].type == "message"
    forced = client.responses.create(
        model="gpt-4.1",
        input="Weather in Rome?",
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "name": "local_time"},
    )
    assert forced.output[0].name == "local_time"
    assert forced.output[0].arguments == "{}"


def test_streamed_function_call_arguments(server):
    events = raw_events(
        server, {"model": "gpt-4.1", "input": "Weather in Oslo?", "tools": [WEATHER]}
    )
    kinds = [kind for kind, _ in events]
    assert "response.function_call_arguments.done" in kinds
    arguments = "".join(
        e["delta"] for kind, e in events if kind == "response.function_call_arguments.delta"
    )
    done = next(e for kind, e in events if kind == "response.function_call_arguments.done")
    assert arguments == done["arguments"] == '{"city":"sim","unit":"c"}'
    assert done["name"] == "get_weather"
    added = next(e for kind, e in events if kind == "response.output_item.added")
    assert added["item"]["status"] == "in_progress" and added["item"]["arguments"] == ""
    assert kinds[-1] == "response.completed"


def test_parse_returns_a_pydantic_model(server):
    parsed = server.openai().responses.parse(
        model="gpt-4.1", input="Find me a flight", text_format=Flight
    )
    assert isinstance(parsed.output_parsed, Flight)
    assert parsed.output_parsed == Flight(number="sim", seats=0, stops=["sim"])
    assert parsed.usage.output_tokens == (len(parsed.output_text) + 3) // 4


def test_parse_with_a_strict_pydantic_tool(server):
    tool = pydantic_responses_function_tool(Flight, name="book_flight")
    parsed = server.openai().responses.parse(model="gpt-4.1", input="Book a flight", tools=[tool])
    [call] = parsed.output
    assert call.name == "book_flight"
    assert isinstance(call.parsed_arguments, Flight)


def test_max_output_tokens_makes_the_response_incomplete(server):
    client = server.openai()
    capped = client.responses.create(model="gpt-4.1", input="hello", max_output_tokens=5)
    assert capped.status == "incomplete"
    assert capped.incomplete_details.reason == "max_output_tokens"
    assert capped.output_text == generated_text(5)
    assert capped.usage.output_tokens == 5
    events = raw_events(server, {"model": "gpt-4.1", "input": "hello", "max_output_tokens": 5})
    assert events[-1][0] == "response.incomplete"
    assert events[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    # reasoning counts against the cap too
    spent = client.responses.create(
        model="o3-mini", input="hello", max_output_tokens=20, reasoning={"effort": "low"}
    )
    assert spent.status == "incomplete"
    assert spent.usage.output_tokens == 20
    assert spent.usage.output_tokens_details.reasoning_tokens == 16


def test_stored_responses_are_retrieved_and_deleted(server):
    client = server.openai()
    created = client.responses.create(model="gpt-4.1", input="remember me")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == created.output_text
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4.1", input="again", previous_response_id=created.id)
    assert caught.value.body["param"] == "previous_response_id"
    unstored = client.responses.create(model="gpt-4.1", input="forget me", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_repeated_long_prompt_reports_cached_tokens(server):
    client = server.openai()
    document = "The ledger reconciles to the cent every night. " * 200  # 2,400 tokens
    first = client.responses.create(model="gpt-4.1", instructions=document, input="Summarise.")
    again = client.responses.create(model="gpt-4.1", instructions=document, input="Summarise.")
    assert first.usage.input_tokens_details.cached_tokens == 0
    cached = again.usage.input_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0
    assert cached < again.usage.input_tokens == first.usage.input_tokens
    # a follow-up through previous_response_id shares the whole earlier conversation
    follow = client.responses.create(
        model="gpt-4.1", previous_response_id=again.id, input="And shorter?"
    )
    assert follow.usage.input_tokens_details.cached_tokens == 0  # no instructions carried over


def test_azure_responses_path(server):
    client = openai.AzureOpenAI(
        azure_endpoint=server.url, api_key="az-key", api_version="2025-04-01-preview"
    )
    response = client.responses.create(model="my-deployment", input="hello there")
    assert response.model == "my-deployment"
    assert response.usage.input_tokens == 9
    assert client.responses.retrieve(response.id).id == response.id
    v1 = httpx.post(
        f"{server.url}/openai/v1/responses",
        json={"model": "d", "input": "hello there"},
        headers={"api-key": "k"},
    )
    assert v1.status_code == 200 and v1.json()["usage"]["input_tokens"] == 9


def test_bad_requests_get_openai_errors(server):
    cases = [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": ["x"]}, "input"),
    ]
    for body, param in cases:
        response = server.post("/v1/responses", body)
        assert response.status_code == 400, body
        assert_valid("ErrorResponse", response.json())
        assert response.json()["error"]["param"] == param
    wrong = httpx.post(f"{server.url}/v1/responses/resp_x", headers={"x-api-key": "k"})
    assert wrong.status_code == 405


def test_reasoning_summary_streams_and_encrypted_content_is_included(server):
    body = {
        "model": "o3-mini",
        "input": "hello",
        "reasoning": {"effort": "medium", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
    }
    events = raw_events(server, body)
    kinds = [kind for kind, _ in events]
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    summary = "".join(
        e["delta"] for kind, e in events if kind == "response.reasoning_summary_text.delta"
    )
    done = next(e for kind, e in events if kind == "response.output_item.done")
    assert done["item"]["summary"] == [{"type": "summary_text", "text": summary}]
    assert done["item"]["encrypted_content"]
    final = events[-1][1]["response"]
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 32
    parsed = server.openai().responses.create(**body)
    assert parsed.output[0].summary[0].text == summary
