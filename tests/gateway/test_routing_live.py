"""Retries, fallbacks, cooldowns and strategies over real HTTP: failures come from simulators
started with fault flags (500, 429 + Retry-After, latency beyond the timeout, dropped
connections, malformed JSON, streams cut mid-way); the official ``openai`` SDK is the client and
every attempt is checked in the ledger.

The gateway here is its own process with short backoffs and cooldowns, and every test creates
its own deployments, so the routing state one test leaves behind cannot steer another.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest
from django.conf import settings

from gateway.clock import OffsetClock
from gateway.models import LLMModel, Provider
from gateway.tokens import count_messages, count_text, encodings_load
from tests import factories as f
from tests.live import live_database_url, start_app, start_simulator

pytestmark = pytest.mark.live

MTOK = Decimal(1_000_000)
MESSAGES = [{"role": "user", "content": "Which deployment answers this one?"}]
COOLDOWN = 30.0  # never outrun in real time: the test moves the gateway's clock instead
APP_ENV = {
    "FINOPS_UPSTREAM_TIMEOUT": "1.0",  # the farm's slow simulator answers after 3 s
    "FINOPS_RETRIES": "1",
    "FINOPS_RETRY_BACKOFF_SECONDS": "0.05",
    "FINOPS_RETRY_AFTER_MAX_SECONDS": "2",
    "FINOPS_COOLDOWN_FAILURES": "3",
    "FINOPS_COOLDOWN_SECONDS": str(COOLDOWN),
    "FINOPS_ROUTING_SYNC_SECONDS": "0.2",
}
FAULTS = {
    "err500": ("--status", "500"),
    "throttled": ("--status", "429", "--retry-after", "1"),
    "throttled-long": ("--status", "429", "--retry-after", "30"),
    "reset": ("--reset-rate", "1"),
    "malformed": ("--malformed-rate", "1"),
    "cut": ("--cut-stream-after", "3", "--chunk-delay-ms", "20"),
    "lagging": ("--latency-ms", "150"),
    "rejecting": ("--status", "400"),
}


@pytest.fixture(scope="module")
def providers(live, sim_farm, live_tmp):
    """A provider per faulty simulator (plus ``healthy`` and the farm's ``slow``)."""
    with ThreadPoolExecutor(len(FAULTS)) as pool:  # started side by side: a second, not eight
        started = pool.map(lambda args: start_simulator(live_tmp, *args), FAULTS.values())
        sims = dict(zip(FAULTS, started, strict=True))
    urls = {name: s.url for name, s in sims.items()}
    urls["healthy"] = live.simulator.url
    urls["slow"] = sim_farm["slow"].url
    with live.blocker.unblock():
        found = {}
        for name, url in urls.items():
            found[name], _ = Provider.objects.get_or_create(
                org=live.org,
                slug=f"rt-{name}",
                defaults={
                    "kind": "openai",
                    "base_url": f"{url}/v1",
                    "api_key_env": "FINOPS_SIM_KEY",
                },
            )
    yield found
    for server in sims.values():
        server.stop()


@pytest.fixture(scope="module")
def gateway(live, live_tmp):
    with live.blocker.unblock():
        database_url = live_database_url()
    clock = OffsetClock(live_tmp / f"clock-{uuid.uuid4().hex[:8]}")
    app = start_app(
        live_tmp, database_url=database_url, FINOPS_TEST_CLOCK_FILE=str(clock.path), **APP_ENV
    )
    app.clock = clock
    yield app
    app.stop()


def client(live, gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=live.key_secret, max_retries=0)


def deploy(live, providers, fault: str, *, inp="0.15", out="0.60", window=None) -> str:
    """A fresh model on the simulator with that fault; its name."""
    name = f"rt-{fault}-{uuid.uuid4().hex[:8]}"
    with live.blocker.unblock():
        f.make_model(
            live.org,
            name,
            provider=providers[fault],
            upstream_model="gpt-4o-mini",
            input_per_mtok=inp,
            output_per_mtok=out,
            context_window=window,
        )
    return name


def make_group(live, members, fallbacks=(), strategy="weighted") -> str:
    name = f"rt-group-{uuid.uuid4().hex[:8]}"
    with live.blocker.unblock():
        models = {m.name: m for m in LLMModel.objects.filter(org=live.org)}
        group = f.make_group(
            live.org,
            name,
            members=[(models[m], 1) for m in members],
            fallbacks=[models[m] for m in fallbacks],
        )
        group.strategy = strategy
        group.save()
    return name


def wait_visible(live, gateway, *names: str) -> None:
    """Until the gateway's config (reloaded on the stamp poll) knows these names."""
    deadline = time.monotonic() + 10
    while True:
        ids = {m.id for m in client(live, gateway).models.list()}
        if set(names) <= ids:
            return
        assert time.monotonic() < deadline, f"{names} never became visible"
        time.sleep(0.05)


def chain(live, providers, gateway, *faults: str, fallback: str = "healthy", strategy="weighted"):
    """A group of one deployment per fault with a healthy fallback: (group, names)."""
    members = [deploy(live, providers, fault) for fault in faults]
    backup = deploy(live, providers, fallback)
    group = make_group(live, members, [backup], strategy)
    wait_visible(live, gateway, group)
    return group, [*members, backup]


def exact_events(live, request_id: str, count: int):
    """The request's ledger rows, checking that no further row turns up."""
    rows = live.events(request_id, count=count)
    time.sleep(settings.FINOPS_LEDGER_FLUSH_SECONDS + 0.3)
    rows = live.events(request_id, count=count)
    assert len(rows) == count, [(r.attempt, r.model, r.status) for r in rows]
    assert [r.attempt for r in rows] == list(range(1, count + 1))
    return rows


class Tried:
    """Calls whose ledger rows are checked together at the end, with one wait for stray rows.

    Each call's headers are checked at once (attempt count, the model that answered); its rows
    must then name the models tried, in order, and no further row may turn up.
    """

    def __init__(self, live) -> None:
        self.live = live
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, raw, expected: list[str]) -> None:
        assert int(raw.headers["x-finops-attempts"]) == len(expected)
        assert raw.headers["x-finops-model"] == expected[-1]
        self.calls.append((raw.headers["x-request-id"], expected))

    def verify(self) -> None:
        for request_id, expected in self.calls:
            self.live.events(request_id, count=len(expected))
        time.sleep(settings.FINOPS_LEDGER_FLUSH_SECONDS + 0.3)
        for request_id, expected in self.calls:
            rows = self.live.events(request_id, count=len(expected))
            assert [r.attempt for r in rows] == list(range(1, len(expected) + 1))
            assert [r.model for r in rows] == expected, request_id


def cost_of(prompt: int, completion: int, inp="0.15", out="0.60") -> Decimal:
    return (prompt * Decimal(inp) + completion * Decimal(out)) / MTOK


def create(live, gateway, model: str, **kw):
    return client(live, gateway).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, **kw
    )


def assert_served_after_failures(raw, rows, names, *, failed: int, http_status, error_code):
    """``failed`` failed attempts on the first deployment, then the fallback answered."""
    assert raw.headers["x-finops-attempts"] == str(failed + 1)
    assert raw.headers["x-finops-model"] == names[-1]
    for row in rows[:failed]:
        assert (row.model, row.status, row.http_status, row.error_code) == (
            names[0],
            "error",
            http_status,
            error_code,
        )
        assert row.cost == 0 and row.prompt_tokens == 0
    last = rows[-1]
    usage = raw.parse().usage
    assert (last.model, last.status, last.http_status) == (names[-1], "ok", 200)
    assert last.cost == cost_of(usage.prompt_tokens, usage.completion_tokens)
    assert Decimal(raw.headers["x-finops-cost"]) == last.cost
    assert len({r.request_id for r in rows}) == 1


# --- failures, retried then fallen back --------------------------------------------------------


def test_500_is_retried_then_the_fallback_answers(live, providers, gateway):
    group, names = chain(live, providers, gateway, "err500")
    raw = create(live, gateway, group)
    rows = exact_events(live, raw.headers["x-request-id"], 3)
    assert_served_after_failures(
        raw, rows, names, failed=2, http_status=500, error_code="upstream_error"
    )
    assert rows[1].started_at >= rows[0].ended_at  # the retry came after the first attempt


def test_429_retry_waits_for_retry_after(live, providers, gateway):
    group, names = chain(live, providers, gateway, "throttled")
    raw = create(live, gateway, group)
    rows = exact_events(live, raw.headers["x-request-id"], 3)
    assert_served_after_failures(
        raw, rows, names, failed=2, http_status=429, error_code="upstream_error"
    )
    waited = (rows[1].started_at - rows[0].ended_at).total_seconds()
    assert 0.95 <= waited < 1.5  # Retry-After: 1, not the 50 ms backoff


def test_retry_after_beyond_the_cap_moves_on_at_once(live, providers, gateway):
    group, names = chain(live, providers, gateway, "throttled-long")
    started = time.monotonic()
    raw = create(live, gateway, group)
    assert time.monotonic() - started < 1.0
    rows = exact_events(live, raw.headers["x-request-id"], 2)
    assert_served_after_failures(
        raw, rows, names, failed=1, http_status=429, error_code="upstream_error"
    )


def test_timeout_is_retried_then_the_fallback_answers(live, providers, gateway):
    group, names = chain(live, providers, gateway, "slow")
    raw = create(live, gateway, group)
    rows = exact_events(live, raw.headers["x-request-id"], 3)
    assert_served_after_failures(
        raw, rows, names, failed=2, http_status=None, error_code="upstream_timeout"
    )
    timeout_ms = float(APP_ENV["FINOPS_UPSTREAM_TIMEOUT"]) * 1000
    assert all(timeout_ms * 0.93 <= r.latency_ms < timeout_ms + 1000 for r in rows[:2])


def test_connection_reset_is_retried_then_the_fallback_answers(live, providers, gateway):
    group, names = chain(live, providers, gateway, "reset")
    raw = create(live, gateway, group)
    rows = exact_events(live, raw.headers["x-request-id"], 3)
    assert_served_after_failures(
        raw, rows, names, failed=2, http_status=None, error_code="upstream_connection_error"
    )


def test_malformed_json_is_retried_then_the_fallback_answers(live, providers, gateway):
    group, names = chain(live, providers, gateway, "malformed")
    raw = create(live, gateway, group)
    rows = exact_events(live, raw.headers["x-request-id"], 3)
    assert_served_after_failures(
        raw, rows, names, failed=2, http_status=200, error_code="upstream_invalid_response"
    )


def test_fallback_order_is_members_then_fallbacks_in_position(live, providers, gateway):
    first = deploy(live, providers, "err500")
    second = deploy(live, providers, "reset")
    backup = deploy(live, providers, "healthy")
    group = make_group(live, [first], [second, backup])
    wait_visible(live, gateway, group)
    raw = create(live, gateway, group)
    rows = exact_events(live, raw.headers["x-request-id"], 5)
    assert [(r.model, r.status) for r in rows] == [
        (first, "error"),
        (first, "error"),
        (second, "error"),
        (second, "error"),
        (backup, "ok"),
    ]
    assert raw.headers["x-finops-attempts"] == "5"


def test_when_every_deployment_fails_the_last_failure_is_reported(live, providers, gateway):
    name = deploy(live, providers, "slow")
    wait_visible(live, gateway, name)
    with pytest.raises(openai.APIStatusError) as exc:
        client(live, gateway).chat.completions.create(model=name, messages=MESSAGES)
    assert exc.value.status_code == 504 and exc.value.code == "upstream_timeout"
    assert exc.value.response.headers["x-finops-attempts"] == "2"
    rows = exact_events(live, exc.value.response.headers["x-request-id"], 2)
    assert {(r.status, r.error_code, r.cost) for r in rows} == {("error", "upstream_timeout", 0)}


def test_an_upstream_client_error_is_returned_without_retry_or_fallback(live, providers, gateway):
    group, (rejecting, _) = chain(live, providers, gateway, "rejecting")
    with pytest.raises(openai.BadRequestError) as exc:
        create(live, gateway, group)
    assert exc.value.response.headers["x-finops-attempts"] == "1"
    [row] = exact_events(live, exc.value.response.headers["x-request-id"], 1)
    assert (row.model, row.status, row.http_status) == (rejecting, "error", 400)


# --- streams ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["err500", "reset"])
def test_stream_failing_before_the_first_byte_falls_back(live, providers, gateway, fault):
    group, names = chain(live, providers, gateway, fault)
    stream = client(live, gateway).chat.completions.with_raw_response.create(
        model=group, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert stream.headers["x-finops-attempts"] == "3"
    assert stream.headers["x-finops-model"] == names[-1]
    chunks = list(stream.parse())
    usage = chunks[-1].usage
    rows = exact_events(live, stream.headers["x-request-id"], 3)
    assert [(r.model, r.status, r.streamed) for r in rows] == [
        (names[0], "error", True),
        (names[0], "error", True),
        (names[1], "ok", True),
    ]
    assert rows[2].cost == cost_of(usage.prompt_tokens, usage.completion_tokens)
    assert Decimal(str(usage.model_extra["cost"])) == rows[2].cost


def test_stream_cut_midway_gets_an_error_event_and_the_partial_attempt_is_metered(
    live, providers, gateway
):
    group, names = chain(live, providers, gateway, "cut")  # the fallback must not be used
    stream = client(live, gateway).chat.completions.with_raw_response.create(
        model=group, messages=MESSAGES, stream=True
    )
    request_id = stream.headers["x-request-id"]
    text = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream.parse():
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
    assert "ended with an error" in exc.value.message
    received = "".join(text)
    assert received  # the client got the first chunks before the cut
    [row] = exact_events(live, request_id, 1)
    assert (row.model, row.status, row.http_status, row.error_code) == (
        names[0],
        "error",
        200,
        "upstream_error",
    )
    assert row.streamed and row.estimated and row.first_byte_at is not None
    # metered for what was generated: the prompt and the text that reached the client
    encodings_load()
    prompt = count_messages(MESSAGES, model="gpt-4o-mini")
    completion = count_text(received, model="gpt-4o-mini")[0]
    assert (row.prompt_tokens, row.completion_tokens) == (prompt, completion)
    assert row.cost == cost_of(prompt, completion) > 0


# --- cooldowns -------------------------------------------------------------------------------


def models_tried(live, raw) -> list[str]:
    count = int(raw.headers["x-finops-attempts"])
    return [r.model for r in exact_events(live, raw.headers["x-request-id"], count)]


def test_cooldown_skips_a_failing_deployment_then_probes_it_and_restores_it(
    live, providers, gateway
):
    group, (bad, backup) = chain(live, providers, gateway, "err500")
    tried = Tried(live)
    tried(create(live, gateway, group), [bad, bad, backup])
    # the third failure in a row starts the cooldown: no retry, straight to the fallback
    tried(create(live, gateway, group), [bad, backup])
    for _ in range(3):
        tried(create(live, gateway, group), [backup])
    gateway.clock.advance(COOLDOWN + 0.5)
    # half-open: one probe, which fails and starts a new cooldown
    tried(create(live, gateway, group), [bad, backup])
    tried(create(live, gateway, group), [backup])
    # the upstream recovers; after the cooldown the probe succeeds and restores it
    with live.blocker.unblock():
        LLMModel.objects.filter(org=live.org, name=bad).update(provider=providers["healthy"])
        Provider.objects.get(pk=providers["healthy"].pk).save()  # bump the config stamp
    # a model added after the change is visible once the gateway has reloaded its config
    wait_visible(live, gateway, deploy(live, providers, "healthy"))
    gateway.clock.advance(COOLDOWN + 0.5)
    for _ in range(3):
        tried(create(live, gateway, group), [bad])
    tried.verify()


def test_when_every_deployment_is_cooling_the_least_recently_failed_is_tried(
    live, providers, gateway
):
    a = deploy(live, providers, "err500")
    b = deploy(live, providers, "reset")
    group = make_group(live, [a], [b])
    wait_visible(live, gateway, group)
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            create(live, gateway, group)
    with pytest.raises(openai.APIStatusError) as exc:
        create(live, gateway, group)  # both cooling: not refused, a is tried (failed first)
    assert exc.value.status_code == 502
    response = exc.value.response
    rows = exact_events(
        live, response.headers["x-request-id"], int(response.headers["x-finops-attempts"])
    )
    assert {r.model for r in rows} == {a}


# --- context window --------------------------------------------------------------------------


def test_a_prompt_too_long_for_a_model_goes_to_one_with_a_larger_window(live, providers, gateway):
    small = deploy(live, providers, "healthy", window=64)
    large = deploy(live, providers, "healthy", window=128_000)
    group = make_group(live, [small], [large])
    wait_visible(live, gateway, group)
    long = [{"role": "user", "content": "Summarise the spend of every team. " * 20}]
    raw = client(live, gateway).chat.completions.with_raw_response.create(
        model=group, messages=long
    )
    assert raw.headers["x-finops-model"] == large
    assert raw.headers["x-finops-attempts"] == "1"
    assert models_tried(live, raw) == [large]
    # a short prompt still goes to the small one
    assert create(live, gateway, group).headers["x-finops-model"] == small


def test_a_prompt_too_long_for_every_model_is_a_400(live, providers, gateway):
    small = deploy(live, providers, "healthy", window=64)
    wait_visible(live, gateway, small)
    long = [{"role": "user", "content": "Summarise the spend of every team. " * 20}]
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": small, "messages": long},
        headers={"authorization": f"Bearer {live.key_secret}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "messages")
    assert "maximum context length is 64 tokens" in error["message"]


# --- strategies ------------------------------------------------------------------------------


def test_lowest_latency_sends_most_calls_to_the_fastest(live, providers, gateway):
    fast = deploy(live, providers, "healthy")
    lagging = deploy(live, providers, "lagging")
    group = make_group(live, [lagging, fast], strategy="latency")
    wait_visible(live, gateway, group)
    served = [create(live, gateway, group).headers["x-finops-model"] for _ in range(20)]
    assert lagging in served[:2] and fast in served[:2]  # both measured first
    assert served[2:].count(fast) >= 17


def test_lowest_cost_sends_calls_to_the_cheapest(live, providers, gateway):
    dear = deploy(live, providers, "healthy", inp="2.50", out="10.00")
    cheap = deploy(live, providers, "healthy")
    group = make_group(live, [dear, cheap], strategy="cost")
    wait_visible(live, gateway, group)
    served = {create(live, gateway, group).headers["x-finops-model"] for _ in range(5)}
    assert served == {cheap}


def test_least_busy_spreads_concurrent_calls_evenly(live, providers, gateway):
    one = deploy(live, providers, "lagging")
    two = deploy(live, providers, "lagging")
    group = make_group(live, [one, two], strategy="least_busy")
    wait_visible(live, gateway, group)
    start = threading.Barrier(10)

    def call(_):
        start.wait()  # all ten are sent together, so all are in flight when each is routed
        return create(live, gateway, group).headers["x-finops-model"]

    with ThreadPoolExecutor(10) as pool:
        served = list(pool.map(call, range(10)))
    # on a loaded machine a call can still finish (150 ms) before the last ones are routed:
    # the spread is even to within one call either way, not exactly 5/5
    assert min(served.count(m) for m in (one, two)) >= 4


def test_round_robin_alternates(live, providers, gateway):
    one = deploy(live, providers, "healthy")
    two = deploy(live, providers, "healthy")
    group = make_group(live, [one, two], strategy="round_robin")
    wait_visible(live, gateway, group)
    served = [create(live, gateway, group).headers["x-finops-model"] for _ in range(4)]
    assert served in ([one, two, one, two], [two, one, two, one])


# --- shared across processes -----------------------------------------------------------------


@pytest.mark.skipif(not settings.REDIS_URL, reason="shared routing state needs REDIS_URL")
def test_a_cooldown_started_in_one_process_is_honoured_by_another(
    live, providers, gateway, live_tmp
):
    with live.blocker.unblock():
        database_url = live_database_url()
    other = start_app(
        live_tmp,
        database_url=database_url,
        FINOPS_TEST_CLOCK_FILE=str(gateway.clock.path),  # one clock, as in one deployment
        **APP_ENV,
    )
    try:
        group, (bad, backup) = chain(live, providers, gateway, "err500")
        wait_visible(live, other, group)
        assert models_tried(live, create(live, other, group)) == [bad, bad, backup]
        # the third failure in a row, counted across both processes, starts the cooldown here
        assert models_tried(live, create(live, gateway, group)) == [bad, backup]
        # and the other process learns it (at its next sync) without trying ``bad`` again
        assert models_tried(live, create(live, other, group)) == [backup]
    finally:
        other.stop()


# --- a key's default fallback chain --------------------------------------------------------------


def test_a_keys_default_fallbacks_come_after_the_requested_models_own_chain(
    live, providers, gateway
):
    from teams.services import key_mint

    failing = deploy(live, providers, "err500")
    also_failing = deploy(live, providers, "reset")
    backup = deploy(live, providers, "healthy")
    group = make_group(live, [failing], [also_failing])
    with live.blocker.unblock():
        minted = key_mint(team=live.team, name="with-fallbacks", fallbacks=[backup, failing])
    wait_visible(live, gateway, group, backup)
    keyed = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=minted.secret, max_retries=0)
    raw = keyed.chat.completions.with_raw_response.create(model=group, messages=MESSAGES)
    rows = exact_events(live, raw.headers["x-request-id"], 5)
    # The group's member and fallback first (each retried once), then the key's chain; the key's
    # repeat of a model already tried is not tried again.
    assert [(r.model, r.status) for r in rows] == [
        (failing, "error"),
        (failing, "error"),
        (also_failing, "error"),
        (also_failing, "error"),
        (backup, "ok"),
    ]
    assert raw.headers["x-finops-model"] == backup
    # Without the key's chain the same request fails.
    with pytest.raises(openai.APIStatusError):
        create(live, gateway, group)
