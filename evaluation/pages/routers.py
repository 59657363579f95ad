"""A cost router's page (HTML with server-rendered tables, a CSV download of each) and its JSON.
The tables are built from the same dict as the JSON (``evaluation.pages.router_report``), so
page, CSV and charts show the same numbers. Money is USD at six places in the tables (the JSON
carries twelve). A router or team the user may not read is a 404.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from evaluation.pages.router_report import router_report, zone
from evaluation.selectors import router_scope_get, router_scope_teams
from finops.money import usd_six
from reports.ranges import PRESETS, RangeError, date_range_from_params
from reports.selectors import overview_org_list
from reports.tables import Column, Table, csv_or_none
from teams.selectors import access_for_user

# --- tables --------------------------------------------------------------------------------------


def _num(key: str, label: str) -> Column:
    return Column(key, label, numeric=True)


def _pct(value) -> str:
    return "" if value is None else f"{value}%"


def _ratio_pct(value) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def router_tables(data: dict) -> list[Table]:
    cost, quality = data["cost"], data["quality"]
    traffic = Table(
        "traffic",
        "Production calls by decision and model",
        [
            Column("decision", "Decision"),
            Column("model", "Model that answered"),
            _num("calls", "Calls"),
            _num("requests", "Requests"),
            _num("failures", "Failures"),
            _num("share", "Share"),
            _num("cost", "Cost (USD)"),
            _num("cost_if_strong", "Cost if strong (USD)"),
        ],
        [
            {
                **r,
                "decision": r["decision"] or "(none)",
                "share": _pct(r["share_pct"]),
                "cost": usd_six(r["cost"]),
                "cost_if_strong": usd_six(r["cost_if_strong"]),
            }
            for r in data["traffic"]["by_model"]
        ],
    )
    savings = Table(
        "savings",
        "Realised cost vs all-strong",
        [
            _num("realised", "Realised (USD)"),
            _num("all_strong", "All strong (USD)"),
            _num("savings", "Savings (USD)"),
            _num("savings_pct", "Savings"),
        ],
        [
            {
                "realised": usd_six(cost["realised"]),
                "all_strong": usd_six(cost["all_strong"]),
                "savings": usd_six(cost["savings"]),
                "savings_pct": _pct(cost["savings_pct"]),
            }
        ]
        if data["traffic"]["calls"]
        else [],
    )
    retained = Table(
        "quality",
        "Estimated quality retained (labelled pairs)",
        [
            _num("n", "Labelled pairs (n)"),
            _num("retained", "Quality retained"),
            _num("low", "95% CI low"),
            _num("high", "95% CI high"),
            _num("router_quality", "Router quality"),
            _num("strong_quality", "All-strong quality"),
            _num("weak_quality", "All-weak quality"),
        ],
        [
            {
                "n": quality["n"],
                "retained": _ratio_pct(quality["retained"]),
                "low": _ratio_pct(quality["low"]),
                "high": _ratio_pct(quality["high"]),
                "router_quality": quality["router_quality"],
                "strong_quality": quality["strong_quality"],
                "weak_quality": quality["weak_quality"],
            }
        ]
        if quality["n"]
        else [],
    )
    curve = data["curve"]
    curve_table = Table(
        "curve",
        "Quality vs strong share",
        [
            _num("share", "Strong share"),
            _num("pgr", "PGR"),
            _num("random", "Random PGR"),
            _num("quality", "Quality"),
        ],
        [
            {"share": f"{s * 100:.0f}%", "pgr": p, "random": s, "quality": q}
            for s, p, q in (curve["points"] if curve else [])
        ],
    )
    whatif = Table(
        "whatif",
        "What if the threshold were…",
        [
            _num("threshold", "Threshold"),
            _num("share", "Strong share of calls"),
            _num("strong_calls", "Strong calls"),
            _num("cost", "Projected cost (USD)"),
            _num("quality", "Est. quality"),
            _num("retained", "Quality retained"),
        ],
        [
            {
                "threshold": f"{p['threshold']:.2f}",
                "share": _pct(p["strong_share_pct"]),
                "strong_calls": p["strong_calls"],
                "cost": usd_six(p["cost"]),
                "quality": "" if p["quality"] is None else p["quality"],
                "retained": _ratio_pct(p["retained"]),
            }
            for i, p in enumerate(data["whatif"]["grid"])
            if i % 5 == 0  # every 0.1 of the 0.02 grid
        ],
    )
    evaluation = Table(
        "evaluation",
        "Evaluation spend (shadow and judge calls)",
        [
            Column("kind", "Kind"),
            Column("model", "Model"),
            _num("calls", "Calls"),
            _num("cost", "Cost (USD)"),
        ],
        [{**r, "cost": usd_six(r["cost"])} for r in data["evaluation_spend"]["rows"]],
    )
    return [traffic, savings, retained, curve_table, whatif, evaluation]


# --- the page ------------------------------------------------------------------------------------


def _router_scope(request, router_id: int):
    scope = router_scope_get(request.user, router_id=router_id, team_id=request.GET.get("team"))
    if scope is None:
        raise Http404("No such router.")
    return scope


def _query(request) -> str:
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    return query.urlencode()


@login_required
def router_page(request, router_id: int):
    scope = _router_scope(request, router_id)
    now = timezone.now()
    error = None
    try:
        rng = date_range_from_params(request.GET, tz=zone(scope.router.org), now=now)
    except RangeError as exc:
        rng, error = date_range_from_params({}, tz=zone(scope.router.org), now=now), str(exc)
    data = router_report(scope, rng, now=now)
    tables = router_tables(data)
    team = scope.team.slug if scope.team else "org"
    name = f"{scope.router.org.slug}-{scope.router.name}-{team}-{rng.start}-{rng.end}"
    download = csv_or_none(request, tables, name)
    if download is not None:
        return download
    data_url = reverse("evaluation:router-data", args=[scope.router.pk])
    query = _query(request)
    context = {
        "router": scope.router,
        "scope": scope,
        "teams": list(router_scope_teams(scope)),
        "org_wide_allowed": access_for_user(request.user).reads_whole_org(scope.router.org_id),
        "data": data,
        "tables": {t.name: t for t in tables},
        "range": rng,
        "range_error": error,
        "presets": PRESETS,
        "data_url": f"{data_url}?{query}" if query else data_url,
        "overview_url": (
            reverse("reports:org-overview", args=[scope.router.org_id])
            if overview_org_list(request.user).filter(pk=scope.router.org_id).exists()
            else None
        ),
    }
    return render(request, "evaluation/router.html", context)


@login_required
def router_data(request, router_id: int):
    scope = _router_scope(request, router_id)
    now = timezone.now()
    try:
        rng = date_range_from_params(request.GET, tz=zone(scope.router.org), now=now)
    except RangeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(router_report(scope, rng, now=now))
