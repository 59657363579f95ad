"""The monthly chargeback statement of one team: its spend over a calendar month in the
organisation's timezone (from the day rollups), broken down by feature, model, endpoint and key,
its budgets and how much of them the month used, evaluation (shadow) spend apart, and the
savings statement: what each lever saved next to the spend, and what the levers cost.

Every number is read through the user's scoped selectors (``daily_spend_list_for_user``,
``statement_budget_list``); the page and its CSV downloads show the same ``Table`` rows. The
view and the whole-statement CSV are ``reports.pages.statements``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from finops.money import money
from reports.models import DailySpend
from reports.periods import DAY, period_days
from reports.savings import Savings, savings_sums
from reports.selectors import budget_rows, daily_spend_list_for_user, statement_budget_list
from reports.tables import Column, Table
from teams.models import Budget, BudgetPeriod, BudgetScope, Team, VirtualKey

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
HUNDRED = Decimal(100)
CENT = Decimal("0.01")

_BREAKDOWN_COLUMNS = (
    Column("name", "Name"),
    Column("requests", "Requests", numeric=True),
    Column("attempts", "Attempts", numeric=True),
    Column("prompt_tokens", "Prompt tokens", numeric=True),
    Column("completion_tokens", "Completion tokens", numeric=True),
    Column("cost", "Cost (USD)", numeric=True, kind="usd"),
    Column("share", "Share (%)", numeric=True, kind="pct"),
)


def month_parse(value: str) -> date | None:
    """The first day of ``YYYY-MM``, or None when it is not one."""
    match = MONTH_RE.match(value or "")
    return date(int(match[1]), int(match[2]), 1) if match else None


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


@dataclass
class Statement:
    team: Team
    first: date
    after: date
    total_cost: Decimal
    evaluation_cost: Decimal
    tables: list[Table] = field(default_factory=list)
    savings: dict = field(default_factory=dict)  # reports.savings.Savings.as_json()

    @property
    def month(self) -> str:
        return self.first.strftime("%Y-%m")

    @property
    def last(self) -> date:
        return self.after - DAY

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


def _share(cost: Decimal, whole: Decimal) -> str:
    return str((cost * HUNDRED / whole).quantize(CENT)) if whole else "0.00"


def _breakdown(rows: QuerySet[DailySpend], column: str, *, whole: Decimal, labels=None) -> list:
    grouped = (
        rows.values(column)
        .annotate(
            total=Sum("cost"),
            requests=Sum("requests"),
            attempts=Sum("attempts"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
        )
        .filter(Q(total__gt=0) | Q(attempts__gt=0))  # not the evaluation-only rows
        .order_by("-total", column)
    )
    out = []
    for g in grouped:
        value = g[column]
        if labels is not None:
            name = labels.get(value, f"#{value}") if value else "(none)"
        else:
            name = value or "(none)"
        cost = Decimal(g["total"] or 0)
        out.append(
            {
                "name": name,
                "requests": g["requests"] or 0,
                "attempts": g["attempts"] or 0,
                "prompt_tokens": g["prompt"] or 0,
                "completion_tokens": g["completion"] or 0,
                "cost": money(cost),
                "share": _share(cost, whole),
            }
        )
    return out


def _budget_use(budget: Budget, first: date, after: date) -> tuple[str, Decimal]:
    """(window described, spend) a budget used in the month: the month itself for monthly
    budgets, quarter-to-date through the month's end for quarterly ones, the month's busiest
    window (within the month) for daily and weekly ones."""
    rows = budget_rows(budget)
    if budget.period == BudgetPeriod.MONTH:
        spent = rows.filter(day__gte=first, day__lt=after).aggregate(s=Sum("cost"))["s"]
        return f"{first} to {after - DAY}", Decimal(spent or 0)
    if budget.period == BudgetPeriod.QUARTER:
        q_first, _ = period_days(BudgetPeriod.QUARTER, first)
        spent = rows.filter(day__gte=q_first, day__lt=after).aggregate(s=Sum("cost"))["s"]
        return f"{q_first} to {after - DAY} (quarter to date)", Decimal(spent or 0)
    per_window: dict[date, Decimal] = defaultdict(Decimal)
    daily = rows.filter(day__gte=first, day__lt=after).values("day").annotate(s=Sum("cost"))
    for r in daily:
        window_first, _ = period_days(budget.period, r["day"])
        per_window[window_first] += Decimal(r["s"] or 0)
    if not per_window:
        return "busiest " + budget.period, Decimal(0)
    window_first, spent = max(per_window.items(), key=lambda item: (item[1], item[0]))
    length = timedelta(days=7) if budget.period == BudgetPeriod.WEEK else DAY
    window_last = min(window_first + length, after) - DAY
    label = str(window_first) if length == DAY else f"{max(window_first, first)} to {window_last}"
    return f"busiest {budget.period}: {label}", spent


def _budget_scope_label(budget: Budget) -> str:
    if budget.scope == BudgetScope.FEATURE:
        return f"feature {budget.feature.slug}"
    if budget.scope == BudgetScope.KEY:
        return f"key {budget.key.name}"
    return f"team {budget.team.slug}"


def statement_build(user, *, team: Team, first: date) -> Statement:
    """The statement of ``team`` for the month starting ``first`` (local days of its org), as
    seen by ``user`` (who must be able to read the team: the caller checks, the selectors make
    sure)."""
    after = _next_month(first)
    rows = daily_spend_list_for_user(user).filter(
        org_id=team.org_id, team_id=team.pk, day__gte=first, day__lt=after
    )
    totals = rows.aggregate(
        cost=Sum("cost"),
        requests=Sum("requests"),
        attempts=Sum("attempts"),
        failures=Sum("failures"),
        failed_cost=Sum("failed_cost"),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        cached=Sum("cached_tokens"),
        eval_cost=Sum("eval_cost"),
        eval_requests=Sum("eval_requests"),
    )
    whole = Decimal(totals["cost"] or 0)
    eval_cost = Decimal(totals["eval_cost"] or 0)
    month = first.strftime("%Y-%m")

    summary = Table(
        name="summary",
        title="Totals",
        columns=(
            Column("month", "Month"),
            Column("team", "Team"),
            Column("cost", "Production cost (USD)", numeric=True, kind="usd"),
            Column("requests", "Requests", numeric=True),
            Column("attempts", "Attempts", numeric=True),
            Column("failures", "Failed attempts", numeric=True),
            Column("failed_cost", "Of which failed (USD)", numeric=True, kind="usd"),
            Column("prompt_tokens", "Prompt tokens", numeric=True),
            Column("completion_tokens", "Completion tokens", numeric=True),
            Column("cached_tokens", "Cached tokens", numeric=True),
            Column("evaluation_cost", "Evaluation cost (USD)", numeric=True, kind="usd"),
            Column("evaluation_requests", "Evaluation requests", numeric=True),
        ),
        rows=[
            {
                "month": month,
                "team": team.slug,
                "cost": money(whole),
                "requests": totals["requests"] or 0,
                "attempts": totals["attempts"] or 0,
                "failures": totals["failures"] or 0,
                "failed_cost": money(totals["failed_cost"]),
                "prompt_tokens": totals["prompt"] or 0,
                "completion_tokens": totals["completion"] or 0,
                "cached_tokens": totals["cached"] or 0,
                "evaluation_cost": money(eval_cost),
                "evaluation_requests": totals["eval_requests"] or 0,
            }
        ],
    )
    key_ids = set(rows.values_list("key_id", flat=True).distinct())
    key_names = dict(VirtualKey.objects.filter(id__in=key_ids).values_list("id", "name"))
    tables = [summary]
    for name, title, column, labels in (
        ("features", "By feature", "feature", None),
        ("models", "By model", "model", None),
        ("endpoints", "By endpoint", "endpoint", None),
        ("keys", "By key", "key_id", key_names),
    ):
        tables.append(
            Table(
                name=name,
                title=title,
                columns=_BREAKDOWN_COLUMNS,
                rows=_breakdown(rows, column, whole=whole, labels=labels),
            )
        )

    budget_table = Table(
        name="budgets",
        title="Budgets",
        columns=(
            Column("scope", "Scope"),
            Column("period", "Period"),
            Column("action", "Action"),
            Column("window", "Window"),
            Column("limit", "Limit (USD)", numeric=True, kind="usd"),
            Column("spent", "Spent (USD)", numeric=True, kind="usd"),
            Column("used", "Used (%)", numeric=True, kind="pct"),
        ),
    )
    for budget in statement_budget_list(user, team):
        window, spent = _budget_use(budget, first, after)
        limit = Decimal(budget.limit_usd)
        budget_table.rows.append(
            {
                "scope": _budget_scope_label(budget),
                "period": budget.period,
                "action": budget.action,
                "window": window,
                "limit": money(limit),
                "spent": money(spent),
                "used": _share(spent, limit),
            }
        )
    tables.append(budget_table)

    evaluation = Table(
        name="evaluation",
        title="Evaluation (shadow) spend, billed apart",
        columns=(
            Column("feature", "Feature"),
            Column("model", "Model"),
            Column("requests", "Requests", numeric=True),
            Column("attempts", "Attempts", numeric=True),
            Column("cost", "Cost (USD)", numeric=True, kind="usd"),
        ),
        rows=[
            {
                "feature": r["feature"] or "(none)",
                "model": r["model"] or "(none)",
                "requests": r["requests"] or 0,
                "attempts": r["attempts"] or 0,
                "cost": money(r["total"]),
            }
            for r in rows.values("feature", "model")
            .annotate(
                total=Sum("eval_cost"), requests=Sum("eval_requests"), attempts=Sum("eval_attempts")
            )
            .filter(Q(total__gt=0) | Q(attempts__gt=0))
            .order_by("-total", "feature", "model")
        ],
    )
    tables.append(evaluation)
    savings = Savings.of(rows.aggregate(**savings_sums())).as_json()
    tables += _savings_tables(savings)
    return Statement(
        team=team,
        first=first,
        after=after,
        total_cost=whole,
        evaluation_cost=eval_cost,
        tables=tables,
        savings=savings,
    )


def _savings_tables(savings: dict) -> list[Table]:
    """Each lever's saving and method next to the spend of its calls, and what the levers
    cost, at the ledger's precision."""
    levers = Table(
        name="savings",
        title="Savings by lever",
        columns=(
            Column("lever", "Lever"),
            Column("method", "Method"),
            Column("saved", "Saved (USD)", numeric=True, kind="usd"),
            Column("spend", "Spend on its calls (USD)", numeric=True, kind="usd"),
        ),
        rows=[
            {
                "lever": lever["lever"],
                "method": lever["method"],
                "saved": lever["saved"],
                "spend": lever["spend"],
            }
            for lever in savings["levers"]
        ],
    )
    costs = Table(
        name="lever_costs",
        title="What the levers cost (evaluation spend, billed apart)",
        columns=(
            Column("name", "Cost"),
            Column("method", "Method"),
            Column("cost", "Cost (USD)", numeric=True, kind="usd"),
        ),
        rows=[
            {"name": c["name"], "method": c["method"], "cost": c["cost"]}
            for c in savings["lever_costs"]
        ],
    )
    return [levers, costs]
