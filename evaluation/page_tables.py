"""The tables of the router and A/B pages (``reports.tables.Table``), built from the same dict
as their JSON endpoints, so page, CSV and charts show the same numbers. Money is USD at six
places here (the JSON carries twelve)."""

from __future__ import annotations

from finops.money import usd_six
from reports.tables import Column, Table


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
                "error_rate": _pct(a["error_rate_pct"]),
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
