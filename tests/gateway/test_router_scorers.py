"""The cost router's scorers without a network: the heuristic's decisions at its default
threshold on realistic prompts, the learned model's trainer, hashing and storage, the registry's
fallback to the heuristic, and the decision resolve() turns into a plan."""

from __future__ import annotations

import random
import time
import zlib
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from gateway.cache import org_config_load
from gateway.pricing import Price
from gateway.providers.base import CHAT
from gateway.records import ModelRecord, OrgConfig, ProviderRecord, RouterRecord
from gateway.resolve import resolve
from gateway.routing.features import FEATURE_NAMES, features, messages_clip, prompt_parts
from gateway.routing.linear import LinearModel, hashed_terms
from gateway.routing.samples import label, prompt_mix
from gateway.routing.scorers import (
    HeuristicScorer,
    LearnedScorer,
    RandomScorer,
    decide,
    scorer_build,
)
from gateway.routing.train import auc, evaluate, train_linear

TRIVIAL = [
    "hi",
    "what's 2+2",
    "translate 'cat' to French",
    "thanks, that's all!",
    "What's the capital of Portugal?",
    "how do you spell 'necessary'?",
    "Give me a synonym for happy.",
    "convert 5 km to miles",
    "who painted the Mona Lisa?",
    "Tell me a joke about cats.",
    "What day of the week is Christmas this year?",
    "good morning! how are you?",
]
LONG_REPORT = (
    "Revenue in the EMEA region grew 12% quarter over quarter, driven by enterprise renewals. "
    "Operating costs rose 4%, mostly cloud infrastructure and two new hires in support. "
) * 120 + "\n\nSummarise the report above for the board."
HARD = [
    LONG_REPORT,
    "Prove that the square root of 2 is irrational.",
    "Prove by induction that 1 + 2 + ... + n = n(n+1)/2 for every natural number n.",
    "Derive the formula for the variance of a binomial distribution.",
    "Let $f(x) = x^3 - 3x$. Find all local extrema and prove they are extrema.",
    "Fix this bug, the loop never ends:\n```python\ni = 0\nwhile i < 10:\n    print(i)\n```",
    "Here is my stack trace: `KeyError: 'user_id'` in views.py line 42. The code is "
    "`def get(self, request): return self.cache[request.session['user_id']]`. Why?",
    "Implement a thread-safe LRU cache in Java with O(1) get and put, and write unit tests.",
    "Write a SQL query that returns the top 3 customers by revenue per region: SELECT ... FROM "
    "orders JOIN customers ON orders.customer_id = customers.id",
    "Compare PostgreSQL and MongoDB for an event-sourcing system and analyze the trade-offs "
    "in consistency, operations and cost. Then recommend one.",
    "Analyze our churn step by step:\n1. cohort retention\n2. pricing changes\n"
    "3. support tickets\n4. competitor launches\nand explain which factor matters most.",
    "Design a rate limiter for a multi-region API, explain why you choose each component, and "
    "evaluate how it behaves during a network partition.",
]


def as_messages(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --- heuristic --------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", TRIVIAL)
def test_heuristic_sends_trivial_prompts_to_the_weak_model(prompt):
    decision = decide(HeuristicScorer(), as_messages(prompt), 0.5)
    assert decision.label == "weak", (prompt, decision.score)


@pytest.mark.parametrize("prompt", HARD, ids=[p[:30] for p in HARD])
def test_heuristic_sends_hard_prompts_to_the_strong_model(prompt):
    decision = decide(HeuristicScorer(), as_messages(prompt), 0.5)
    assert decision.label == "strong", (prompt[:80], decision.score)


def test_heuristic_features_are_transparent_and_bounded():
    scorer = HeuristicScorer()
    code = as_messages("```python\nprint('x')\n```")
    explained = scorer.explain(code)
    assert set(explained) == set(FEATURE_NAMES)
    assert explained["code"] > 0 and explained["math"] == 0
    parts = prompt_parts(
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
        ]
    )
    assert (parts.turns, parts.last_user, parts.system_chars) == (2, "and now?", 14)
    huge = features(prompt_parts(as_messages("word " * 200_000)))
    assert all(0.0 <= value <= 1.0 for value in huge)


def test_a_deeper_conversation_scores_higher():
    turn = [{"role": "user", "content": "and then?"}, {"role": "assistant", "content": "ok"}]
    scorer = HeuristicScorer()
    assert scorer.score(turn * 6 + turn[:1]) > scorer.score(turn[:1])


def test_clipped_prompts_score_as_the_original():
    scorer = HeuristicScorer()
    long = as_messages("Analyze this log step by step. " + "GET /api/v1/items 200 12ms\n" * 5000)
    clipped = messages_clip(long)
    assert len(clipped[0]["content"]) < len(long[0]["content"]) / 5
    assert scorer.score(clipped) == pytest.approx(scorer.score(long))


def test_heuristic_decision_is_fast_on_a_long_document():
    scorer = HeuristicScorer()
    doc = as_messages(("The ledger reconciles to the cent. " * 900) + "Summarise this.")
    scorer.score(doc)
    t = time.perf_counter()
    for _ in range(20):
        scorer.score(doc)
    assert (time.perf_counter() - t) / 20 < 0.005  # generous: bench/router.py has the figures


# --- random and the registry ------------------------------------------------------------------


def test_random_scorer_is_uniform_and_seedable():
    a = [RandomScorer(seed=7).score("x") for _ in range(3)]
    b = RandomScorer(seed=7)
    assert a[0] == b.score("x")
    scores = [b.score("x") for _ in range(4000)]
    assert 0.47 < sum(scores) / len(scores) < 0.53
    assert min(scores) >= 0 and max(scores) < 1


def test_learned_without_a_model_scores_with_the_heuristic():
    scorer = scorer_build("learned", model=None)
    assert scorer.kind == "heuristic"
    assert scorer_build("embedding").kind == "heuristic"  # not built into this gateway
    assert scorer_build("random", seed=1).kind == "random"


# --- the learned model ------------------------------------------------------------------------


def test_hashing_is_stable_signed_and_bounded():
    idx, vals = hashed_terms("Alpha beta alpha", bits=10)
    assert all(0 <= i < 1024 for i in idx)
    h = zlib.crc32(b"alpha")
    assert (h & 1023) in idx  # CRC-32, not Python's per-process salted hash
    bigram = zlib.crc32(b"alpha beta")
    assert (bigram & 1023) in idx
    assert len(idx) <= 4  # alpha, beta, "alpha beta", "beta alpha"
    assert hashed_terms("", bits=10) == ([], [])


def _labelled(n: int, seed: int):
    pairs = prompt_mix(n, seed=seed)
    return [m for _, m in pairs], [label(k) for k, _ in pairs]


def _content_labelled(n: int, seed: int):
    """Labels that depend on words only (not on the heuristic's cues): a prompt mentioning an
    invoice, a ledger or a budget needs the strong model."""
    rng = random.Random(seed)
    topics = ["invoice", "ledger", "budget"]
    other = ["garden", "orbit", "harbor", "parrot", "otter", "recipe"]
    prompts, labels = [], []
    for _ in range(n):
        hard = rng.random() < 0.4
        word = rng.choice(topics if hard else other)
        filler = " ".join(rng.choice(other) for _ in range(rng.randint(2, 8)))
        prompts.append(f"please look at the {word} and {filler}")
        labels.append(int(hard))
    return prompts, labels


def test_trainer_beats_random_on_a_content_labelled_set():
    train_x, train_y = _content_labelled(1500, seed=1)
    test_x, test_y = _content_labelled(500, seed=2)
    model = train_linear(train_x, train_y, bits=16, epochs=5)
    learned = evaluate(LearnedScorer(model), test_x, test_y)
    baseline = evaluate(RandomScorer(seed=3), test_x, test_y)
    assert learned["auc"] > 0.95 > baseline["auc"] + 0.3
    assert learned["accuracy"] > 0.9 > baseline["accuracy"] + 0.2


def test_trainer_learns_the_prompt_mix_at_least_as_well_as_the_heuristic():
    train_x, train_y = _labelled(1200, seed=11)
    test_x, test_y = _labelled(400, seed=12)
    model = train_linear(train_x, train_y, epochs=4)
    learned = evaluate(LearnedScorer(model), test_x, test_y)
    assert learned["auc"] > 0.97
    assert learned["auc"] >= evaluate(HeuristicScorer(), test_x, test_y)["auc"] - 0.02
    assert evaluate(RandomScorer(seed=1), test_x, test_y)["auc"] < 0.6


def test_trainer_rejects_bad_input():
    with pytest.raises(ValueError):
        train_linear(["a"], [1, 0])
    with pytest.raises(ValueError):
        train_linear(["a", "b"], [2, 0])
    with pytest.raises(ValueError):
        train_linear([], [])


def test_linear_model_round_trips_through_bytes_keeping_only_nonzero_weights():
    x, y = _content_labelled(300, seed=5)
    model = train_linear(x, y, bits=14, epochs=2)
    data, params = model.to_bytes(), model.params()
    assert params["nonzero"] < len(model.weights) / 10
    assert len(data) < params["nonzero"] * 10
    again = LinearModel.from_bytes(data, params)
    assert again.bias == pytest.approx(model.bias)
    for prompt in x[:20]:
        assert again.score(prompt) == pytest.approx(model.score(prompt), abs=1e-6)
    with pytest.raises(ValueError):
        LinearModel.from_bytes(data, {**params, "features": ["length"]})


def test_auc_counts_ties_half():
    assert auc([0.1, 0.9], [0, 1]) == 1.0
    assert auc([0.5, 0.5], [0, 1]) == 0.5
    assert auc(np.array([0.9, 0.1]), [0, 1]) == 0.0


# --- resolve() --------------------------------------------------------------------------------

PROVIDER = ProviderRecord(slug="p", kind="openai", base_url="http://x", api_key="", api_version="")


def _model(name: str) -> ModelRecord:
    price = Price.per_mtok(
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        input_usd_per_mtok=Decimal(1),
        output_usd_per_mtok=Decimal(2),
        cached_input_usd_per_mtok=None,
        cache_write_usd_per_mtok=None,
    )
    return ModelRecord(
        name=name,
        upstream_model=name,
        mode="chat",
        max_output_tokens=None,
        provider=PROVIDER,
        prices=(price,),
    )


def _config(scorer: str = "heuristic", threshold: float = 0.5, impl=None) -> OrgConfig:
    strong, weak = _model("big"), _model("small")
    router = RouterRecord(
        name="smart",
        strong=strong,
        weak=weak,
        scorer=scorer,
        threshold=threshold,
        impl=impl or scorer_build(scorer),
    )
    return OrgConfig(
        org_id=1, models={"big": strong, "small": weak}, groups={}, routers={"smart": router}
    )


def test_resolve_puts_the_chosen_model_first_and_the_other_as_fallback():
    config = _config()
    easy = resolve(config, "router:smart", api=CHAT, messages=as_messages("hi"))
    assert [m.name for m in easy.deployments] == ["small", "big"]
    assert (easy.router, easy.router_scorer, easy.router_decision) == ("smart", "heuristic", "weak")
    assert easy.router_threshold == 0.5 and 0 < easy.router_score < 0.5
    hard = resolve(config, "smart", api=CHAT, messages=as_messages(HARD[1]))
    assert [m.name for m in hard.deployments] == ["big", "small"]
    assert hard.router_decision == "strong" and hard.router_score >= 0.5


def test_the_threshold_is_the_one_knob():
    prompt = as_messages(HARD[1])
    always = resolve(_config(threshold=0.0), "router:smart", api=CHAT, messages=prompt)
    never = resolve(_config(threshold=1.0), "router:smart", api=CHAT, messages=as_messages("hi"))
    assert (always.router_decision, never.router_decision) == ("strong", "weak")


def test_resolve_records_the_learned_scorer_when_a_model_is_active():
    x, y = _content_labelled(400, seed=9)
    model = train_linear(x, y, bits=14, epochs=3)
    config = _config("learned", impl=scorer_build("learned", model=model))
    plan = resolve(config, "router:smart", api=CHAT, messages=as_messages("the invoice please"))
    assert plan.router_scorer == "learned" and plan.router_decision == "strong"


@pytest.mark.django_db(transaction=True)  # the loader manages its own connection
def test_the_gateway_config_loads_the_active_trained_model():
    from gateway.models import Router
    from gateway.services.routing import router_model_save
    from tests import factories as f

    org = f.make_org()
    provider = f.make_provider(org)
    big = f.make_model(org, "big", provider=provider)
    small = f.make_model(org, "small", provider=provider)
    router = Router.objects.create(org=org, name="smart", strong=big, weak=small, scorer="learned")
    config = org_config_load(org.pk)
    assert config.routers["smart"].impl.kind == "heuristic"  # no model yet
    x, y = _content_labelled(300, seed=4)
    first = router_model_save(
        router=router, model=train_linear(x, y, bits=12, epochs=2), actor=None
    )
    second = router_model_save(
        router=router, model=train_linear(x, y, bits=14, epochs=2), actor=None
    )
    first.refresh_from_db()
    assert (first.active, second.active) == (False, True)
    impl = org_config_load(org.pk).routers["smart"].impl
    assert impl.kind == "learned" and impl.model.bits == 14
