"""How good a router is, measured on labelled pairs as the RouteLLM paper does.

For a threshold, the router sends a prompt to the strong model when its score is at least the
threshold; its quality is the mean over prompts of the chosen model's quality. PGR (performance
gap recovered) = (router quality - weak quality) / (strong quality - weak quality), the share of
the gap between all-weak and all-strong the router closes. Sweeping the threshold from "every
prompt to weak" to "every prompt to strong" traces PGR against the share of strong calls; APGR is
the area under that curve (random routing: 0.5 in expectation; a perfect router: close to 1).
CPT(x) is the smallest share of strong calls at which PGR reaches x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Curve:
    shares: list[float]  # share of strong calls, 0..1, increasing
    pgr: list[float]
    quality: list[float]  # mean quality at that share
    strong_quality: float
    weak_quality: float

    @property
    def apgr(self) -> float:
        return float(np.trapezoid(self.pgr, self.shares))

    def cpt(self, target: float) -> float | None:
        """The smallest strong share reaching PGR >= target (None when never reached)."""
        for share, pgr in zip(self.shares, self.pgr, strict=True):
            if pgr >= target - 1e-12:
                return share
        return None

    def at_share(self, share: float) -> tuple[float, float]:
        """(PGR, quality) at a strong share, interpolated."""
        return (
            float(np.interp(share, self.shares, self.pgr)),
            float(np.interp(share, self.shares, self.quality)),
        )

    def as_dict(self, *, points: int = 21) -> dict:
        grid = np.linspace(0, 1, points)
        return {
            "apgr": round(self.apgr, 4),
            "cpt80": self.cpt(0.8),
            "cpt95": self.cpt(0.95),
            "strong_quality": round(self.strong_quality, 4),
            "weak_quality": round(self.weak_quality, 4),
            "curve": [
                [round(float(s), 4), *(round(v, 4) for v in self.at_share(float(s)))] for s in grid
            ],
        }


def quality_curve(scores, strong_q, weak_q) -> Curve:
    """The curve of a router whose scores are ``scores`` on prompts whose strong and weak
    answers have qualities ``strong_q`` and ``weak_q`` (one entry per prompt).

    Prompts are sent to strong in order of decreasing score, one at a time, so every distinct
    threshold is a point; ties are broken by the order of the input, which the caller shuffles
    (a random scorer's ties must not follow the labels)."""
    s = np.asarray(scores, dtype=np.float64)
    hi = np.asarray(strong_q, dtype=np.float64)
    lo = np.asarray(weak_q, dtype=np.float64)
    n = len(s)
    if n == 0:
        raise ValueError("no labelled prompts")
    order = np.argsort(-s, kind="stable")
    gains = (hi - lo)[order]
    base = lo.sum()
    totals = base + np.concatenate([[0.0], np.cumsum(gains)])
    quality = totals / n
    strong_mean, weak_mean = float(hi.mean()), float(lo.mean())
    gap = strong_mean - weak_mean
    # with no gap there is nothing to recover: every share is as good as all-strong
    pgr = np.ones(n + 1) if abs(gap) < 1e-12 else (quality - weak_mean) / gap
    shares = np.arange(n + 1) / n
    return Curve(
        shares=shares.tolist(),
        pgr=pgr.tolist(),
        quality=quality.tolist(),
        strong_quality=strong_mean,
        weak_quality=weak_mean,
    )


def random_apgr(strong_q, weak_q, *, trials: int = 200, seed: int = 0) -> float:
    """The APGR of random routing on these prompts (0.5 in expectation), by simulation."""
    rng = np.random.default_rng(seed)
    n = len(strong_q)
    return float(
        np.mean([quality_curve(rng.random(n), strong_q, weak_q).apgr for _ in range(trials)])
    )


def mean_with_interval(values, *, z: float = 1.96) -> tuple[float, float, float]:
    """Mean and its normal-approximation 95 % interval (clipped to 0..1 for qualities)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    half = z * float(v.std(ddof=1)) / np.sqrt(len(v)) if len(v) > 1 else 0.0
    return mean, max(0.0, mean - half), min(1.0, mean + half)
