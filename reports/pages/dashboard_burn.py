"""A budget's burn: its window day by day, the forecast to the window's end and a band around it.

The projection is the alerting job's method (``reports.forecast.budget_forecast``: the rest of
today and every remaining day at the scope's weekday / weekend run rate over the trailing 28
days), so a dashboard and a forecast email never disagree (a test holds them equal). It is
computed here from one day-by-day read of the scope, which the overview shares with its other
charts, instead of ``budget_forecast``'s own queries: the page has a 300 ms budget. Under a week
of history that method declines; the dashboard then falls back to a linear run rate over the
window's complete days, if there are at least ``MIN_FORECAST_DAYS`` of them and some spend in
them; else there is no forecast, and ``forecast_note`` says "not enough history" (a band from one
or two days, or from days of nothing, would have no width and mean nothing).

``budget_lines``: the org budgets drawn on the month's chart; one of another period is prorated
to the month by days (a quarterly $5,000 is $5,000 × 31 / 92 in a 31-day month of a 92-day
quarter), and labelled so.

The band: the days of history scatter around their run rate with a standard deviation ``s``
(residuals in Decimal); if days were independent, the spend of the next ``h`` days scatters by
``s * sqrt(h)``, so the band is the projection ± 1.645 · s · sqrt(h) (about 90%), never below
what is already spent. It is a guide to how noisy the history was, not a guarantee.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

from finops.money import money, usd_display
from reports.forecast import (
    HISTORY_DAYS,
    MIN_FORECAST_DAYS,
    NOT_ENOUGH_HISTORY,
    BudgetSpend,
    run_rates,
)
from reports.periods import DAY, local_date, local_midnight, org_zone, period_days
from reports.selectors import budget_dimension_rows
from teams.models import Budget, BudgetPeriod

BAND_Z = Decimal("1.645")


def _x(instant: datetime, tz) -> str:
    """An instant as the org's local wall time, which is what the chart's axis shows."""
    return instant.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def _day_costs(budget: Budget, first: date, after: date) -> dict[date, Decimal]:
    return {
        r["day"]: Decimal(str(r["total"] or 0))
        for r in budget_dimension_rows(budget)
        .filter(day__gte=first, day__lt=after)
        .values("day")
        .annotate(total=Sum("cost"))
        .order_by()
    }


def _sigma(residuals: list[Decimal]) -> Decimal:
    if len(residuals) < 2:
        return Decimal(0)
    return (sum((r * r for r in residuals), Decimal(0)) / (len(residuals) - 1)).sqrt()


def budget_burn(budget: Budget, *, now: datetime, daily: dict[date, Decimal] | None = None) -> dict:
    """The budget's current window (calendar-aligned in the org's timezone) as JSON-ready data:
    spent, limit, the cumulative spend so far (``actual``) and the projection with its band
    (``projection``; ``forecast`` is None, and ``forecast_note`` says why, when there is not
    enough history to project from).

    ``daily``: the budget scope's cost per local day, at least from the window's first day (or
    28 days back, if earlier) to its end; read from the day marginals
    (``budget_dimension_rows``, the same sums as ``budget_rows``) when not given.
    Callers pass budgets from the user's scoped budget list.
    """
    tz = org_zone(budget.org)
    today = local_date(now, tz)
    first, after = period_days(budget.period, today)
    if daily is None:
        daily = _day_costs(budget, min(first, today - timedelta(days=HISTORY_DAYS)), after)
    spend = BudgetSpend(
        budget=budget,
        window_start=local_midnight(first, tz),
        window_end=local_midnight(after, tz),
        first_day=first,
        after_day=after,
        today=today,
        spent=sum((c for d, c in daily.items() if first <= d < after), Decimal(0)),
    )

    actual_x = [_x(spend.window_start, tz)]
    actual_y = [Decimal(0)]
    running = Decimal(0)
    day = first
    while day < today:
        running += daily.get(day, Decimal(0))
        actual_x.append(_x(local_midnight(day + DAY, tz), tz))
        actual_y.append(running)
        day += DAY
    actual_x.append(_x(now, tz))
    actual_y.append(spend.spent)

    rate: Callable[[date], Decimal]
    rates = run_rates(daily, today)
    if rates is not None:
        days, weekday, weekend = rates

        def rate(d: date) -> Decimal:
            return weekend if d.weekday() >= 5 else weekday

        method = f"weekday and weekend run rates over the last {len(days)} days"
    else:
        days = [first + timedelta(days=i) for i in range((today - first).days)]
        if len(days) < MIN_FORECAST_DAYS or not any(daily.get(d) for d in days):
            result = _burn_json(budget, spend, actual_x, actual_y, forecast=None, tz=tz)
            result["forecast_note"] = _not_enough(days)
            return result
        flat = sum((daily.get(d, Decimal(0)) for d in days), Decimal(0)) / len(days)

        def rate(d: date) -> Decimal:
            return flat

        method = f"linear run rate over the window's {len(days)} complete days"
    sigma = _sigma([daily.get(d, Decimal(0)) - rate(d) for d in days])

    # The steps of budget_forecast: the rest of today, then each remaining day of the window.
    day_end = local_midnight(today + DAY, tz)
    day_length = Decimal((day_end - local_midnight(today, tz)).total_seconds())
    rest = Decimal(max(0.0, (day_end - now).total_seconds())) / day_length
    steps = [(today, rate(today) * rest, rest)]
    day = today + DAY
    while day < after:
        steps.append((day, rate(day), Decimal(1)))
        day += DAY
    projection = {"x": [_x(now, tz)], "y": [spend.spent], "low": [spend.spent]}
    projection["high"] = [spend.spent]
    projected, horizon, exhausts_on = spend.spent, Decimal(0), None
    remaining = spend.limit - spend.spent
    for day, amount, length in steps:
        projected += amount
        remaining -= amount
        horizon += length
        half = BAND_Z * sigma * horizon.sqrt()
        projection["x"].append(_x(local_midnight(day + DAY, tz), tz))
        projection["y"].append(projected)
        projection["low"].append(max(spend.spent, projected - half))
        projection["high"].append(projected + half)
        if exhausts_on is None and remaining < 0:
            exhausts_on = day
    summary = {
        "projected": money(projected),
        "low": money(projection["low"][-1]),
        "high": money(projection["high"][-1]),
        "exhausts_on": exhausts_on.isoformat() if exhausts_on and spend.limit > 0 else None,
        "method": method,
        "band": "90%",
        "daily_sigma": money(sigma),
    }
    result = _burn_json(budget, spend, actual_x, actual_y, forecast=summary, tz=tz)
    result["projection"] = {
        "x": projection["x"],
        **{k: [money(v) for v in projection[k]] for k in ("y", "low", "high")},
    }
    return result


def _burn_json(budget: Budget, spend, actual_x, actual_y, *, forecast: dict | None, tz) -> dict:
    limit = spend.limit
    return {
        "id": budget.pk,
        "label": budget.scope_label,
        "scope": budget.scope,
        "period": budget.period,
        "action": budget.action,
        "window": {
            "start": spend.first_day.isoformat(),
            "end": (spend.after_day - DAY).isoformat(),
            "start_x": _x(spend.window_start, tz),
            "end_x": _x(spend.window_end, tz),
        },
        "limit": money(limit),
        "spent": money(spend.spent),
        "remaining": money(limit - spend.spent),
        "percent": str(spend.percent) if limit > 0 else None,
        "forecast": forecast,
        "forecast_note": None,
        "actual": {"x": actual_x, "y": [money(v) for v in actual_y]},
        "projection": None,
    }


def _not_enough(days: list[date]) -> str:
    n = len(days)
    if n < MIN_FORECAST_DAYS:
        have = f"{n} complete day{'s' if n != 1 else ''}"
        return f"{NOT_ENOUGH_HISTORY} ({have} in this window; a forecast needs {MIN_FORECAST_DAYS})"
    return f"{NOT_ENOUGH_HISTORY} (no spend in the window's {n} complete days)"


_PERIOD_NAME = {
    BudgetPeriod.DAY: "daily",
    BudgetPeriod.WEEK: "weekly",
    BudgetPeriod.MONTH: "monthly",
    BudgetPeriod.QUARTER: "quarterly",
}


def budget_lines(budgets: list[Budget], burns: list[dict], *, month: dict) -> list[dict]:
    """The budgets drawn on the month's chart besides the month's own: each with a limit, over
    the month's window; one of another period prorated to the month by days, and said so."""
    month_days = _window_days(month["window"])
    lines = []
    for budget, burn in zip(budgets, burns, strict=True):
        if burn["id"] == month.get("id") or Decimal(burn["limit"]) <= 0:
            continue
        limit = Decimal(burn["limit"])
        if budget.period == BudgetPeriod.MONTH:
            lines.append(
                {"id": budget.pk, "label": f"{burn['label']} monthly budget", "limit": money(limit),
                 "prorated": False, "note": f"{usd_display(limit)} monthly budget"}
            )  # fmt: skip
            continue
        days = _window_days(burn["window"])
        share = limit * month_days / days
        name = _PERIOD_NAME.get(budget.period, budget.period)
        note = (
            f"{usd_display(share)} prorated from the {name} budget "
            f"({usd_display(limit)} over {days} day{'s' if days != 1 else ''})"
        )
        lines.append(
            {"id": budget.pk, "label": f"{burn['label']}: prorated from the {name} budget",
             "limit": money(share), "prorated": True, "note": note}
        )  # fmt: skip
    return lines


def _window_days(window: dict) -> int:
    first, last = date.fromisoformat(window["start"]), date.fromisoformat(window["end"])
    return (last - first).days + 1
