"""Every inbound wire format over real HTTP, driven by the official SDKs: the OpenAI Responses API
(translated onto Chat Completions, onto Anthropic's Messages, and native), Anthropic's Messages
(native and translated onto an OpenAI-kind model), legacy Completions, ``/v1/models/{id}`` and
Azure's deployment paths — each metered in the ledger with its inbound format."""

from __future__ import annotations

import time
from decimal import Decimal

import anthropic
import httpx
import openai
import orjson
import pydantic
import pytest

from gateway.models import UsageEvent
from teams.models import Budget
from teams.services import key_mint
from tests import factories as f
from tests.openai_schema import assert_valid

pytestmark = pytest.mark.live

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def oa(live, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.base_url, api_key=key or live.key_secret, max_retries=0)


def claude(live, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.app.url, api_key=key or live.key_secret, max_retries=0)


def _row(live, raw) -> UsageEvent:
    rows = live.events(raw.headers["x-request-id"])
    assert rows, "no ledger row"
    return rows[-1]


@pytest.mark.parametrize(
    ("model", "translated"),
    [("gpt-4o-mini", True), ("gpt-native", False), ("claude-sonnet", True)],
)
def test_responses_create_is_answered_and_metered(live, model, translated):
    raw = oa(live).responses.with_raw_response.create(
        model=model, input="Summarise the quarter in one line.", instructions="Be brief."
    )
    response = raw.parse()
    assert_valid("Response", raw.http_response.content)
    assert response.output_text
    assert response.model == model
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    row = _row(live, raw)
    assert (row.api, row.translated, row.status) == ("responses", translated, "ok")
    assert row.cost == Decimal(raw.headers["x-finops-cost"]) and row.cost > 0


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-native"])
def test_responses_stream_sends_the_event_sequence_and_usage(live, model):
    with oa(live).responses.stream(model=model, input="Tell me about budgets.") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created"
    assert "response.output_text.delta" in kinds
    assert kinds[-1] == "response.completed"
    assert final.usage.output_tokens > 0 and final.output_text


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-native", "claude-sonnet"])
def test_every_responses_stream_event_fits_openais_schema(live, model):
    body = {"model": model, "input": "What is the weather in Paris?", "stream": True}
    body["tools"] = [WEATHER]
    events = []
    with httpx.stream(
        "POST",
        f"{live.base_url}/responses",
        json=body,
        headers={"authorization": f"Bearer {live.key_secret}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(orjson.loads(line[6:]))
    for event in events:
        assert_valid("ResponseStreamEvent", event)
    numbers = [event["sequence_number"] for event in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    kinds = [event["type"] for event in events]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-1] == "response.completed"


def test_responses_tools_and_previous_response_id_continue_a_conversation(live):
    client = oa(live)
    first = client.responses.create(
        model="gpt-4o-mini", input="What is the weather in Paris?", tools=[WEATHER]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    second = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C"}],
        tools=[WEATHER],
    )
    assert second.output_text
    assert second.previous_response_id == first.id
    # the follow-up carried the whole conversation: its prompt is longer than the first's
    assert second.usage.input_tokens > first.usage.input_tokens
    assert client.responses.retrieve(first.id).id == first.id
    # the input items each turn was given: its own, not the conversation it continued
    (asked,) = client.responses.input_items.list(first.id).data
    assert asked.type == "message" and asked.content[0].text == "What is the weather in Paris?"
    (given,) = client.responses.input_items.list(second.id, order="asc").data
    assert given.type == "function_call_output" and given.output == "18C"


def test_input_items_are_listed_a_page_at_a_time(live):
    client = oa(live)
    turn = [{"role": "user", "content": f"part {i}"} for i in range(5)]
    response = client.responses.create(model="gpt-4o-mini", input=turn)
    page = client.responses.input_items.list(response.id, order="asc", limit=2)
    assert [item.content[0].text if isinstance(item.content, list) else item.content
            for item in page.data] == ["part 0", "part 1"]  # fmt: skip
    assert page.has_more
    rest = client.responses.input_items.list(response.id, order="asc", after=page.data[-1].id)
    assert len(rest.data) == 3 and not rest.has_more
    with pytest.raises(openai.BadRequestError):
        client.responses.input_items.list(response.id, limit=0)
    with live.blocker.unblock():
        other = key_mint(team=live.team, name="other-lister").secret
    with pytest.raises(openai.NotFoundError):
        oa(live, other).responses.input_items.list(response.id)


def test_a_stored_response_is_the_keys_own(live):
    client = oa(live)
    response = client.responses.create(model="gpt-4o-mini", input="remember me")
    with live.blocker.unblock():
        other = key_mint(team=live.team, name="other-reader").secret
    with pytest.raises(openai.NotFoundError):
        oa(live, other).responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        oa(live, other).responses.create(
            model="gpt-4o-mini", input="go on", previous_response_id=response.id
        )
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_responses_parse_returns_the_schemas_object(live):
    class Verdict(pydantic.BaseModel):
        approved: bool
        reason: str

    parsed = oa(live).responses.parse(
        model="gpt-4o-mini", input="Approve the spend?", text_format=Verdict
    )
    assert isinstance(parsed.output_parsed, Verdict)


def test_a_built_in_tool_cannot_be_translated_and_is_refused_by_name(live):
    with pytest.raises(openai.BadRequestError) as caught:
        oa(live).responses.create(
            model="gpt-4o-mini", input="search", tools=[{"type": "web_search_preview"}]
        )
    assert "tools" in str(caught.value)


@pytest.mark.parametrize(("model", "translated"), [("claude-sonnet", False), ("gpt-4o-mini", True)])
def test_messages_create_is_answered_and_metered(live, model, translated):
    raw = claude(live).messages.with_raw_response.create(
        model=model,
        max_tokens=64,
        system="You are terse.",
        messages=[{"role": "user", "content": "Summarise the quarter."}],
        metadata={"user_id": "alice"},
    )
    message = raw.parse()
    assert message.type == "message" and message.model == model
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.output_tokens > 0
    row = _row(live, raw)
    assert (row.api, row.translated, row.end_user) == ("messages", translated, "alice")
    assert row.cost == Decimal(raw.headers["x-finops-cost"]) and row.cost > 0


@pytest.mark.parametrize("model", ["claude-sonnet", "gpt-4o-mini"])
def test_messages_stream_with_tools(live, model):
    tool = {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": WEATHER["parameters"],
    }
    with claude(live).messages.stream(
        model=model,
        max_tokens=128,
        tools=[tool],
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    assert uses and uses[0].name == "get_weather" and "city" in uses[0].input
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude-sonnet", "gpt-4o-mini"])
def test_messages_count_tokens(live, model):
    counted = claude(live).messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    assert counted.input_tokens > 0


def test_messages_errors_are_in_anthropics_shape(live):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude(live).messages.create(
            model="gpt-4o-mini",
            max_tokens=16,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"top_k": 5},
        )
    assert caught.value.body["type"] == "error"
    assert "top_k" in caught.value.body["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError):
        claude(live, "sk-fo-wrong").messages.create(
            model="claude-sonnet", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )


def test_a_budget_blocks_a_messages_call_as_it_blocks_a_chat_call(live):
    with live.blocker.unblock():
        team = f.make_team(live.org)
        key = key_mint(team=team, name="messages-budget").secret
        Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="month",
            limit_usd=Decimal("0.000001"),
            action="block",
        )
    body = {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    deadline = time.monotonic() + 10  # the gateways see a new budget within a poll or two
    while True:
        try:
            oa(live, key).chat.completions.create(model="claude-sonnet", **body)
        except openai.RateLimitError:
            break
        assert time.monotonic() < deadline, "the budget never blocked a chat call"
        time.sleep(0.2)
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude(live, key).messages.create(model="claude-sonnet", **body)
    assert "Budget exhausted" in caught.value.body["error"]["message"]
    assert caught.value.body["type"] == "error"


@pytest.mark.parametrize(("model", "translated"), [("gpt-4o-mini", False), ("claude-sonnet", True)])
def test_legacy_completions(live, model, translated):
    raw = oa(live).completions.with_raw_response.create(
        model=model, prompt="Say hello", max_tokens=16
    )
    completion = raw.parse()
    assert_valid("CreateCompletionResponse", raw.http_response.content)
    assert completion.object == "text_completion" and completion.choices[0].text
    row = _row(live, raw)
    assert (row.api, row.translated) == ("completions", translated)


def test_models_retrieve(live):
    assert oa(live).models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        oa(live).models.retrieve("no-such-model")


def test_azure_deployment_path_and_api_key_header(live):
    client = openai.AzureOpenAI(
        azure_endpoint=live.app.url,
        api_key=live.key_secret,
        api_version="2024-10-21",
        max_retries=0,
    )
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi from Azure"}]
    )
    assert completion.choices[0].message.content
    missing = httpx.post(
        f"{live.app.url}/openai/deployments/gpt-4o-mini/nothing",
        headers={"api-key": live.key_secret},
        timeout=10,
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
