"""An A/B experiment's page (HTML with server-rendered tables, a CSV download of each) and its
JSON: per arm (control, candidate) of the experiment, from its production ledger rows in a range:
calls, cost, cost per call, latency p50/p95, error rate, and the mean feedback score of its
requests (``Feedback`` joined on request id) with n and a 95 % interval. The tables are built
from the same dict as the JSON; money is USD at six places there (the JSON carries twelve). An
experiment the user may not read is a 404.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from evaluation.models import Experiment
from evaluation.pages.router_report import _pct, _round, range_bounds, zone
from evaluation.selectors import experiment_feedback, experiment_get_for_user, experiment_usage_rows
from evaluation.services.curve import mean_with_interval
from finops.money import money_or_none, usd_six
from reports.periods import local_date
from reports.ranges import MAX_DAYS, PRESETS, DateRange, RangeError, date_range_from_params
from reports.tables import Column, Table, csv_or_none

ARMS = ("control", "candidate")


# --- figures -------------------------------------------------------------------------------------


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


# --- tables --------------------------------------------------------------------------------------


def _num(key: str, label: str) -> Column:
    return Column(key, label, numeric=True)


def _pct_cell(value) -> str:
    return "" if value is None else f"{value}%"


def experiment_tables(data: dict) -> list[Table]:
    arms = Table(
        "arms",
        "Arms",
        [
            Column("arm", "Arm"),
            _num("calls", "Calls"),
            _num("requests", "Requests"),
            _num("cost", "Cost (USD)"),
            _num("cost_per_call", "Cost per call (USD)"),
            _num("latency_ms_p50", "Latency p50 (ms)"),
            _num("latency_ms_p95", "Latency p95 (ms)"),
            _num("error_rate", "Error rate"),
            _num("quality", "Feedback score"),
            _num("quality_n", "n"),
            _num("quality_ci", "95% CI"),
        ],
        [
            {
                "arm": a["arm"],
                "calls": a["calls"],
                "requests": a["requests"],
                "cost": usd_six(a["cost"]),
                "cost_per_call": usd_six(a["cost_per_call"]),
                "latency_ms_p50": "" if a["latency_ms_p50"] is None else a["latency_ms_p50"],
                "latency_ms_p95": "" if a["latency_ms_p95"] is None else a["latency_ms_p95"],
                "error_rate": _pct_cell(a["error_rate_pct"]),
                "quality": "" if a["quality"]["mean"] is None else a["quality"]["mean"],
                "quality_n": a["quality"]["n"],
                "quality_ci": ""
                if a["quality"]["mean"] is None
                else f"{a['quality']['low']} – {a['quality']['high']}",
            }
            for a in data["arms"]
        ],
    )
    models = Table(
        "models",
        "Models that answered, per arm",
        [Column("arm", "Arm"), Column("model", "Model"), _num("calls", "Calls")],
        [{"arm": a["arm"], **m} for a in data["arms"] for m in a["models"]],
    )
    return [arms, models]


# --- the page ------------------------------------------------------------------------------------


def _query(request) -> str:
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    return query.urlencode()


def _experiment(request, experiment_id: int):
    experiment = experiment_get_for_user(request.user, experiment_id=experiment_id)
    if experiment is None:
        raise Http404("No such experiment.")
    return experiment


@login_required
def experiment_page(request, experiment_id: int):
    experiment = _experiment(request, experiment_id)
    now = timezone.now()
    error = None
    try:
        rng = experiment_range(experiment, request.GET, now=now)
    except RangeError as exc:
        rng, error = experiment_range(experiment, {}, now=now), str(exc)
    data = experiment_report(experiment, rng, now=now)
    tables = experiment_tables(data)
    name = f"{experiment.org.slug}-{experiment.name}-{rng.start}-{rng.end}"
    download = csv_or_none(request, tables, name)
    if download is not None:
        return download
    data_url = reverse("evaluation:experiment-data", args=[experiment.pk])
    query = _query(request)
    context = {
        "experiment": experiment,
        "data": data,
        "tables": {t.name: t for t in tables},
        "range": rng,
        "range_error": error,
        "presets": PRESETS,
        "data_url": f"{data_url}?{query}" if query else data_url,
    }
    return render(request, "evaluation/experiment.html", context)


@login_required
def experiment_data(request, experiment_id: int):
    experiment = _experiment(request, experiment_id)
    now = timezone.now()
    try:
        rng = experiment_range(experiment, request.GET, now=now)
    except RangeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(experiment_report(experiment, rng, now=now))
