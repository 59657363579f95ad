"""The tables of the dashboards (``reports.tables.Table``), built from the same data as their
JSON endpoints, so the page, its CSV downloads and the charts show the same numbers.

Rows hold the JSON's values (money at the ledger's twelve places, percentages as numbers); each
column's ``kind`` shows them in the house format on the page (``finops.money``), and the CSV
keeps them whole.
"""

from __future__ import annotations

from decimal import Decimal

from django.utils.html import format_html

from reports.tables import Column, Figure, Table


class Link(str):
    """A table cell that is a link on the page and plain text in the CSV. A ``str``, so that the
    template escapes it through ``__html__``: Django renders ``str()`` of anything else, which
    would drop the link."""

    url: str | None

    def __new__(cls, text: str, url: str | None) -> Link:
        cell = super().__new__(cls, text)
        cell.url = url
        return cell

    @property
    def text(self) -> str:
        return str(self)

    def __html__(self) -> str:
        if not self.url:
            return str(format_html("{}", str(self)))
        return str(format_html('<a href="{}">{}</a>', self.url, str(self)))


def _num(key: str, label: str, kind: str = "") -> Column:
    return Column(key, label, numeric=True, kind=kind)


def _usd(key: str, label: str) -> Column:
    return _num(key, label, "usd")


def _pct(key: str, label: str) -> Column:
    return _num(key, label, "pct")


def _money(value) -> Figure:
    return Figure(value, "usd")


CALL_COLUMNS = (
    _num("requests", "Requests"),
    _num("attempts", "Attempts"),
    _num("failures", "Failures"),
    _usd("cost", "Cost (USD)"),
    _pct("share", "Share"),
)
OVERHEAD_COLUMNS = (
    _num("requests", "Requests"),
    _num("attempts", "Attempts"),
    _num("retries", "Retries"),
    _num("successes", "Successes"),
    _num("failures", "Failures"),
    _usd("cost", "Cost (USD)"),
    _usd("failed_cost", "Failed cost (USD)"),
    _pct("failed_share", "Failed share"),
    _usd("cost_per_call", "Cost per call"),
    _usd("cost_per_success", "Cost per success"),
)


def _money_row(row: dict, **extra) -> dict:
    out = dict(row)
    out["share"] = row.get("share_pct")
    out["failed_share"] = row.get("failed_share_pct")
    out.update(extra)
    return out


def budget_table(budgets: list[dict], *, title: str = "Budgets") -> Table:
    rows = []
    for b in budgets:
        f = b["forecast"] or {}
        rows.append(
            {
                "budget": b["label"],
                "period": b["period"],
                "window": f"{b['window']['start']} to {b['window']['end']}",
                "limit": b["limit"],
                "spent": b["spent"],
                "percent": b["percent"],
                "forecast": f.get("projected") or b.get("forecast_note") or "",
                "band_low": f.get("low"),
                "band_high": f.get("high"),
                "exhausts_on": f.get("exhausts_on") or "",
            }
        )
    return Table(
        "budgets",
        title,
        (
            Column("budget", "Budget"),
            Column("period", "Period"),
            Column("window", "Window"),
            _usd("limit", "Limit (USD)"),
            _usd("spent", "Spent (USD)"),
            _pct("percent", "Used"),
            _usd("forecast", "Forecast at window end"),
            _usd("band_low", "90% band from"),
            _usd("band_high", "90% band to"),
            Column("exhausts_on", "Runs out on"),
        ),
        rows,
    )


def _breakdown_table(name: str, title: str, label: str, rows: list[dict]) -> Table:
    return Table(
        name,
        title,
        (Column("name", label), *CALL_COLUMNS),
        [_money_row(r, name=r["name"]) for r in rows],
    )


def overview_tables(data: dict) -> list[Table]:
    month = data["month"]
    f = month["forecast"] or {}
    totals = data["totals"]
    summary = Table(
        "summary",
        "Summary",
        (Column("measure", "Measure"), _num("value", "Value")),
        [
            {"measure": "Range", "value": f"{data['range']['start']} to {data['range']['end']}"},
            {"measure": "Spend in range (USD)", "value": _money(totals["cost"])},
            {"measure": "Requests", "value": totals["requests"]},
            {"measure": "Cost per call (USD)", "value": _money(totals["cost_per_call"])},
            {
                "measure": "Cost per successful response (USD)",
                "value": _money(totals["cost_per_success"]),
            },
            {"measure": "Month to date (USD)", "value": _money(month["spent"])},
            {"measure": "Forecast at month end (USD)", "value": _money(f.get("projected"))},
            {"measure": "Forecast 90% band from (USD)", "value": _money(f.get("low"))},
            {"measure": "Forecast 90% band to (USD)", "value": _money(f.get("high"))},
        ],
    )
    teams = Table(
        "teams",
        "Spend and overhead by team",
        (Column("team", "Team"), *OVERHEAD_COLUMNS, _num("share", "Share")),
        [_money_row(r, team=Link(r["name"], r["url"])) for r in data["teams"]],
    )
    series = data["daily"]["series"]
    daily_rows = []
    for i, day in enumerate(data["daily"]["days"]):
        row: dict = {"day": day}
        day_total = Decimal(0)
        for s in series:
            row[f"t{s['key']}"] = s["values"][i]
            day_total += Decimal(s["values"][i])
        row["total"] = str(day_total)
        daily_rows.append(row)
    daily = Table(
        "daily",
        "Daily spend by team (USD)",
        (
            Column("day", "Day"),
            *(_usd(f"t{s['key']}", s["name"]) for s in series),
            _usd("total", "Total"),
        ),
        daily_rows,
    )
    anomalies = Table(
        "anomalies",
        "Anomalies",
        (
            Column("day", "Day"),
            Column("team", "Team"),
            Column("feature", "Feature"),
            _usd("spent", "Spent (USD)"),
            _usd("baseline", "Typical day (USD)"),
            _num("z", "Robust z"),
            Column("alert", "Alert"),
        ),
        [
            _money_row(
                a,
                feature=a["feature"] or "",
                alert=Link(f"alert #{a['alert_id']}", a["alert_url"]) if a["alert_id"] else "",
            )
            for a in data["anomalies"]
        ],
    )
    top = data["top"]
    return [
        summary,
        budget_table([*data["budgets"]], title="Organisation budgets"),
        teams,
        daily,
        _breakdown_table("features", "Top features", "Feature", top["feature"]),
        _breakdown_table("endpoints", "Top endpoints", "Endpoint", top["endpoint"]),
        _breakdown_table("models", "Top models", "Model", top["model"]),
        _breakdown_table("keys", "Top keys", "Key", top["key"]),
        anomalies,
        *savings_tables(data["savings"]),
    ]


def savings_tables(savings: dict) -> list[Table]:
    """The savings statement of a page (``reports.savings``): the totals next to the spend, each
    lever with its method, and what the levers cost; on the overview also by team."""
    summary = Table(
        "savings_summary",
        "Savings next to the spend",
        (Column("measure", "Measure"), _num("value", "Value")),
        [
            {"measure": "Spend (USD)", "value": _money(savings["cost"])},
            {"measure": "Saved by the levers (USD)", "value": _money(savings["saved"])},
            {
                "measure": "Spend without the levers (USD)",
                "value": _money(savings["without_levers"]),
            },
            {"measure": "Saved share", "value": Figure(savings["saved_pct"], "pct")},
            {"measure": "What the levers cost (USD)", "value": _money(savings["lever_cost"])},
            {"measure": "Net saved (USD)", "value": _money(savings["net_saved"])},
        ],
    )
    levers = Table(
        "savings",
        "Savings by lever",
        (
            Column("lever", "Lever"),
            Column("method", "Method"),
            _usd("saved", "Saved (USD)"),
            _usd("spend", "Spend on its calls (USD)"),
        ),
        [
            {
                "lever": lever["label"],
                "method": lever["method"],
                "saved": lever["saved"],
                "spend": lever["spend"],
            }
            for lever in savings["levers"]
        ],
    )
    costs = Table(
        "lever_costs",
        "What the levers cost",
        (Column("name", "Cost"), Column("method", "Method"), _usd("cost", "Cost (USD)")),
        [
            {"name": c["label"], "method": c["method"], "cost": c["cost"]}
            for c in savings["lever_costs"]
        ],
    )
    tables = [summary, levers, costs]
    if "teams" in savings:
        tables.append(
            Table(
                "savings_teams",
                "Savings by team",
                (
                    Column("team", "Team"),
                    _usd("cost", "Spend (USD)"),
                    _usd("saved", "Saved (USD)"),
                    *(_usd(f"saved_{lv['lever']}", lv["label"]) for lv in savings["levers"]),
                    _usd("lever_cost", "Lever cost (USD)"),
                ),
                [
                    {
                        "team": Link(t["name"], t["url"]),
                        "cost": t["cost"],
                        "saved": t["saved"],
                        **{f"saved_{lv['lever']}": lv["saved"] for lv in t["levers"]},
                        "lever_cost": t["lever_cost"],
                    }
                    for t in savings["teams"]
                ],
            )
        )
    return tables


LATENCY_KEYS = ("name", "latency_count", "latency_ms_avg", "latency_ms_p50", "latency_ms_p95")


def team_tables(data: dict) -> list[Table]:
    breakdown = data["breakdown"]
    overhead = Table(
        "overhead",
        "Failure and retry overhead by model",
        (Column("name", "Model"), *OVERHEAD_COLUMNS),
        [_money_row(r) for r in data["models"]],
    )
    latency = Table(
        "latency",
        "Latency by model (successful calls)",
        (
            Column("name", "Model"),
            _num("latency_count", "Calls"),
            _num("latency_ms_avg", "Average (ms)"),
            _num("latency_ms_p50", "p50 (ms)"),
            _num("latency_ms_p95", "p95 (ms)"),
        ),
        [{k: "" if r.get(k) is None else r[k] for k in LATENCY_KEYS} for r in data["models"]],
    )
    daily = Table(
        "daily",
        "Daily spend and overhead",
        (Column("day", "Day"), *OVERHEAD_COLUMNS[:7], OVERHEAD_COLUMNS[9]),
        [_money_row(r) for r in data["daily"]],
    )
    alerts = Table(
        "alerts",
        "Recent alerts",
        (
            Column("created_at", "When"),
            Column("kind", "Kind"),
            Column("subject", "Alert"),
            _usd("spent", "Spent (USD)"),
            Column("status", "Status"),
        ),
        [
            {
                "created_at": a["created_at"][:16].replace("T", " "),
                "kind": a["kind_label"],
                "subject": Link(a["subject"] or a["scope"], a["url"]),
                "spent": a["spent"],
                "status": a["status"],
            }
            for a in data["alerts"]
        ],
    )
    return [
        budget_table(data["budgets"]),
        _breakdown_table("features", "By feature", "Feature", breakdown["feature"]),
        _breakdown_table("endpoints", "By endpoint", "Endpoint", breakdown["endpoint"]),
        _breakdown_table("models", "By model", "Model", breakdown["model"]),
        _breakdown_table("keys", "By key", "Key", breakdown["key"]),
        daily,
        overhead,
        latency,
        alerts,
        *savings_tables(data["savings"]),
    ]
