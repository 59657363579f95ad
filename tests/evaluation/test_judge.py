"""The LLM judge: a router's judge model grades both answers of its unjudged pairs (shown as A and
B in a random order), through the provider over real HTTP (the upstream simulator), and its call
is metered to the ledger as evaluation spend (``shadow=True``), priced exactly."""

from __future__ import annotations

import random
from decimal import Decimal

import httpx
import pytest

from evaluation.models import EvalPair
from evaluation.services.judge import JUDGE_FEATURE, pairs_judge, verdict_parse
from evaluation.services.pairs import pair_store
from evaluation.tasks import judge_pairs_task
from gateway.models import Provider, Router, UsageEvent
from tests import factories as f
from tests.live import start_simulator

MTOK = Decimal(1_000_000)


@pytest.fixture(autouse=True)
def _sim_key(monkeypatch):
    monkeypatch.setenv("FINOPS_SIM_KEY", "sk-sim-test")  # the provider's credential


@pytest.fixture(scope="module")
def judge_sim(live_tmp):
    server = start_simulator(live_tmp, "--reply", 'Verdict: {"A": 9, "B": 4}')
    yield server
    server.stop()


def world(sim_url: str, *, rubric: str = ""):
    org = f.make_org()
    team = f.make_team(org, "search")
    provider = Provider.objects.create(
        org=org, slug="sim", kind="openai", base_url=f"{sim_url}/v1", api_key_env="FINOPS_SIM_KEY"
    )
    strong = f.make_model(org, "big", provider=provider, upstream_model="gpt-4o")
    weak = f.make_model(org, "small", provider=provider, upstream_model="gpt-4o-mini")
    judge = f.make_model(
        org,
        "judge",
        provider=provider,
        upstream_model="gpt-4o",
        input_per_mtok="2.50",
        output_per_mtok="10.00",
    )
    router = Router.objects.create(
        org=org, name="smart", strong=strong, weak=weak, judge_model=judge, judge_rubric=rubric
    )
    return org, team, router


def pair(org, team, router, request_id: str) -> EvalPair:
    return pair_store(
        org_id=org.pk,
        team_id=team.pk,
        key_id=None,
        router_id=router.pk,
        request_id=request_id,
        messages=[{"role": "user", "content": "What is 2 + 2?"}],
        router_score=0.3,
        served="weak",
        strong_model="big",
        weak_model="small",
        strong_answer="STRONG-ANSWER: 4",
        weak_answer="WEAK-ANSWER: 5",
        strong_cost=Decimal("0.001"),
        weak_cost=Decimal("0.0001"),
        retention_days=7,
    )


def last_judge_prompt(sim_url: str) -> str:
    last = httpx.get(f"{sim_url}/_sim/last", params={"path": "/v1/chat/completions"}).json()
    return last["body"]["messages"][1]["content"]


@pytest.mark.django_db(transaction=True)
def test_the_judge_grades_both_answers_and_is_metered_as_evaluation(judge_sim):
    org, team, router = world(judge_sim.url, rubric="Arithmetic must be right.")
    rng = random.Random(7)
    seen_first = set()
    for i in range(4):
        p = pair(org, team, router, f"judge-{org.pk}-{i}")
        assert pairs_judge(limit=1, rng=rng) == 1
        p.refresh_from_db()
        prompt = last_judge_prompt(judge_sim.url)
        strong_is_a = prompt.index("STRONG-ANSWER") < prompt.index("WEAK-ANSWER")
        seen_first.add(strong_is_a)
        assert (p.judge_strong, p.judge_weak) == ((0.9, 0.4) if strong_is_a else (0.4, 0.9))
        assert p.judge_model == "judge" and p.judged_at is not None
        [row] = UsageEvent.objects.filter(request_id=f"judge-{p.request_id}")
        assert (row.shadow, row.feature, row.team_id, row.model, row.status) == (
            True,
            JUDGE_FEATURE,
            team.pk,
            "judge",
            "ok",
        )
        assert row.prompt_tokens > 0 and row.completion_tokens > 0
        expected = (
            Decimal(row.prompt_tokens) * Decimal("2.50") / MTOK
            + Decimal(row.completion_tokens) * Decimal("10.00") / MTOK
        )
        assert row.cost == expected
    assert seen_first == {True, False}  # both positions were used
    last = httpx.get(f"{judge_sim.url}/_sim/last", params={"path": "/v1/chat/completions"})
    assert "Arithmetic must be right." in last.json()["body"]["messages"][0]["content"]
    assert pairs_judge() == 0  # nothing left to judge


@pytest.mark.django_db(transaction=True)
def test_a_junk_verdict_marks_the_pair_judged_without_scores(simulator):
    org, team, router = world(simulator.url)  # the plain simulator answers with canned words
    p = pair(org, team, router, f"junk-{org.pk}")
    assert judge_pairs_task.apply().get() == 1
    p.refresh_from_db()
    assert p.judged_at is not None and p.judge_model == "judge"
    assert (p.judge_strong, p.judge_weak) == (None, None)
    assert UsageEvent.objects.get(request_id=f"judge-{p.request_id}").shadow is True
    assert pairs_judge() == 0


@pytest.mark.django_db(transaction=True)
def test_a_failed_judge_call_leaves_the_pair_for_the_next_run():
    org, team, router = world("http://127.0.0.1:9")  # nothing listens there
    p = pair(org, team, router, f"down-{org.pk}")
    assert pairs_judge() == 0
    p.refresh_from_db()
    assert p.judged_at is None
    row = UsageEvent.objects.get(request_id=f"judge-{p.request_id}")
    assert (row.shadow, row.status, row.cost) == (True, "error", Decimal(0))


def test_verdicts_are_parsed_strictly():
    assert verdict_parse('{"A": 7, "B": 10}') == (7.0, 10.0)
    assert verdict_parse('Sure! ```json\n{"A": 3, "B": 8}\n```') == (3.0, 8.0)
    for junk in ("", "A=7 B=8", '{"A": 0, "B": 5}', '{"A": 11, "B": 5}', '{"A": true, "B": 5}',
                 '{"A": "7", "B": 5}', '{"B": 5}'):  # fmt: skip
        assert verdict_parse(junk) is None
