"""Training a router's learned scorer on its labelled pairs (``manage.py train_router``).

The labelled pairs are split (seeded shuffle) into a training part and a held-out part; the
model is fitted on the first and judged on the second only, next to the router's current scorer
and random routing: the quality-vs-strong-share curve, its area (APGR), the strong share needed
for 80 % and 95 % of the gap (CPT), and the AUC on the "needs the strong model" labels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.utils import timezone

from evaluation.models import EvalPair
from evaluation.services.curve import quality_curve, random_apgr
from gateway.models import Router, RouterModel
from gateway.routing.train import auc, train_linear
from gateway.services.routing import router_model_save, router_scorer_get


class NotEnoughLabels(ValueError):
    pass


@dataclass(frozen=True)
class Labelled:
    messages: list
    strong_q: float
    weak_q: float
    needs_strong: int


def labelled_pairs(router: Router, *, limit: int = 50_000) -> list[Labelled]:
    """The router's pairs that carry a label, newest first, unexpired."""
    rows = EvalPair.objects.filter(router=router, expires_at__gt=timezone.now()).order_by("-id")[
        :limit
    ]
    out = []
    for pair in rows:
        q = pair.qualities()
        if q is None:
            continue
        out.append(Labelled(pair.messages, q[0], q[1], int(pair.needs_strong())))
    return out


@dataclass(frozen=True)
class TrainingResult:
    model: RouterModel | None
    evaluation: dict


def _side(name: str, scores, test: list[Labelled]) -> dict:
    curve = quality_curve(scores, [t.strong_q for t in test], [t.weak_q for t in test])
    return {
        "scorer": name,
        "auc": _round(auc(scores, [t.needs_strong for t in test])),
        **curve.as_dict(),
    }


def _round(value: float) -> float | None:
    return None if value != value else round(float(value), 4)  # NaN -> None


def router_train(
    *,
    router: Router,
    actor,
    holdout: float = 0.25,
    seed: int = 0,
    min_labels: int = 40,
    activate: bool = True,
    epochs: int = 8,
) -> TrainingResult:
    """Fit, evaluate on the held-out pairs, store (and by default activate) the model."""
    data = labelled_pairs(router)
    if len(data) < min_labels:
        raise NotEnoughLabels(
            f"router {router.name!r} has {len(data)} labelled pairs; at least {min_labels} needed"
        )
    positives = sum(d.needs_strong for d in data)
    if positives in (0, len(data)):
        raise NotEnoughLabels("every label is the same: nothing to learn from")
    rng = random.Random(seed)
    rng.shuffle(data)
    cut = max(1, min(len(data) - 1, round(len(data) * (1 - holdout))))
    train, test = data[:cut], data[cut:]
    model = train_linear(
        [d.messages for d in train], [d.needs_strong for d in train], epochs=epochs, seed=seed
    )
    learned = _side("learned", model.score_many([t.messages for t in test]).tolist(), test)
    current_scorer = router_scorer_get(router=router)
    current = _side(
        getattr(current_scorer, "kind", router.scorer),
        [current_scorer.score(t.messages) for t in test],
        test,
    )
    evaluation = {
        "trained_at": timezone.now().isoformat(),
        "train": len(train),
        "test": len(test),
        "positives": positives,
        "holdout": holdout,
        "seed": seed,
        "learned": learned,
        "current": current,
        "random": {
            "scorer": "random",
            "apgr": round(
                random_apgr([t.strong_q for t in test], [t.weak_q for t in test], seed=seed), 4
            ),
        },
    }
    row = router_model_save(
        router=router, model=model, actor=actor, evaluation=evaluation, activate=activate
    )
    return TrainingResult(model=row, evaluation=evaluation)
