"""The exact response cache over real HTTP: uvicorn + the upstream simulator, the official
``openai`` and ``anthropic`` SDKs as clients, the ledger checked row by row.

The cache is switched on for keys of this module only (key-scope policies), so the rest of the
live suite is unaffected; every prompt carries a fresh token so no test meets another's entry.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import anthropic
import httpx
import openai
import orjson
import pytest

from gateway.models import LLMModel, Provider, UsageEvent
from teams.cache_services import cache_policy_create, cache_policy_update
from teams.models import CachePolicy, Organization
from teams.services import key_mint, key_revoke
from tests import factories as f

pytestmark = pytest.mark.live

MTOK = Decimal(1_000_000)


class World:
    """This module's keys: ``secret`` (cached, ``tools`` off), ``small`` (1 KiB entries),
    ``other`` (another organisation's, cached, with the same model names)."""

    def __init__(self, live) -> None:
        self.live = live
        self.secret = ""
        self.small = ""
        self.other = ""
        self.policy = None
        self.org_b = None
        self.keys = []


def _prompt(text: str = "Summarise the quarter in one line.") -> list[dict]:
    return [{"role": "user", "content": f"{text} [{uuid.uuid4().hex}]"}]


def sim_requests(live) -> int:
    return httpx.get(f"{live.simulator.url}/_sim/health", timeout=5).json()["requests"]


def post(live, path: str, body: dict, secret: str, headers: dict | None = None) -> httpx.Response:
    hdrs = {"authorization": f"Bearer {secret}", **(headers or {})}
    return httpx.post(f"{live.app.url}{path}", json=body, headers=hdrs, timeout=30)


def _until(check, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _cache_header(live, secret: str) -> str | None:
    body = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0}
    return post(live, "/v1/chat/completions", body, secret).headers.get("x-finops-cache")


@pytest.fixture(scope="module")
def world(live):
    w = World(live)
    with live.blocker.unblock():
        minted = key_mint(team=live.team, name="cache-svc")
        small = key_mint(team=live.team, name="cache-small")
        w.keys = [minted.key, small.key]
        w.secret, w.small = minted.secret, small.secret
        w.policy = cache_policy_create(
            actor=None, org=live.org, scope="key", key=minted.key, ttl_seconds=600
        )
        cache_policy_create(
            actor=None, org=live.org, scope="key", key=small.key, max_entry_bytes=1024
        )
        Organization.objects.filter(slug="live-cache-b").delete()
        w.org_b = f.make_org("live-cache-b")
        team_b = f.make_team(w.org_b, "search")
        provider = Provider.objects.create(
            org=w.org_b,
            slug="sim",
            kind="openai",
            base_url=f"{live.simulator.url}/v1",
            api_key_env="FINOPS_SIM_KEY",
        )
        f.make_model(w.org_b, "gpt-4o-mini", provider=provider)
        w.other = key_mint(team=team_b, name="b-svc").secret
        cache_policy_create(actor=None, org=w.org_b, scope="org")
    for secret in (w.secret, w.small, w.other):
        _until(lambda s=secret: _cache_header(live, s) == "miss", "the policy never applied")
    yield w
    _redis_forget(live.org, w.org_b)
    with live.blocker.unblock():
        CachePolicy.objects.filter(org__in=[live.org, w.org_b]).delete()
        for key in w.keys:
            key_revoke(key=key)
        UsageEvent.objects.filter(org_id=w.org_b.pk).delete()
        LLMModel.objects.filter(org=w.org_b).delete()
        w.org_b.delete()


def _redis_forget(*orgs) -> None:
    """This module's answers out of Redis (DB shared by test runs)."""
    from django.conf import settings

    if not settings.REDIS_URL:
        return
    import redis

    r = redis.Redis.from_url(settings.REDIS_URL)
    for org in orgs:
        created = int(org.created_at.timestamp() * 1_000_000)
        for key in r.scan_iter(f"finops:rc:{{{org.pk}.{created}}}:*", count=1000):
            r.delete(key)


def client(world, secret: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=world.live.base_url, api_key=secret or world.secret, max_retries=0
    )


def rows(live, request_id: str) -> list[UsageEvent]:
    return live.events(request_id)


def price_now(prompt: int, completion: int, in_mtok="0.15", out_mtok="0.60") -> Decimal:
    return (prompt * Decimal(in_mtok) + completion * Decimal(out_mtok)) / MTOK


def assert_hit_row(live, request_id: str, saved: Decimal, *, streamed: bool = False) -> None:
    [row] = rows(live, request_id)
    assert row.cache_hit and row.saving_lever == "cache"
    assert row.cost == 0 and row.saved_usd == saved
    assert (row.prompt_tokens, row.completion_tokens) == (0, 0)
    assert row.status == "ok" and row.streamed is streamed
    assert row.key_id is not None and row.team_id == live.team.pk


# --- chat -------------------------------------------------------------------------------------


def test_a_cached_chat_call_hits_twice_at_zero_cost_with_exact_savings(world):
    live = world.live
    messages = _prompt()
    first = client(world).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0
    )
    assert first.headers["x-finops-cache"] == "miss"
    answer = first.parse()
    usage = answer.usage
    saved = price_now(usage.prompt_tokens, usage.completion_tokens)
    assert Decimal(first.headers["x-finops-cost"]) == saved
    [miss_row] = rows(live, first.headers["x-request-id"])
    assert not miss_row.cache_hit and miss_row.cost == saved
    upstream = sim_requests(live)
    for _ in range(2):
        hit = client(world).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, temperature=0, user="someone-else"
        )
        assert hit.headers["x-finops-cache"] == "hit"
        assert hit.headers["x-finops-cost"] == "0"
        assert hit.headers["x-finops-attempts"] == "0"
        assert hit.headers["x-finops-model"] == "gpt-4o-mini"
        cached = hit.parse()
        assert cached.choices[0].message.content == answer.choices[0].message.content
        assert cached.usage.prompt_tokens == usage.prompt_tokens
        assert cached.id != answer.id
        assert_hit_row(live, hit.headers["x-request-id"], saved)
    assert sim_requests(live) == upstream  # nothing went upstream


def test_a_cached_stream_hits_twice_and_replays_as_a_stream(world):
    live = world.live
    messages = _prompt("Stream me a line.")

    def stream():
        with client(world).chat.completions.with_streaming_response.create(
            model="gpt-4o-mini",
            messages=messages,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            chunks = list(response.parse())
            return response.headers, chunks

    headers, chunks = stream()
    assert headers["x-finops-cache"] == "miss"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    saved = price_now(usage.prompt_tokens, usage.completion_tokens)
    upstream = sim_requests(live)
    _until(lambda: rows(live, headers["x-request-id"]), "the miss was never metered")
    for _ in range(2):
        hit_headers, hit_chunks = stream()
        assert hit_headers["x-finops-cache"] == "hit"
        assert "".join(c.choices[0].delta.content or "" for c in hit_chunks if c.choices) == text
        assert hit_chunks[-1].usage.completion_tokens == usage.completion_tokens
        assert hit_chunks[-1].usage.model_extra["cost"] == 0
        assert_hit_row(live, hit_headers["x-request-id"], saved, streamed=True)
    # the same request without streaming shares the entry
    plain = client(world).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0
    )
    assert plain.headers["x-finops-cache"] == "hit"
    assert plain.parse().choices[0].message.content == text
    assert sim_requests(live) == upstream


def test_the_same_request_from_another_organisation_never_hits(world):
    live = world.live
    body = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0}
    assert post(live, "/v1/chat/completions", body, world.secret).headers["x-finops-cache"] == (
        "miss"
    )
    assert post(live, "/v1/chat/completions", body, world.secret).headers["x-finops-cache"] == (
        "hit"
    )
    upstream = sim_requests(live)
    other = post(live, "/v1/chat/completions", body, world.other)
    assert other.status_code == 200 and other.headers["x-finops-cache"] == "miss"
    assert sim_requests(live) == upstream + 1
    [row] = rows(live, other.headers["x-request-id"])
    assert row.org_id == world.org_b.pk and not row.cache_hit and row.cost > 0


def test_cache_control_no_cache_goes_upstream_and_no_store_keeps_nothing(world):
    live = world.live
    body = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0}
    post(live, "/v1/chat/completions", body, world.secret)
    upstream = sim_requests(live)
    fresh = post(live, "/v1/chat/completions", body, world.secret, {"cache-control": "no-cache"})
    assert fresh.headers["x-finops-cache"] == "bypass"
    assert sim_requests(live) == upstream + 1
    skipped = post(live, "/v1/chat/completions", body, world.secret, {"x-finops-cache": "skip"})
    assert skipped.headers["x-finops-cache"] == "bypass"
    assert post(live, "/v1/chat/completions", body, world.secret).headers["x-finops-cache"] == (
        "hit"
    )

    other = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0}
    kept = post(live, "/v1/chat/completions", other, world.secret, {"cache-control": "no-store"})
    assert kept.headers["x-finops-cache"] == "miss"
    assert post(live, "/v1/chat/completions", other, world.secret).headers["x-finops-cache"] == (
        "miss"
    )


def test_a_warm_temperature_is_cached_only_when_the_client_asks(world):
    live = world.live
    body = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0.7}
    for _ in range(2):
        response = post(live, "/v1/chat/completions", body, world.secret)
        assert response.headers["x-finops-cache"] == "bypass"
    use = {"x-finops-cache": "use"}
    assert post(live, "/v1/chat/completions", body, world.secret, use).headers[
        "x-finops-cache"
    ] == ("miss")
    assert post(live, "/v1/chat/completions", body, world.secret, use).headers[
        "x-finops-cache"
    ] == ("hit")


def test_requests_with_tools_are_cached_only_when_the_policy_allows_tools(world):
    live = world.live
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    body = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0, "tools": tools}
    assert post(live, "/v1/chat/completions", body, world.secret).headers["x-finops-cache"] == (
        "bypass"
    )
    with live.blocker.unblock():
        cache_policy_update(
            policy=CachePolicy.objects.get(pk=world.policy.pk), actor=None, tools=True
        )
    try:
        _until(
            lambda: (
                post(live, "/v1/chat/completions", body, world.secret).headers["x-finops-cache"]
                != "bypass"
            ),
            "the tools setting never reached the gateway",
        )
        hit = client(world).chat.completions.with_raw_response.create(**body)
        assert hit.headers["x-finops-cache"] == "hit"
        call = hit.parse().choices[0].message.tool_calls[0]
        assert call.function.name == "lookup"
    finally:
        with live.blocker.unblock():
            cache_policy_update(
                policy=CachePolicy.objects.get(pk=world.policy.pk), actor=None, tools=False
            )
        _until(
            lambda: (
                post(live, "/v1/chat/completions", body, world.secret).headers["x-finops-cache"]
                == "bypass"
            ),
            "tools were never turned off again",
        )


def test_an_answer_larger_than_max_entry_bytes_is_not_stored(world):
    live = world.live
    small = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0}
    post(live, "/v1/chat/completions", small, world.small)
    assert post(live, "/v1/chat/completions", small, world.small).headers["x-finops-cache"] == (
        "hit"
    )
    large = dict(small, messages=_prompt(), n=8)
    post(live, "/v1/chat/completions", large, world.small)
    again = post(live, "/v1/chat/completions", large, world.small)
    assert again.headers["x-finops-cache"] == "miss"
    assert len(again.json()["choices"]) == 8


# --- the other inbound formats ----------------------------------------------------------------


def _anthropic(world) -> anthropic.Anthropic:
    # this SDK's Messages take no temperature (the models fix it): the client opts in instead
    return anthropic.Anthropic(
        base_url=world.live.app.url,
        api_key=world.secret,
        max_retries=0,
        default_headers={"x-finops-cache": "use"},
    )


@pytest.mark.parametrize("model", ["claude-sonnet", "gpt-4o-mini"])
def test_messages_hits_answer_in_anthropic_format_json_and_stream(world, model):
    live = world.live
    kwargs = {
        "model": model,
        "max_tokens": 64,
        "messages": _prompt("Answer in Anthropic's format."),
    }
    first = _anthropic(world).messages.with_raw_response.create(**kwargs)
    assert first.headers["x-finops-cache"] == "miss"
    message = first.parse()
    upstream = sim_requests(live)
    hit = _anthropic(world).messages.with_raw_response.create(**kwargs)
    assert hit.headers["x-finops-cache"] == "hit"
    cached = hit.parse()
    assert cached.type == "message" and cached.model == model
    assert cached.content[0].text == message.content[0].text
    assert cached.usage.output_tokens == message.usage.output_tokens
    with _anthropic(world).messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[0].text
    assert final.stop_reason == message.stop_reason
    assert final.usage.output_tokens == message.usage.output_tokens
    assert sim_requests(live) == upstream
    [row] = rows(live, hit.headers["x-request-id"])
    assert row.api == "messages" and row.cache_hit and row.cost == 0 and row.saved_usd > 0


@pytest.mark.parametrize("model", ["gpt-native", "gpt-4o-mini"])
def test_responses_hits_answer_in_responses_format_json_and_stream(world, model):
    live = world.live
    kwargs = {
        "model": model,
        "input": f"Answer in the Responses format. [{uuid.uuid4().hex}]",
        "temperature": 0,
    }
    first = client(world).responses.with_raw_response.create(**kwargs)
    assert first.headers["x-finops-cache"] == "miss"
    response = first.parse()
    upstream = sim_requests(live)
    hit = client(world).responses.with_raw_response.create(**kwargs)
    assert hit.headers["x-finops-cache"] == "hit"
    cached = hit.parse()
    assert cached.object == "response" and cached.output_text == response.output_text
    assert cached.id != response.id
    events = list(client(world).responses.create(**kwargs, stream=True))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == response.output_text
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == response.output_text
    assert sim_requests(live) == upstream
    # a stored hit can be continued like any response
    follow = client(world).responses.with_raw_response.create(
        model=model, input="And then?", previous_response_id=cached.id
    )
    assert follow.http_response.status_code == 200


def test_legacy_completions_hit(world):
    live = world.live
    body = {"model": "gpt-4o-mini", "prompt": f"Once [{uuid.uuid4().hex}]", "temperature": 0}
    first = client(world).completions.with_raw_response.create(**body)
    assert first.headers["x-finops-cache"] == "miss"
    hit = client(world).completions.with_raw_response.create(**body)
    assert hit.headers["x-finops-cache"] == "hit"
    assert hit.parse().choices[0].text == first.parse().choices[0].text
    chunks = list(client(world).completions.create(**body, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == first.parse().choices[0].text
    assert rows(live, hit.headers["x-request-id"])[0].api == "completions"


def test_embeddings_are_cached(world):
    body = {"model": "text-embedding-3-small", "input": f"vector [{uuid.uuid4().hex}]"}
    first = client(world).embeddings.with_raw_response.create(**body)
    assert first.headers["x-finops-cache"] == "miss"
    hit = client(world).embeddings.with_raw_response.create(**body)
    assert hit.headers["x-finops-cache"] == "hit"
    assert hit.parse().data[0].embedding == first.parse().data[0].embedding


# --- Redis ------------------------------------------------------------------------------------


def test_with_redis_the_answer_lives_in_redis_with_its_ttl(world, settings):
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: the gateway keeps answers in process")
    import redis

    live = world.live
    r = redis.Redis.from_url(settings.REDIS_URL)
    created = int(live.org.created_at.timestamp() * 1_000_000)
    prefix = f"finops:rc:{{{live.org.pk}.{created}}}:"
    before = set(r.scan_iter(f"{prefix}e:*", count=1000))
    body = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0}
    post(live, "/v1/chat/completions", body, world.secret)
    # the answer is stored once the client has it: wait for the write, briefly
    deadline = time.monotonic() + 5
    while not (fresh := set(r.scan_iter(f"{prefix}e:*", count=1000)) - before):
        assert time.monotonic() < deadline, "the answer was never stored in Redis"
        time.sleep(0.02)
    [entry] = fresh
    assert 590_000 < r.pttl(entry) <= 600_000  # the key's policy: ttl_seconds 600
    assert r.zscore(f"{prefix}lru", entry.decode().rsplit(":", 1)[1]) is not None
    assert int(r.get(f"{prefix}bytes")) >= r.strlen(entry)
    stored = orjson.loads(r.get(entry))
    assert stored["v"] == 1 and stored["m"] == "gpt-4o-mini" and stored["f"] == "chat.completions"


def test_hits_misses_stores_and_savings_are_in_metrics(world):
    live = world.live
    body = {"model": "gpt-4o-mini", "messages": _prompt(), "temperature": 0}
    post(live, "/v1/chat/completions", body, world.secret)
    post(live, "/v1/chat/completions", body, world.secret)
    scrape = httpx.get(f"{live.app.url}/metrics", timeout=10).text
    org = live.org.slug
    for line in (
        f'finops_gateway_cache_lookups_total{{org="{org}",result="hit"}}',
        f'finops_gateway_cache_lookups_total{{org="{org}",result="miss"}}',
        f'finops_gateway_cache_stores_total{{org="{org}",result="stored"}}',
        f'finops_gateway_cache_stored_bytes_total{{org="{org}"}}',
        f'finops_gateway_cache_saved_usd_total{{org="{org}"}}',
    ):
        assert line in scrape, line
