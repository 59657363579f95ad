"""Learning the router from labelled pairs: the APGR arithmetic, the held-out evaluation, the
learned scorer beating random routing when the label depends on the prompt's content, and the
``train_router`` command storing and activating the model."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from evaluation.models import EvalPair
from evaluation.services.curve import quality_curve, random_apgr
from gateway.models import RouterModel
from gateway.services.routing import router_scorer_get
from tests import factories as f

# --- the curve ---------------------------------------------------------------------------------


def test_a_perfect_router_recovers_the_gap_with_exactly_the_prompts_that_need_it():
    # 4 prompts; two need the strong model (weak answers 0), two do not (both answers 1)
    strong_q, weak_q = [1, 1, 1, 1], [0, 0, 1, 1]
    curve = quality_curve([0.9, 0.8, 0.2, 0.1], strong_q, weak_q)
    assert curve.shares == [0, 0.25, 0.5, 0.75, 1.0]
    assert curve.pgr == [0, 0.5, 1, 1, 1]
    assert curve.cpt(0.8) == 0.5 and curve.cpt(0.95) == 0.5
    assert curve.apgr == pytest.approx(0.75)  # trapezoids under 0, .5, 1, 1, 1 at quarter steps
    worst = quality_curve([0.1, 0.2, 0.8, 0.9], strong_q, weak_q)  # the exact opposite
    assert worst.cpt(0.95) == 1.0 and worst.apgr == pytest.approx(0.25)


def test_random_routing_scores_one_half():
    rng = np.random.default_rng(1)
    strong_q = rng.uniform(0.6, 1, 400)
    weak_q = strong_q - rng.uniform(0, 0.6, 400)
    assert random_apgr(strong_q, weak_q, trials=100) == pytest.approx(0.5, abs=0.03)


def test_no_gap_means_every_share_is_as_good_as_all_strong():
    curve = quality_curve([0.3, 0.7], [0.8, 0.9], [0.8, 0.9])
    assert curve.pgr == [1, 1, 1] and curve.cpt(0.95) == 0


# --- training on pairs -----------------------------------------------------------------------

TOPICS_HARD = ["contract", "lawsuit", "liability", "indemnity", "arbitration", "patent"]
TOPICS_EASY = ["weather", "recipe", "holiday", "garden", "movie", "football"]
TEMPLATES = [
    "Can you help me with a question about the {t} for {name}?",
    "I need a short note on the {t} {name} sent yesterday.",
    "Please summarise the {t} situation with {name} in two lines.",
    "What should I tell {name} about the {t}?",
]
NAMES = ["Ana", "Bo", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun"]


def labelled_world(n: int = 320, seed: int = 7):
    """Prompts of one shape whose need for the strong model depends only on their topic:
    the heuristic features (length, code, maths, steps, turns) cannot tell them apart."""
    org = f.make_org("train-org")
    team = f.make_team(org, "search")
    strong = f.make_model(org, "big", input_per_mtok="2.50", output_per_mtok="10.00")
    weak = f.make_model(org, "small")
    router = f.make_router(org, "smart", strong=strong, weak=weak)
    rng = random.Random(seed)
    now = timezone.now()
    pairs = []
    for i in range(n):
        hard = rng.random() < 0.4
        topic = rng.choice(TOPICS_HARD if hard else TOPICS_EASY)
        text = rng.choice(TEMPLATES).format(t=topic, name=rng.choice(NAMES))
        weak_q = rng.uniform(0.1, 0.4) if hard else rng.uniform(0.85, 0.95)
        pairs.append(
            EvalPair(
                org_id=org.pk,
                team_id=team.pk,
                router=router,
                request_id=f"train-{i}",
                expires_at=now + timedelta(days=30),
                messages=[{"role": "user", "content": text}],
                served="strong",
                strong_model="big",
                weak_model="small",
                strong_answer="…",
                weak_answer="…",
                strong_cost=Decimal("0.001"),
                weak_cost=Decimal("0.0001"),
                judge_strong=rng.uniform(0.9, 1.0),
                judge_weak=weak_q,
            )
        )
    EvalPair.objects.bulk_create(pairs)
    return org, router


@pytest.mark.django_db
def test_the_learned_scorer_beats_random_and_the_heuristic_on_content_labels():
    org, router = labelled_world()
    out = StringIO()
    call_command("train_router", "router:smart", "--org", org.slug, "--seed", "3", stdout=out)
    model = RouterModel.objects.get(router=router, active=True)
    ev = model.evaluation
    assert ev["test"] == 80 and ev["train"] == 240  # a held-out quarter
    learned, current, rand = ev["learned"]["apgr"], ev["current"]["apgr"], ev["random"]["apgr"]
    assert rand == pytest.approx(0.5, abs=0.06)
    assert learned > rand + 0.2, ev
    assert learned > current, ev  # the heuristic cannot see topics
    assert ev["learned"]["auc"] > 0.9
    assert ev["learned"]["cpt95"] < 0.7  # most of the gap with well under all-strong calls
    assert "APGR" in out.getvalue() and f"model #{model.pk} active" in out.getvalue()
    # the gateways' scorer for the router is now the trained one, and it separates topics
    scorer = router_scorer_get(router=router)
    hard = scorer.score([{"role": "user", "content": "What should I tell Bo about the lawsuit?"}])
    easy = scorer.score([{"role": "user", "content": "What should I tell Bo about the garden?"}])
    assert hard > easy


@pytest.mark.django_db
def test_train_router_refuses_too_few_labels_and_unknown_routers():
    org, router = labelled_world(n=20)
    with pytest.raises(CommandError, match="at least 40"):
        call_command("train_router", "smart", "--org", org.slug)
    with pytest.raises(CommandError, match="no router"):
        call_command("train_router", "nope", "--org", org.slug)
    assert not RouterModel.objects.filter(router=router).exists()


@pytest.mark.django_db
def test_no_activate_keeps_the_current_scorer():
    org, router = labelled_world()
    call_command("train_router", "smart", "--org", org.slug, "--no-activate", stdout=StringIO())
    assert RouterModel.objects.filter(router=router, active=False).count() == 1
    assert not RouterModel.objects.filter(router=router, active=True).exists()


@pytest.mark.django_db
def test_expired_and_unlabelled_pairs_are_not_trained_on():
    from evaluation.services.training import labelled_pairs

    org, router = labelled_world(n=50)
    EvalPair.objects.filter(request_id="train-0").update(expires_at=timezone.now())
    EvalPair.objects.filter(request_id="train-1").update(judge_weak=None, judge_strong=None)
    assert len(labelled_pairs(router)) == 48
