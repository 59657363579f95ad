"""The organisation overview and the team page as JSON-ready data (money as fixed-point strings).

Both read only the per-dimension day marginals (``DailyDimensionSpend``: per team and day, its
total and one row per feature / endpoint / model / key, a few dozen rows where ``DailySpend``
holds their cross product), through ``reports.selectors.dashboards``, in a handful of queries:
the overview sums the range by dimension and value in one ``GROUP BY`` and reads the team totals
by day once for its chart, anomalies and org budgets; the team page reads its rows by day once,
over the range and its budgets' windows and history, and sums them in Python. The ledger and
``DailySpend`` are never read.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Sum
from django.urls import reverse

from finops.money import money
from reports.forecast import HISTORY_DAYS, robust_z
from reports.models import AlertKind, Dimension
from reports.pages.dashboard_burn import budget_burn, budget_lines
from reports.pages.dashboard_measures import (
    COUNTS,
    LATENCY,
    MONEY,
    Tally,
    _dec,
    _none,
    _ranked,
    _ranked_pairs,
    _series,
    _sums,
    _tuned,
)
from reports.periods import DAY, local_midnight, org_zone, period_days
from reports.ranges import DateRange
from reports.savings import Savings, savings_sums
from reports.selectors import (
    key_labels,
    org_alert_list,
    org_budget_list,
    org_dimension_rows,
    org_team_labels,
    team_alert_list,
    team_budget_list,
    team_dimension_rows,
)
from reports.selectors.spend import latency_percentiles
from teams.models import Budget, BudgetPeriod, BudgetScope, Organization, Team

TOP_N = 10
ANOMALY_HISTORY_DAYS = 28


def _range_query(rng: DateRange) -> str:
    return urlencode(rng.params())


def team_url(team_id: int, rng: DateRange | None = None) -> str:
    url = reverse("reports:team-dashboard", args=[team_id])
    return f"{url}?{_range_query(rng)}" if rng else url


# --- organisation overview -----------------------------------------------------------------------


def org_overview(user, org: Organization, rng: DateRange, *, now: datetime) -> dict:
    """Everything the overview shows, for a whole-org reader of ``org`` (empty otherwise)."""
    with _tuned():
        return _org_overview(user, org, rng, now=now)


def _org_overview(user, org: Organization, rng: DateRange, *, now: datetime) -> dict:
    rows = org_dimension_rows(user, org)
    in_range = rows.filter(day__gte=rng.start, day__lte=rng.end)
    teams = org_team_labels(user, org)

    def team_label(team_id: int) -> str:
        if not team_id:
            return "(no team)"
        return teams[team_id].slug if team_id in teams else f"#{team_id}"

    total = Tally()
    by: dict[str, dict] = {d: defaultdict(Tally) for d in ("team", "feature", "endpoint", "model")}
    by["key"] = defaultdict(Tally)
    groups = (
        in_range.values("dimension", "team_id", "value")
        .annotate(**_sums(*COUNTS, *MONEY))
        .order_by()
    )
    for g in groups:
        dimension, team_id, value = g["dimension"], g["team_id"], g["value"]
        if dimension == Dimension.TEAM:
            total.add(g)
            by["team"][team_id].add(g)
        elif dimension == Dimension.FEATURE:
            by["feature"][(team_id, value)].add(g)
        elif dimension == Dimension.KEY:
            by["key"][int(value)].add(g)
        else:  # endpoints and models across teams
            by[dimension][value].add(g)
    keys = key_labels(user, [k for k in by["key"] if k])

    def feature_label(key: tuple[int, str]) -> str:
        return f"{team_label(key[0])}/{key[1]}" if key[1] else f"{team_label(key[0])}/(none)"

    def key_label(key_id: int) -> str:
        return keys.get(key_id, f"#{key_id}") if key_id else "(no key)"

    for team_id in teams:  # every team on the overview, spend or not (a row of zeros)
        by["team"].setdefault(team_id, Tally())
    team_rows = []
    for team_id, row in _ranked_pairs(by["team"], team_label, total.cost):
        team_rows.append(row)
        row["team_id"] = team_id or None
        row["url"] = team_url(team_id, rng) if team_id in teams else None

    # Daily cost by team, read once for the stacked chart, the anomaly baseline (28 days before
    # the range) and every org budget's burn (its window, and 28 days of run-rate history).
    tz = org_zone(org)
    today = rng.today
    budgets = list(org_budget_list(user, org).select_related("org"))
    firsts = [period_days(b.period, today)[0] for b in budgets]
    afters = [period_days(b.period, today)[1] for b in budgets]
    month_first, month_after = period_days(BudgetPeriod.MONTH, today)
    history = timedelta(days=ANOMALY_HISTORY_DAYS)
    low = min(rng.start - history, today - history, month_first, *firsts)
    high = max(rng.end, month_after - DAY, *(a - DAY for a in afters))
    daily: dict[int, dict[date, Decimal]] = defaultdict(dict)
    org_daily: dict[date, Decimal] = defaultdict(Decimal)
    for r in (
        rows.filter(dimension=Dimension.TEAM, day__gte=low, day__lte=high)
        .values("day", "team_id")
        .annotate(cost=Sum("cost"))
        .order_by()
    ):
        cost = _dec(r["cost"])
        daily[r["team_id"]][r["day"]] = cost
        org_daily[r["day"]] += cost
    days = rng.days()
    ranking = {
        t: sum((c for d, c in v.items() if rng.start <= d <= rng.end), Decimal(0))
        for t, v in daily.items()
    }
    ranking = {t: c for t, c in ranking.items() if c or t in by["team"]}
    series = _series(daily, days, team_label, ranking, n=len(ranking))
    for s in series:
        s["url"] = team_url(s["key"], rng) if s["key"] in teams else None

    burns = [budget_burn(b, now=now, daily=org_daily) for b in budgets]
    month = _month_burn(org, budgets, burns, daily=org_daily, now=now)

    return {
        "page": "overview",
        "org": {"id": org.pk, "slug": org.slug, "name": org.name, "timezone": org.timezone},
        "range": rng.as_json(),
        "totals": total.as_json(),
        "month": month,
        "budgets": burns,
        "teams": team_rows,
        "daily": {"days": [d.isoformat() for d in days], "series": series},
        "top": {
            "feature": _ranked(by["feature"], feature_label, total.cost, n=TOP_N),
            "endpoint": _ranked(by["endpoint"], _none, total.cost, n=TOP_N),
            "model": _ranked(by["model"], _none, total.cost, n=TOP_N),
            "key": _ranked(by["key"], key_label, total.cost, n=TOP_N),
        },
        "anomalies": _anomalies(user, org, daily, rng, team_label=team_label, tz=tz),
        "savings": _org_savings(in_range, team_label, teams, rng),
    }


def _month_burn(
    org: Organization, budgets: list[Budget], burns: list[dict], *, daily, now: datetime
) -> dict:
    """The month's chart: the monthly org budget's burn (or the month's spend and forecast with
    no limit), and the other org budgets as lines on it, prorated where their period differs."""
    month = next(
        (burn for b, burn in zip(budgets, burns, strict=True) if b.period == BudgetPeriod.MONTH),
        None,
    )
    if month is None:  # no monthly org budget: the month's spend and forecast all the same
        month = budget_burn(
            Budget(org=org, scope=BudgetScope.ORG, period=BudgetPeriod.MONTH, limit_usd=Decimal(0)),
            now=now,
            daily=daily,
        )
        month["label"] = f"org {org.slug} (no monthly budget)"
    month["budget_lines"] = budget_lines(budgets, burns, month=month)
    prorated = [line for line in month["budget_lines"] if line["prorated"]]
    if month["id"] is None and prorated:
        month["label"] = f"org {org.slug}: {prorated[0]['note']}"
    return month


def _org_savings(in_range, team_label, teams: dict, rng: DateRange) -> dict:
    """The range's savings by lever (``reports.savings``), over the org and by team, from the
    team-total marginals."""
    total = Savings()
    by_team = []
    for g in (
        in_range.filter(dimension=Dimension.TEAM)
        .values("team_id")
        .annotate(**savings_sums())
        .order_by()
    ):
        total.add(g)
        team = Savings.of(g)
        if not (team.cost or team.total_saved or team.eval_cost):
            continue
        team_id = g["team_id"]
        by_team.append(
            {
                "name": team_label(team_id),
                "team_id": team_id or None,
                "url": team_url(team_id, rng) if team_id in teams else None,
                **team.as_json(),
            }
        )
    by_team.sort(key=lambda t: (-Decimal(t["saved"]), t["name"]))
    return {**total.as_json(), "teams": by_team}


def _anomalies(user, org: Organization, daily, rng: DateRange, *, team_label, tz) -> list[dict]:
    """Days in the range on which a team spent far above its trailing 28-day baseline (the
    alerting job's robust z-score test, applied to every day shown), and the anomaly alerts
    recorded in the range (which also cover features and today so far)."""
    z_min = float(getattr(settings, "FINOPS_ANOMALY_Z", 3.5))
    ratio = Decimal(str(getattr(settings, "FINOPS_ANOMALY_RATIO", 2)))
    floor = Decimal(str(getattr(settings, "FINOPS_ANOMALY_MIN_USD", 1)))
    found: dict[tuple, dict] = {}
    for team_id, by_day in daily.items():
        if not team_id:
            continue
        spending = sorted(d for d, c in by_day.items() if c > 0)
        for day in rng.days():
            value = by_day.get(day, Decimal(0))
            if value < floor:
                continue
            # the first day of spend in the 28 days before this one
            i = bisect_left(spending, day - timedelta(days=ANOMALY_HISTORY_DAYS))
            if i == len(spending) or spending[i] >= day or (day - spending[i]).days < 7:
                continue
            history = [
                by_day.get(spending[i] + timedelta(days=n), Decimal(0))
                for n in range((day - spending[i]).days)
            ]
            z, median = robust_z(value, history)
            if z < z_min or value < median * ratio:
                continue
            found[(day.isoformat(), team_id, "")] = {
                "day": day.isoformat(),
                "team": team_label(team_id),
                "team_id": team_id,
                "feature": None,
                "spent": money(value),
                "baseline": money(median),
                "z": "inf" if z == float("inf") else f"{z:.2f}",
                "alert_id": None,
                "alert_url": None,
            }
    alerts = org_alert_list(user, org).filter(
        kind=AlertKind.ANOMALY,
        window_start__gte=local_midnight(rng.start, tz),
        window_start__lt=local_midnight(rng.end + DAY, tz),
    )
    for alert in alerts:
        day = alert.window_start.astimezone(tz).date().isoformat()
        key = (day, alert.team_id or 0, alert.feature)
        entry = found.setdefault(
            key,
            {
                "day": day,
                "team": team_label(alert.team_id or 0),
                "team_id": alert.team_id,
                "feature": alert.feature or None,
                "spent": money(alert.spent_usd),
                "baseline": money(alert.baseline_usd),
                "z": str((alert.details or {}).get("z", "")),
            },
        )
        entry["alert_id"] = alert.pk
        entry["alert_url"] = reverse("reports:alert-detail", args=[alert.pk])
    return sorted(found.values(), key=lambda a: (a["day"], a["team"]), reverse=True)


# --- team page -----------------------------------------------------------------------------------

# the Dimension values a team page breaks down by
DIMENSIONS = ("feature", "endpoint", "model", "key")


def team_page(user, team: Team, rng: DateRange, *, now: datetime) -> dict:
    """Everything the team page shows, scoped to ``user`` (empty for someone else's team)."""
    with _tuned():
        return _team_page(user, team, rng, now=now)


def _team_page(user, team: Team, rng: DateRange, *, now: datetime) -> dict:
    # One read of the team's marginals by day, over the range and every team or feature
    # budget's window and run-rate history; key budgets (a key's spend may sit under another
    # team) read their own.
    budgets = list(team_budget_list(user, team))
    today = rng.today
    own = [b for b in budgets if b.scope in (BudgetScope.TEAM, BudgetScope.FEATURE)]
    windows = [period_days(b.period, today) for b in own]
    history = timedelta(days=HISTORY_DAYS)
    low = min([rng.start, *(min(first, today - history) for first, _ in windows)])
    high = max([rng.end, *(after - DAY for _, after in windows)])
    total = Tally()
    by: dict[str, dict] = {d: defaultdict(Tally) for d in DIMENSIONS}
    per_day: dict[str, dict] = {d: defaultdict(dict) for d in DIMENSIONS}
    day_total: dict[date, Tally] = defaultdict(Tally)
    team_daily: dict[date, Decimal] = {}
    feature_daily: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for r in (
        team_dimension_rows(user, team)
        .filter(day__gte=low, day__lte=high)
        .values("day", "dimension", "value")
        .annotate(**_sums(*COUNTS, *MONEY, *LATENCY))
        .order_by()
    ):
        day, dimension = r["day"], r["dimension"]
        value = int(r["value"]) if dimension == Dimension.KEY else r["value"]
        cost = _dec(r["cost"])
        if dimension == Dimension.TEAM:
            team_daily[day] = cost
        elif dimension == Dimension.FEATURE:
            feature_daily[value][day] = cost
        if not rng.start <= day <= rng.end:
            continue
        if dimension == Dimension.TEAM:
            total.add(r)
            day_total[day].add(r)
            continue
        by[dimension][value].add(r)
        per_day[dimension][value][day] = per_day[dimension][value].get(day, Decimal(0)) + cost
    keys = key_labels(user, [k for k in by["key"] if k])

    def key_label(key_id: int) -> str:
        return keys.get(key_id, f"#{key_id}") if key_id else "(no key)"

    labels = {"feature": _none, "endpoint": _none, "model": _none, "key": key_label}

    days = rng.days()
    over_time = {
        d: _series(per_day[d], days, labels[d], {k: t.cost for k, t in by[d].items()})
        for d in DIMENSIONS
    }
    daily_rows = [
        {"day": d.isoformat(), **(day_total[d] if d in day_total else Tally()).as_json()}
        for d in days
    ]

    # Latency percentiles exact from the ledger's recorded values, over the range only.
    def percentiles(columns: tuple[str, ...] = ()) -> dict:
        return latency_percentiles(
            user, org=team.org, first=rng.start, last=rng.end, columns=columns, team_ids=[team.pk]
        )

    by_model = percentiles(("model",))
    models = [
        {**row, **by["model"][model].latency_json(by_model.get((model,), (None, None)))}
        for model, row in _ranked_pairs(by["model"], _none, total.cost)
    ]

    def burn(budget: Budget) -> dict:
        if budget.scope == BudgetScope.TEAM:
            return budget_burn(budget, now=now, daily=team_daily)
        if budget.scope == BudgetScope.FEATURE:
            return budget_burn(budget, now=now, daily=feature_daily[budget.feature.slug])
        return budget_burn(budget, now=now)

    return {
        "page": "team",
        "org": {"id": team.org_id, "slug": team.org.slug, "timezone": team.org.timezone},
        "team": {"id": team.pk, "slug": team.slug, "name": team.name},
        "range": rng.as_json(),
        "totals": {**total.as_json(), **total.latency_json(percentiles().get((), (None, None)))},
        "budgets": [burn(b) for b in budgets],
        "breakdown": {d: _ranked(by[d], labels[d], total.cost) for d in DIMENSIONS},
        "models": models,
        "over_time": {"days": [d.isoformat() for d in days], **over_time},
        "daily": daily_rows,
        "savings": Savings.of(
            team_dimension_rows(user, team)
            .filter(dimension=Dimension.TEAM, day__gte=rng.start, day__lte=rng.end)
            .aggregate(**savings_sums())
        ).as_json(),
        "alerts": [
            {
                "id": a.pk,
                "created_at": a.created_at.isoformat(),
                "kind": a.kind,
                "kind_label": a.get_kind_display(),
                "scope": a.scope_label,
                "subject": a.subject,
                "status": a.status,
                "spent": money(a.spent_usd),
                "url": reverse("reports:alert-detail", args=[a.pk]),
            }
            for a in team_alert_list(user, team)[:10]
        ],
    }
