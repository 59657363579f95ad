"""Scorers: a prompt -> P(it needs the strong model), in [0, 1]. ``score >= threshold`` picks
the strong model.

- ``random``: a uniform draw, the baseline any other scorer must beat (seedable);
- ``heuristic``: transparent features (``gateway.routing.features``) combined by a logistic
  function with hand-set weights;
- ``learned``: logistic regression on hashed n-grams plus the same features, trained on the
  organisation's own traffic (``gateway.routing.train``); until a router has a trained model
  it scores with the heuristic, and the ledger says ``heuristic``.

``scorer_build(kind, model=...)`` is the registry; ``Decision`` is what the router decided.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from gateway.routing.features import FEATURE_NAMES, features, prompt_parts
from gateway.routing.linear import LinearModel

# Hand-set: trivial chat sits near 0.05, a long document alone around the middle, and any one
# clear signal of hard work (code, a proof, a multi-step analysis) on a prompt of some length
# crosses 0.5.
HEURISTIC_BIAS = -4.6
HEURISTIC_WEIGHTS = {
    "length": 5.0,
    "code": 4.0,
    "math": 4.0,
    "multistep": 3.6,
    "depth": 1.2,
    "system": 0.8,
}


class RandomScorer:
    kind = "random"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def score(self, messages) -> float:
        return self._rng.random()


class HeuristicScorer:
    kind = "heuristic"

    def __init__(self, weights: dict[str, float] | None = None, bias: float = HEURISTIC_BIAS):
        weights = weights or HEURISTIC_WEIGHTS
        self._weights = tuple(weights[name] for name in FEATURE_NAMES)
        self.bias = bias

    def score(self, messages) -> float:
        values = features(prompt_parts(messages))
        z = self.bias + sum(w * x for w, x in zip(self._weights, values, strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def explain(self, messages) -> dict[str, float]:
        """Each feature's value and contribution to the logit (for docs, admin and debugging)."""
        values = features(prompt_parts(messages))
        return {
            name: round(w * x, 3)
            for name, w, x in zip(FEATURE_NAMES, self._weights, values, strict=True)
        }


class LearnedScorer:
    kind = "learned"

    def __init__(self, model: LinearModel) -> None:
        self.model = model

    def score(self, messages) -> float:
        return self.model.score(messages)


_HEURISTIC = HeuristicScorer()

SCORERS: dict[str, Callable[..., object]] = {
    "random": lambda model=None, seed=None: RandomScorer(seed),
    "heuristic": lambda model=None, seed=None: _HEURISTIC,
    "learned": lambda model=None, seed=None: LearnedScorer(model) if model else _HEURISTIC,
}


def scorer_build(kind: str, *, model: LinearModel | None = None, seed: int | None = None):
    """The scorer for a router's configured kind. ``learned`` without a trained model, and any
    kind this gateway does not know (``embedding``), score with the heuristic: the returned
    scorer's ``kind`` is what the ledger records."""
    factory = SCORERS.get(kind)
    if factory is None:
        return _HEURISTIC
    return factory(model=model, seed=seed)


@dataclass(slots=True)
class Decision:
    scorer: str
    score: float
    threshold: float
    strong: bool

    @property
    def label(self) -> str:
        return "strong" if self.strong else "weak"


def decide(scorer, messages, threshold: float) -> Decision:
    score = float(scorer.score(messages))
    return Decision(scorer=scorer.kind, score=score, threshold=threshold, strong=score >= threshold)
