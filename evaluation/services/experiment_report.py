"""The A/B page's figures: per arm (control, candidate) of an experiment, from its production
ledger rows in a range: calls, cost, cost per call, latency p50/p95, error rate, and the mean
feedback score of its requests (``Feedback`` joined on request id) with n and a 95 % interval.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db.models import Count, Q, Sum

from evaluation.models import Experiment
from evaluation.selectors_pages import experiment_feedback, experiment_usage_rows
from evaluation.services.curve import mean_with_interval
from evaluation.services.router_report import _pct, _round, range_bounds, zone
from finops.money import money_or_none
from reports.periods import local_date
from reports.ranges import MAX_DAYS, DateRange, date_range_from_params

ARMS = ("control", "candidate")


def experiment_range(experiment: Experiment, params, *, now: datetime) -> DateRange:
    """The range asked for, else from the experiment's first local day to today (at most
    ``MAX_DAYS``). Raises ``RangeError`` on a malformed one."""
    tz = zone(experiment.org)
    if params.get("range") or params.get("start") or params.get("end"):
        return date_range_from_params(params, tz=tz, now=now)
    today = local_date(now, tz)
    first = local_date(experiment.created_at, tz)
    start: date = max(min(first, today), today - timedelta(days=MAX_DAYS - 1))
    return DateRange("custom", start, today, today)


def _arm(experiment: Experiment, rows, arm: str) -> dict:
    mine = rows.filter(experiment_arm=arm)
    sums = mine.aggregate(
        calls=Count("id"),
        requests=Count("request_id", distinct=True),
        errors=Count("id", filter=~Q(status="ok")),
        cost=Sum("cost"),
    )
    calls = sums["calls"] or 0
    cost = sums["cost"] or Decimal(0)
    latencies = np.fromiter(mine.values_list("latency_ms", flat=True).iterator(), dtype=np.float64)
    p50, p95 = np.percentile(latencies, [50, 95]) if len(latencies) else (None, None)
    scores = list(
        experiment_feedback(experiment, mine.values("request_id")).values_list("score", flat=True)
    )
    mean, low, high = mean_with_interval(scores)
    models = list(mine.values("model").annotate(calls=Count("id")).order_by("-calls", "model"))
    return {
        "arm": arm,
        "calls": calls,
        "requests": sums["requests"] or 0,
        "errors": sums["errors"] or 0,
        "cost": money_or_none(cost),
        "cost_per_call": money_or_none(cost / calls) if calls else None,
        "latency_ms_p50": _round(p50, 1),
        "latency_ms_p95": _round(p95, 1),
        "error_rate_pct": _pct(Decimal(sums["errors"] or 0), Decimal(calls)),
        "quality": {
            "n": len(scores),
            "mean": _round(mean),
            "low": _round(low),
            "high": _round(high),
        },
        "models": [{"model": m["model"], "calls": m["calls"]} for m in models],
    }


def experiment_report(experiment: Experiment, rng: DateRange, *, now: datetime) -> dict:
    start, end = range_bounds(rng, experiment.org)
    rows = experiment_usage_rows(experiment, start=start, end=end)
    arms = [_arm(experiment, rows, arm) for arm in ARMS]
    return {
        "experiment": {
            "id": experiment.pk,
            "name": experiment.name,
            "route": experiment.route,
            "candidate": experiment.candidate.name,
            "share": experiment.share,
            "active": experiment.active,
            "key": experiment.key.name if experiment.key_id else None,
            "feature": experiment.feature.slug if experiment.feature_id else None,
            "created_at": experiment.created_at.isoformat(),
        },
        "range": rng.as_json(),
        "arms": arms,
    }
