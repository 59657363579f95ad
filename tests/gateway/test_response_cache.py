"""The response cache in process: which policy applies, which requests qualify, the key, the
stores (in process and Redis, TTL and eviction, Redis down), and the answers assembled from a
stream and replayed in every format. Over real HTTP: ``test_response_cache_live.py``."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest
from django.conf import settings

from gateway import response_cache as rc
from gateway.dialects import DIALECTS, MESSAGES, RESPONSES
from gateway.pricing import Usage
from gateway.providers.base import CHAT, EMBEDDINGS, UsageChunk
from gateway.proxy import Call
from gateway.records import CachePolicyRecord, GroupRecord, KeyRecord, OrgConfig
from gateway.resolve import Plan
from gateway.response_cache_assemble import (
    ChatAssembler,
    CompletionsAssembler,
    MessagesAssembler,
    ResponsesAssembler,
)
from gateway.response_cache_replay import (
    chat_chunks,
    completions_stream,
    messages_events,
    render_json,
    render_stream,
    responses_events,
)
from gateway.response_cache_store import CacheUnavailable, LocalStore, RedisStore, store_use
from tests.records import model_record

ON = CachePolicyRecord(
    scope="org", enabled=True, ttl_seconds=60, max_entry_bytes=10_000, tools=False
)


def key_record(**kw) -> KeyRecord:
    fields = dict(
        key_id=10,
        name="svc",
        org_id=1,
        org_slug="acme",
        org_tz=UTC,
        team_id=20,
        team_slug="search",
        default_feature="",
        allowed_models=frozenset(),
        fallbacks=(),
        rpm_limit=None,
        tpm_limit=None,
        max_parallel=None,
        valid_until=None,
        revoked=False,
    )
    fields.update(kw)
    return KeyRecord(**fields)


def make_call(body: dict | None = None, *, record=None, model=None, dialect=None, inbound=None,
              requested="gpt-4o-mini", api=CHAT, feature="summarize") -> Call:  # fmt: skip
    model = model or model_record("gpt-4o-mini")
    return Call(
        request_id=uuid.uuid4().hex,
        api=api,
        record=record or key_record(),
        labels=SimpleNamespace(feature=feature, endpoint="", end_user=""),
        body=body if body is not None else chat_body(),
        requested=requested,
        plan=Plan(deployments=[model]),
        started=datetime.now(UTC),
        t0=time.perf_counter(),
        dialect=dialect,
        inbound=inbound,
    )


def chat_body(**kw) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0, **kw}  # fmt: skip


def config(policies=None, *, groups=None, **kw) -> OrgConfig:
    model = model_record("gpt-4o-mini")
    return OrgConfig(
        org_id=1,
        models={"gpt-4o-mini": model},
        groups=groups or {},
        routers={},
        cache_policies={("org",): ON} if policies is None else policies,
        cache_space="1.1",
        **kw,
    )


def scope(**headers) -> dict:
    return {"headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}


def run(coro):
    return asyncio.run(coro)


# --- policy, qualification, key ---------------------------------------------------------------


def policy(scope_: str, **kw) -> CachePolicyRecord:
    return CachePolicyRecord(scope=scope_, enabled=kw.pop("enabled", True), ttl_seconds=60,
                             max_entry_bytes=10_000, tools=False, **kw)  # fmt: skip


def test_the_most_specific_policy_wins_key_feature_team_model_org():
    every = {
        ("key", 10): policy("key"),
        ("feature", 20, "summarize"): policy("feature"),
        ("team", 20): policy("team"),
        ("model", "gpt-4o-mini"): policy("model"),
        ("org",): policy("org"),
    }
    call = make_call()
    for expected in ("key", "feature", "team", "model", "org"):
        assert rc.policy_for(config(every), call).scope == expected
        del every[next(target for target in every if target[0] == expected)]
    assert rc.policy_for(config(every), call) is None


def test_a_disabled_specific_policy_turns_the_cache_off_under_a_broader_one():
    policies = {("team", 20): policy("team", enabled=False), ("org",): policy("org")}
    assert rc.policy_for(config(policies), make_call()) is None
    other_team = make_call(record=key_record(team_id=21))
    assert rc.policy_for(config(policies), other_team).scope == "org"


def test_a_model_policy_matches_the_name_asked_for_with_or_without_router_prefix():
    policies = {("model", "smart"): policy("model")}
    assert rc.policy_for(config(policies), make_call(requested="router:smart")).scope == "model"
    assert rc.policy_for(config(policies), make_call(requested="smart")).scope == "model"
    assert rc.policy_for(config(policies), make_call(requested="gpt-4o")) is None


def test_only_deterministic_requests_qualify_unless_the_client_asks():
    assert rc.qualifies(make_call(chat_body(temperature=0)), ON, use=False)
    assert rc.qualifies(make_call(chat_body(temperature=0.0)), ON, use=False)
    assert not rc.qualifies(make_call(chat_body(temperature=0.7)), ON, use=False)
    assert not rc.qualifies(make_call(chat_body(temperature=False)), ON, use=False)
    no_temperature = chat_body()
    del no_temperature["temperature"]
    assert not rc.qualifies(make_call(no_temperature), ON, use=False)
    assert rc.qualifies(make_call(chat_body(temperature=1.2)), ON, use=True)
    embedding = make_call({"model": "e", "input": "x"}, api=EMBEDDINGS)
    assert rc.qualifies(embedding, ON, use=False)


def test_requests_offering_tools_qualify_only_with_tools_allowed():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    call = make_call(chat_body(tools=tools))
    assert not rc.qualifies(call, ON, use=True)
    assert rc.qualifies(call, CachePolicyRecord("org", True, 60, 10_000, tools=True), use=False)
    native_tools = make_call(chat_body(), inbound={"tools": [{"type": "web_search"}]})
    assert not rc.qualifies(native_tools, ON, use=False)


def test_directives_read_x_finops_cache_and_cache_control():
    assert rc.directives(scope()) == (b"", False, False)
    assert rc.directives(scope(x_finops_cache=" USE ")) == (b"use", False, False)
    assert rc.directives(scope(cache_control="no-cache")) == (b"", True, False)
    assert rc.directives(scope(cache_control="max-age=0, No-Store")) == (b"", False, True)


def _key(call, cfg=None, wire=CHAT) -> str:
    route, _ = rc.route_of(call, cfg or config())
    return rc.cache_key(call, route, wire)


def test_the_key_ignores_what_does_not_change_the_answer():
    base = _key(make_call(chat_body()))
    same = chat_body(stream=True, stream_options={"include_usage": True}, user="bob",
                     metadata={"feature": "x"}, service_tier="flex")  # fmt: skip
    assert _key(make_call(same)) == base
    assert _key(make_call(chat_body(), feature="other")) == base  # attribution is not the key


def test_the_key_holds_the_org_the_request_and_the_resolved_model():
    base = _key(make_call(chat_body()))
    assert _key(make_call(chat_body(), record=key_record(org_id=2))) != base
    assert _key(make_call(chat_body(temperature=0.0001))) != base
    assert _key(make_call(chat_body(n=2))) != base
    assert _key(make_call(chat_body(max_tokens=5))) != base
    other = chat_body(messages=[{"role": "user", "content": "hi!"}])
    assert _key(make_call(other)) != base
    moved = model_record("gpt-4o-mini", upstream="gpt-4.1-mini")
    assert _key(make_call(chat_body(), model=moved)) != base  # a new upstream model: new key
    native = make_call(chat_body(), dialect=DIALECTS[MESSAGES], inbound=chat_body())
    assert _key(native, wire=MESSAGES) != base


def test_a_group_route_is_keyed_by_the_group_whatever_member_goes_first():
    a, b = model_record("a"), model_record("b")
    group = GroupRecord(name="pool", strategy="weighted", members=[(a, 1), (b, 1)], fallbacks=[])
    cfg = config(groups={"pool": group})
    first = make_call(chat_body(), model=a, requested="pool")
    second = make_call(chat_body(), model=b, requested="pool")
    assert _key(first, cfg) == _key(second, cfg)
    assert rc.route_of(first, cfg)[1] == {"a", "b"}


# --- stores ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_local_store_expires_answers_by_its_clock():
    clock = Clock()
    local = LocalStore(max_bytes=1000, clock=clock)
    assert run(local.put("1.1", "k", b"answer", 60))
    clock.now += 59.9
    assert run(local.get("1.1", "k")) == b"answer"
    clock.now += 0.2
    assert run(local.get("1.1", "k")) is None
    assert local.bytes == 0


def test_the_local_store_is_bounded_by_bytes_and_evicts_the_least_recently_used():
    local = LocalStore(max_bytes=100)
    for name in "abc":
        run(local.put("1.1", name, b"x" * 40, 60))
    assert run(local.get("1.1", "a")) is None  # 120 bytes: the oldest went
    assert run(local.get("1.1", "b")) == b"x" * 40  # b is now the most recently used
    run(local.put("1.1", "d", b"y" * 40, 60))
    assert run(local.get("1.1", "c")) is None and run(local.get("1.1", "b")) is not None
    assert local.bytes <= 100 and not run(local.put("1.1", "huge", b"z" * 101, 60))
    assert run(local.get("2.2", "b")) is None  # another organisation's namespace


needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


@needs_redis
def test_redis_keeps_answers_with_their_ttl_within_the_org_byte_budget():
    async def scenario():
        space = f"test-{uuid.uuid4().hex}"
        clock = Clock()  # the LRU's order is by this clock's milliseconds
        redis_store = RedisStore(settings.REDIS_URL, org_bytes=250, clock=clock)
        client = redis_store._redis()
        try:
            assert await redis_store.put(space, "a", b"x" * 100, 30)
            clock.now += 1
            assert await redis_store.put(space, "b", b"x" * 100, 30)
            clock.now += 1
            assert await redis_store.get(space, "a") == b"x" * 100  # a: most recently used
            clock.now += 1
            assert await redis_store.put(space, "c", b"x" * 100, 30)  # 300 > 250: b goes
            assert await redis_store.get(space, "b") is None
            assert await redis_store.get(space, "a") is not None
            entry, lru, sizes, total, _ = RedisStore.keys(space, "c")
            assert 29_000 < await client.pttl(entry) <= 30_000
            assert int(await client.get(total)) == 200
            assert await client.zcard(lru) == 2 and await client.hlen(sizes) == 2
            assert not await redis_store.put(space, "big", b"x" * 251, 30)
        finally:
            keys = [k async for k in client.scan_iter(f"finops:rc:{{{space}}}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    run(scenario())


def test_redis_down_is_a_miss_then_not_tried_for_a_moment():
    async def scenario():
        dead = RedisStore("redis://127.0.0.1:9/0", timeout=0.2)
        t = time.perf_counter()
        with pytest.raises(CacheUnavailable):
            await dead.get("1.1", "k")
        assert not await dead.put("1.1", "k", b"v", 60)
        with pytest.raises(CacheUnavailable):
            await dead.get("1.1", "k")  # the breaker: not tried again
        assert time.perf_counter() - t < 1.0

    run(scenario())


def test_a_lookup_with_redis_down_is_a_miss_and_the_call_goes_on():
    store_use(RedisStore("redis://127.0.0.1:9/0", timeout=0.2))
    try:
        found = run(rc.lookup(scope(), make_call(), config()))
        assert found.status == rc.MISS and found.entry is None and found.write
    finally:
        store_use(None)


# --- lookup and keep, in process --------------------------------------------------------------


def _fill(call, found, answer: dict, usage=Usage(5, 0, 0, 3)):
    rc.attach(call, found)
    call.cache.json_answer(CHAT, orjson.dumps(answer), usage, call.plan.deployments[0])
    call.served = call.plan.deployments[0]


CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}  # fmt: skip


def test_a_stored_answer_is_found_until_its_ttl_passes():
    clock = Clock()
    store_use(LocalStore(clock=clock))
    try:
        call = make_call()
        found = run(rc.lookup(scope(), call, config()))
        assert found.status == rc.MISS
        _fill(call, found, CHAT_ANSWER)
        run(rc.keep(call, found))
        again = run(rc.lookup(scope(), make_call(), config()))
        assert again.status == rc.HIT and again.entry["a"]["choices"][0]["message"]["content"]
        assert again.entry["u"] == [5, 0, 0, 3, 0] and again.entry["m"] == "gpt-4o-mini"
        clock.now += 61
        assert run(rc.lookup(scope(), make_call(), config())).status == rc.MISS
    finally:
        store_use(None)


def test_an_answer_over_max_entry_bytes_a_fallback_or_a_downgrade_is_not_stored():
    store_use(LocalStore())
    small = {("org",): CachePolicyRecord("org", True, 60, max_entry_bytes=200, tools=False)}
    try:
        call = make_call()
        found = run(rc.lookup(scope(), call, config(small)))
        _fill(call, found, CHAT_ANSWER)
        run(rc.keep(call, found))
        assert run(rc.lookup(scope(), make_call(), config(small))).status == rc.MISS
        for change in ("fallback", "downgrade"):
            call = make_call()
            found = run(rc.lookup(scope(), call, config()))
            _fill(call, found, CHAT_ANSWER)
            if change == "fallback":
                call.served = model_record("gpt-4o")
            else:
                call.budget_action = "downgrade"
            run(rc.keep(call, found))
            assert run(rc.lookup(scope(), make_call(), config())).status == rc.MISS
    finally:
        store_use(None)


def test_no_cache_skips_the_lookup_but_stores_and_no_store_stores_nothing():
    store_use(LocalStore())
    try:
        call = make_call()
        found = run(rc.lookup(scope(cache_control="no-cache"), call, config()))
        assert found.status == rc.BYPASS and found.write and not found.read
        _fill(call, found, CHAT_ANSWER)
        run(rc.keep(call, found))
        assert run(rc.lookup(scope(), make_call(), config())).status == rc.HIT
        other = make_call(chat_body(n=2))
        found = run(rc.lookup(scope(cache_control="no-store"), other, config()))
        assert found.status == rc.MISS and not found.write
        rc.attach(other, found)
        assert other.cache is None and (b"x-finops-cache", b"miss") in other.extra_headers
        skip = run(rc.lookup(scope(x_finops_cache="skip"), make_call(), config()))
        assert skip.status == rc.BYPASS and not skip.read and not skip.write
    finally:
        store_use(None)


# --- answers assembled and replayed -----------------------------------------------------------


def _events(chunks: list[dict]) -> list[bytes]:
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]


def test_chat_chunks_assemble_into_the_answer_with_its_tool_calls_and_usage():
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m"}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {**head, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "look", "arguments": '{"q":'}}]}}]},
        {**head, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '"x"}'}}]}}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]  # fmt: skip
    assembler = ChatAssembler()
    for event in _events(chunks):
        assembler.add(event)
    assembler.add(UsageChunk({**head, "choices": [], "usage": {"prompt_tokens": 4}}))
    answer = assembler.answer()
    message = answer["choices"][0]["message"]
    assert message["content"] == "Hello" and answer["usage"] == {"prompt_tokens": 4}
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q":"x"}'}}
    ]
    again = ChatAssembler()
    for event in chat_chunks(answer):
        again.add(event)
    assert again.answer()["choices"] == answer["choices"]


def test_an_unfinished_or_unfaithful_stream_is_not_an_answer():
    head = {"id": "c1", "created": 5, "model": "m"}
    cut = ChatAssembler()
    cut.add(_events([{**head, "choices": [{"index": 0, "delta": {"content": "Hel"}}]}])[0])
    assert cut.answer() is None
    logprobs = ChatAssembler()
    chunk = {**head, "choices": [{"index": 0, "delta": {"content": "a"}, "logprobs": {"x": 1},
                                  "finish_reason": "stop"}]}  # fmt: skip
    logprobs.add(_events([chunk])[0])
    assert logprobs.answer() is None


MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude",
    "content": [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
        {"type": "text", "text": "Hello."},
        {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": "x"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 9, "output_tokens": 4},
}


def test_an_anthropic_message_replays_as_its_events_and_assembles_back():
    assembler = MessagesAssembler()
    for event in messages_events(MESSAGE):
        assembler.add(event)
    assert assembler.answer() == MESSAGE


RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "m",
    "output": [
        {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "Hi.", "annotations": []}]},
        {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "c",
         "name": "look", "arguments": "{}"},
    ],
    "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
}  # fmt: skip


def test_a_response_replays_as_the_responses_event_sequence():
    events = responses_events(RESPONSE)
    kinds = [orjson.loads(e.split(b"data: ", 1)[1])["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    seq = [orjson.loads(e.split(b"data: ", 1)[1])["sequence_number"] for e in events]
    assert seq == list(range(len(events)))
    assembler = ResponsesAssembler()
    for event in events:
        assembler.add(event)
    assert assembler.answer() == RESPONSE


def test_a_legacy_completion_replays_and_assembles_back():
    answer = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
              "choices": [{"text": "Once.", "index": 0, "logprobs": None,
                           "finish_reason": "stop"}]}  # fmt: skip
    stream = completions_stream(dict(answer, usage={"prompt_tokens": 1}), include_usage=True)
    assembler = CompletionsAssembler()
    for event in stream.split(b"\n\n"):
        if event:
            assembler.add(event + b"\n\n")
    assert assembler.answer()["choices"] == answer["choices"]
    assert b'"cost":0' in stream and stream.endswith(b"data: [DONE]\n\n")


def _entry(kind: str, answer: dict) -> dict:
    return {"v": 1, "f": kind, "a": answer, "u": [5, 0, 0, 3, 0], "m": "gpt-4o-mini", "t": 1.0}


def test_a_chat_entry_answers_every_inbound_format():
    entry = _entry(CHAT, CHAT_ANSWER)
    chat = orjson.loads(render_json(entry, make_call()))
    assert chat["choices"] == CHAT_ANSWER["choices"] and chat["id"] != CHAT_ANSWER["id"]
    messages_call = make_call(dialect=DIALECTS[MESSAGES], inbound={"model": "gpt-4o-mini"})
    message = orjson.loads(render_json(entry, messages_call))
    assert message["type"] == "message" and message["content"][0]["text"] == "Hello."
    stream, _ = render_stream(entry, messages_call)
    assert b"event: message_start" in stream and b"Hello." in stream
    responses_call = make_call(dialect=DIALECTS[RESPONSES], inbound={"model": "gpt-4o-mini"})
    response = orjson.loads(render_json(entry, responses_call))
    assert (
        response["object"] == "response" and response["id"] == f"resp_{responses_call.request_id}"
    )
    stream, replayed = render_stream(entry, responses_call)
    assert b"response.completed" in stream and replayed.response["status"] == "completed"


def test_a_chat_stream_replay_ends_with_usage_at_zero_cost_when_asked():
    call = make_call(chat_body(stream=True, stream_options={"include_usage": True}))
    stream, _ = render_stream(_entry(CHAT, CHAT_ANSWER), call)
    events = [e for e in stream.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    usage = orjson.loads(events[-2][6:])["usage"]
    assert usage["cost"] == 0 and usage["completion_tokens"] == 3
    plain, _ = render_stream(_entry(CHAT, CHAT_ANSWER), make_call(chat_body(stream=True)))
    assert b'"usage"' not in plain


def test_a_native_entry_answers_only_its_own_format():
    from gateway.response_cache_replay import renderable

    entry = _entry(MESSAGES, MESSAGE)
    native = make_call(dialect=DIALECTS[MESSAGES], inbound={}, requested="claude-sonnet")
    assert renderable(entry, native) and not renderable(entry, make_call())
    message = orjson.loads(render_json(entry, native))
    assert message["model"] == "claude-sonnet" and message["content"] == MESSAGE["content"]
    assert not renderable(_entry(EMBEDDINGS, {}), native)


def test_a_hit_counts_against_requests_per_minute_but_not_tokens_or_budgets():
    from decimal import Decimal

    from gateway.admission import Admitter
    from gateway.counters import LocalCounters
    from gateway.errors import GatewayError
    from gateway.records import BudgetRecord, TeamLimits
    from gateway.runtime import runtime

    async def seeder(budget, start, end):
        return Decimal("1000")  # every budget is long exhausted

    spent = BudgetRecord(id=1, org_id=1, created=1, scope="org", team_id=None, feature="",
                         key_id=None, period="month", limit=Decimal("1"), action="block",
                         downgrade_to="", fail_open=False, label="org acme")  # fmt: skip
    cfg = config(budgets=[spent], team_limits={20: TeamLimits(None, 1, 1)})
    record = key_record(rpm_limit=2, tpm_limit=1, max_parallel=1)
    saved, runtime.admitter = runtime.admitter, Admitter(LocalCounters(), seeder)
    try:
        for _ in range(2):
            headers = run(rc._requests_counted(make_call(record=record), cfg))
            assert (b"x-ratelimit-limit-requests", b"2") in headers
        with pytest.raises(GatewayError) as limited:
            run(rc._requests_counted(make_call(record=record), cfg))
        assert limited.value.status == 429 and limited.value.code == "rate_limit_exceeded"
        unlimited = make_call(record=key_record(tpm_limit=1))
        assert run(rc._requests_counted(unlimited, cfg)) == []  # no RPM: nothing is counted
    finally:
        runtime.admitter = saved
