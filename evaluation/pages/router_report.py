"""The router page's figures: what a cost router did to production traffic, what it saved
against sending everything to the strong model, at what estimated quality, and what another
threshold would do.

- Traffic and cost come from the ledger (production rows of the router in the range, summed in
  SQL); the all-strong counterfactual prices every call the strong model did not answer at the
  strong model's current price, on the call's own tokens (exact Decimal).
- Quality comes from labelled pairs (``EvalPair.qualities``): for each pair, the quality of the
  answer the router's decision got (strong if its score >= the current threshold) over the
  strong answer's, as a ratio of means with a seeded bootstrap interval.
- The what-if grid re-decides the range's scored calls at each threshold of a grid, in one SQL
  pass, and re-prices them at the chosen model's current price.

Money is Decimal throughout and leaves as fixed-point strings. The page, its tables and its JSON
endpoint are ``evaluation.pages.routers``.
"""

from __future__ import annotations

import random
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
from django.db.models import Count, Q, Sum

from evaluation.selectors import RouterScope, router_pair_list, router_usage_rows
from evaluation.services.curve import quality_curve, random_apgr
from finops.money import money_or_none, usd_six
from gateway.models import LLMModel, RouterModel
from gateway.pricing import Price, Usage, cost_of
from gateway.services.routing import router_scorer_get
from reports.periods import DAY, local_midnight
from reports.ranges import DateRange

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
BOOTSTRAP_RESAMPLES = 500
BOOTSTRAP_SEED = 0
GRID_STEP = 0.02
MAX_PAIRS = 5000  # newest labelled pairs read per page
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens")


def _pct(part: Decimal, whole: Decimal) -> str | None:
    return str((part * HUNDRED / whole).quantize(CENT)) if whole else None


def _round(value: float | None, places: int = 4) -> float | None:
    if value is None or value != value:  # NaN
        return None
    return round(float(value), places)


def zone(org) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(org.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def range_bounds(rng: DateRange, org) -> tuple[datetime, datetime]:
    """The UTC instants of a range of local days: ``[start, end)``."""
    tz = zone(org)
    return local_midnight(rng.start, tz), local_midnight(rng.end + DAY, tz)


def current_price(model: LLMModel | None, *, now: datetime) -> Price | None:
    row = model.price_at(now) if model is not None else None
    if row is None:
        return None
    return Price.per_mtok(
        effective_from=row.effective_from,
        input_usd_per_mtok=row.input_usd_per_mtok,
        output_usd_per_mtok=row.output_usd_per_mtok,
        cached_input_usd_per_mtok=row.cached_input_usd_per_mtok,
        cache_write_usd_per_mtok=row.cache_write_usd_per_mtok,
    )


def _usage(prompt: int, completion: int, cached: int, cache_write: int) -> Usage:
    """Ledger token columns -> Usage (``prompt_tokens`` includes cache reads and writes)."""
    return Usage(
        uncached_input=max(0, prompt - cached - cache_write),
        cached_input=cached,
        cache_write=cache_write,
        output=completion,
    )


def price_tokens(tokens: tuple[int, int, int, int], price: Price | None) -> Decimal:
    """Summed tokens at one price. Per-call costs are exact at 12 places, so pricing the sums
    equals summing the per-call prices."""
    return cost_of(_usage(*tokens), price).total


def _price_json(price: Price | None) -> dict | None:
    if price is None:
        return None
    mtok = Decimal(1_000_000)
    return {
        "effective_from": price.effective_from.isoformat(),
        "input_usd_per_mtok": money_or_none(price.input * mtok),
        "output_usd_per_mtok": money_or_none(price.output * mtok),
    }


# --- traffic and cost ------------------------------------------------------------------------


def _traffic(scope: RouterScope, start: datetime, end: datetime, strong_price) -> dict:
    rows = list(
        router_usage_rows(scope, start=start, end=end)
        .values("router_decision", "model")
        .annotate(
            calls=Count("id"),
            requests=Count("request_id", distinct=True),
            failures=Count("id", filter=~Q(status="ok")),
            cost=Sum("cost"),
            **{f: Sum(f) for f in TOKEN_FIELDS},
        )
        .order_by("router_decision", "model")
    )
    strong_name = scope.router.strong.name
    calls = sum(r["calls"] for r in rows)
    realised = sum((r["cost"] or Decimal(0) for r in rows), Decimal(0))
    counterfactual = Decimal(0)
    by_model = []
    for r in rows:
        tokens = tuple(int(r[f] or 0) for f in TOKEN_FIELDS)
        cost = r["cost"] or Decimal(0)
        as_strong = cost if r["model"] == strong_name else price_tokens(tokens, strong_price)
        counterfactual += as_strong
        by_model.append(
            {
                "decision": r["router_decision"] or "",
                "model": r["model"] or "",
                "calls": r["calls"],
                "requests": r["requests"],
                "failures": r["failures"],
                "share_pct": _pct(Decimal(r["calls"]), Decimal(calls)),
                "cost": money_or_none(cost),
                "cost_if_strong": money_or_none(as_strong),
            }
        )
    by_decision: dict[str, int] = {}
    for r in rows:
        by_decision[r["router_decision"] or "none"] = (
            by_decision.get(r["router_decision"] or "none", 0) + r["calls"]
        )
    savings = counterfactual - realised
    return {
        "traffic": {
            "calls": calls,
            "by_decision": [
                {
                    "decision": k,
                    "calls": v,
                    "share_pct": _pct(Decimal(v), Decimal(calls)),
                }
                for k, v in sorted(by_decision.items())
            ],
            "strong_share_pct": _pct(Decimal(by_decision.get("strong", 0)), Decimal(calls)),
            "by_model": by_model,
        },
        "cost": {
            "realised": money_or_none(realised),
            "all_strong": money_or_none(counterfactual),
            "savings": money_or_none(savings),
            "savings_pct": _pct(savings, counterfactual),
            "strong_price": _price_json(strong_price),
            "strong_price_missing": strong_price is None,
        },
    }


def _evaluation_spend(scope: RouterScope, start: datetime, end: datetime) -> dict:
    """Shadow calls and the judge's calls (``router_decision`` "judge", written by
    ``evaluation.services.judge``), apart from production spend."""
    rows = list(
        router_usage_rows(scope, start=start, end=end, shadow=True)
        .values("model", "router_decision")
        .annotate(calls=Count("id"), cost=Sum("cost"))
        .order_by("model", "router_decision")
    )
    out, totals = [], {"shadow": Decimal(0), "judge": Decimal(0)}
    for r in rows:
        kind = "judge" if r["router_decision"] == "judge" else "shadow"
        cost = r["cost"] or Decimal(0)
        totals[kind] += cost
        out.append(
            {"kind": kind, "model": r["model"], "calls": r["calls"], "cost": money_or_none(cost)}
        )
    return {
        "calls": sum(r["calls"] for r in rows),
        "cost": money_or_none(totals["shadow"] + totals["judge"]),
        "shadow_cost": money_or_none(totals["shadow"]),
        "judge_cost": money_or_none(totals["judge"]),
        "rows": out,
    }


# --- quality ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Labelled:
    scores: np.ndarray  # the router's score of each pair's prompt
    strong_q: np.ndarray
    weak_q: np.ndarray
    messages: list


def _labelled(scope: RouterScope, *, now: datetime) -> _Labelled:
    pairs = router_pair_list(scope, now=now).only(
        "id",
        "messages",
        "router_score",
        "served",
        "review_needs_strong",
        "judge_strong",
        "judge_weak",
        "feedback_score",
    )[:MAX_PAIRS]
    scorer = None
    scores, strong, weak, messages = [], [], [], []
    for pair in pairs:
        q = pair.qualities()
        if q is None:
            continue
        score = pair.router_score
        if score is None:  # scored before scores were stored: the current scorer stands in
            scorer = scorer or router_scorer_get(router=scope.router)
            score = float(scorer.score(pair.messages))
        scores.append(score)
        strong.append(q[0])
        weak.append(q[1])
        messages.append(pair.messages)
    return _Labelled(
        np.asarray(scores, dtype=np.float64),
        np.asarray(strong, dtype=np.float64),
        np.asarray(weak, dtype=np.float64),
        messages,
    )


def _chosen(data: _Labelled, threshold: float, *, all_weak: bool = False) -> np.ndarray:
    strong = np.zeros(len(data.scores), bool) if all_weak else data.scores >= threshold
    return np.where(strong, data.strong_q, data.weak_q)


def quality_retained(
    chosen, strong_q, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict:
    """mean(chosen) / mean(strong) with a percentile bootstrap 95 % interval (seeded)."""
    chosen = np.asarray(chosen, dtype=np.float64)
    strong_q = np.asarray(strong_q, dtype=np.float64)
    n = len(chosen)
    if n == 0 or strong_q.mean() <= 0:
        return {"n": n, "retained": None, "low": None, "high": None}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    num, den = chosen[idx].mean(axis=1), strong_q[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(den > 0, num / den, np.nan)
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return {
        "n": n,
        "retained": _round(chosen.mean() / strong_q.mean()),
        "low": _round(low),
        "high": _round(high),
    }


def _quality(data: _Labelled, threshold: float) -> dict:
    chosen = _chosen(data, threshold)
    out = quality_retained(chosen, data.strong_q)
    n = out["n"]
    out.update(
        {
            "router_quality": _round(chosen.mean()) if n else None,
            "strong_quality": _round(data.strong_q.mean()) if n else None,
            "weak_quality": _round(data.weak_q.mean()) if n else None,
            "strong_share_pct": _round(100 * float((data.scores >= threshold).mean()), 2)
            if n
            else None,
            "threshold": threshold,
        }
    )
    return out


def _curve(scope: RouterScope, data: _Labelled) -> dict | None:
    """The stored evaluation of the active trained model if there is one (held-out pairs of
    the whole router), else the current scorer's curve on the labelled pairs read here."""
    router = scope.router
    stored = RouterModel.objects.filter(router=router, active=True).only("evaluation").first()
    evaluation = stored.evaluation if stored is not None else {}
    side = evaluation.get("learned" if router.scorer == "learned" else "current") or {}
    if side.get("curve"):
        return {
            "source": "stored",
            "scorer": side.get("scorer", router.scorer),
            "n": evaluation.get("test"),
            "trained_at": evaluation.get("trained_at"),
            "apgr": side.get("apgr"),
            "cpt80": side.get("cpt80"),
            "cpt95": side.get("cpt95"),
            "auc": side.get("auc"),
            "random_apgr": (evaluation.get("random") or {}).get("apgr"),
            "points": side["curve"],
        }
    n = len(data.scores)
    if n == 0:
        return None
    scorer = router_scorer_get(router=router)
    # a shuffled order, so that ties (a random scorer's, a constant one's) do not follow labels
    order = list(range(n))
    random.Random(BOOTSTRAP_SEED).shuffle(order)
    scores = [float(scorer.score(data.messages[i])) for i in order]
    strong, weak = data.strong_q[order], data.weak_q[order]
    curve = quality_curve(scores, strong, weak).as_dict()
    return {
        "source": "live",
        "scorer": scorer.kind,
        "n": n,
        "trained_at": None,
        "apgr": curve["apgr"],
        "cpt80": curve["cpt80"],
        "cpt95": curve["cpt95"],
        "auc": None,
        "random_apgr": round(random_apgr(strong, weak, seed=BOOTSTRAP_SEED), 4),
        "points": curve["curve"],
    }


# --- what-if ---------------------------------------------------------------------------------


def grid_thresholds(step: float = GRID_STEP) -> list[float]:
    return [round(i * step, 4) for i in range(round(1 / step) + 1)]


def _whatif(scope: RouterScope, start, end, data: _Labelled, *, strong_price, weak_price) -> dict:
    """Each grid threshold re-decides the range's scored calls (score >= t: strong) and
    re-prices their tokens; the last point, 1.00, is "every call to weak"."""
    thresholds = grid_thresholds()
    scored = router_usage_rows(scope, start=start, end=end).filter(router_score__isnull=False)
    aggregates = {"n": Count("id"), **{f"total_{f}": Sum(f) for f in TOKEN_FIELDS}}
    for i, t in enumerate(thresholds):
        if t >= 1.0:
            continue  # nothing is strong at the top of the grid
        strong = Q(router_score__gte=t)
        aggregates[f"n_{i}"] = Count("id", filter=strong)
        for f in TOKEN_FIELDS:
            aggregates[f"{f}_{i}"] = Sum(f, filter=strong)
    sums = scored.aggregate(**aggregates)
    calls = sums["n"] or 0
    total = tuple(int(sums[f"total_{f}"] or 0) for f in TOKEN_FIELDS)
    n_pairs = len(data.scores)
    strong_mean = float(data.strong_q.mean()) if n_pairs else None
    weak_mean = float(data.weak_q.mean()) if n_pairs else None
    grid = []
    for i, t in enumerate(thresholds):
        strong_calls = sums.get(f"n_{i}") or 0
        strong_tokens = tuple(int(sums.get(f"{f}_{i}") or 0) for f in TOKEN_FIELDS)
        weak_tokens = tuple(a - b for a, b in zip(total, strong_tokens, strict=True))
        cost = price_tokens(strong_tokens, strong_price) + price_tokens(weak_tokens, weak_price)
        point = {
            "threshold": t,
            "strong_calls": strong_calls,
            "strong_share_pct": _round(100 * strong_calls / calls, 2) if calls else None,
            "cost": money_or_none(cost),
            "cost_usd": usd_six(money_or_none(cost)),
            "quality": None,
            "retained": None,
            "pgr": None,
        }
        if n_pairs:
            q = float(_chosen(data, t, all_weak=t >= 1.0).mean())
            gap = strong_mean - weak_mean
            point["quality"] = _round(q)
            point["retained"] = _round(q / strong_mean) if strong_mean > 0 else None
            point["pgr"] = 1.0 if abs(gap) < 1e-12 else _round((q - weak_mean) / gap)
        grid.append(point)
    return {"scored_calls": calls, "pairs": n_pairs, "step": GRID_STEP, "grid": grid}


# --- the page --------------------------------------------------------------------------------


def router_report(scope: RouterScope, rng: DateRange, *, now: datetime) -> dict:
    """Everything the router page and its JSON show, for one scope and range."""
    router = scope.router
    start, end = range_bounds(rng, router.org)
    strong_price = current_price(router.strong, now=now)
    weak_price = current_price(router.weak, now=now)
    data = _labelled(scope, now=now)
    return {
        "router": {
            "id": router.pk,
            "name": router.name,
            "strong": router.strong.name,
            "weak": router.weak.name,
            "scorer": router.scorer,
            "threshold": router.threshold,
            "shadow_rate": router.shadow_rate,
            "judge_model": router.judge_model.name if router.judge_model_id else None,
        },
        "scope": {
            "org": router.org.slug,
            "team": None
            if scope.team is None
            else {"id": scope.team.pk, "slug": scope.team.slug, "name": scope.team.name},
        },
        "range": rng.as_json(),
        **_traffic(scope, start, end, strong_price),
        "quality": _quality(data, router.threshold),
        "curve": _curve(scope, data),
        "whatif": _whatif(
            scope, start, end, data, strong_price=strong_price, weak_price=weak_price
        ),
        "evaluation_spend": _evaluation_spend(scope, start, end),
    }
