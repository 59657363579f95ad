"""Spend figures the alert job, the dashboards and ``/metrics`` share: a budget's spend in its
current window, the weekday / weekend run rates of a scope and the forecast built on them, and the
robust z-score of the anomaly test.

Reads only the day rollups, through ``reports.selectors.budget_rows`` (not user-scoped: callers
pass budgets they may read, or are system jobs). Nothing here records anything; the alert
evaluation (``reports.services.alerts``) records what these figures cross.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from reports.models import DailySpend
from reports.periods import DAY, local_date, local_midnight, org_zone, period_days
from reports.selectors import budget_rows
from teams.models import Budget

HUNDRED = Decimal(100)
CENT = Decimal("0.01")
HISTORY_DAYS = 28  # the run rates look back this many complete days
# The dashboards' linear fallback (under a week of history) needs this many complete days with
# spend; fewer, and the page says "not enough history" instead of drawing a band of zero width.
MIN_FORECAST_DAYS = 3
NOT_ENOUGH_HISTORY = "not enough history"


# --- budget spend --------------------------------------------------------------------------------


@dataclass
class BudgetSpend:
    budget: Budget
    window_start: datetime
    window_end: datetime
    first_day: date
    after_day: date
    today: date
    spent: Decimal

    @property
    def limit(self) -> Decimal:
        return Decimal(self.budget.limit_usd)

    @property
    def percent(self) -> Decimal:
        if self.limit <= 0:
            return Decimal(0)
        return (self.spent * HUNDRED / self.limit).quantize(CENT)


def budget_spent(budget: Budget, *, at: datetime | None = None) -> BudgetSpend:
    """Spend of the budget's current window (calendar-aligned in the org's timezone)."""
    at = at or timezone.now()
    tz = org_zone(budget.org)
    today = local_date(at, tz)
    first, after = period_days(budget.period, today)
    spent = budget_rows(budget).filter(day__gte=first, day__lt=after).aggregate(s=Sum("cost"))[
        "s"
    ] or Decimal(0)
    return BudgetSpend(
        budget=budget,
        window_start=local_midnight(first, tz),
        window_end=local_midnight(after, tz),
        first_day=first,
        after_day=after,
        today=today,
        spent=Decimal(spent),
    )


# --- forecast ------------------------------------------------------------------------------------


@dataclass
class Forecast:
    projected: Decimal
    exhausts_on: date | None
    weekday_rate: Decimal
    weekend_rate: Decimal
    method: str


def _daily_costs(rows: QuerySet[DailySpend], first: date, after: date) -> dict[date, Decimal]:
    return {
        r["day"]: Decimal(r["total"] or 0)
        for r in rows.filter(day__gte=first, day__lt=after)
        .values("day")
        .annotate(total=Sum("cost"))
    }


def run_rates(daily: dict[date, Decimal], today: date):
    """Weekday and weekend run rates over the trailing ``HISTORY_DAYS`` complete days, counted
    from the scope's first day of spend in them: (days, weekday rate, weekend rate), or None
    under 7 days. The alerts' forecast and the dashboards' burn-down both use it."""
    history = {d: c for d, c in daily.items() if today - timedelta(days=HISTORY_DAYS) <= d < today}
    active = sorted(d for d, c in history.items() if c > 0)
    if not active or (today - active[0]).days < 7:
        return None
    days = [active[0] + timedelta(days=i) for i in range((today - active[0]).days)]
    weekdays = [history.get(d, Decimal(0)) for d in days if d.weekday() < 5]
    weekends = [history.get(d, Decimal(0)) for d in days if d.weekday() >= 5]
    weekday_rate = sum(weekdays, Decimal(0)) / len(weekdays) if weekdays else Decimal(0)
    weekend_rate = sum(weekends, Decimal(0)) / len(weekends) if weekends else weekday_rate
    if not weekdays:
        weekday_rate = weekend_rate
    return days, weekday_rate, weekend_rate


def budget_forecast(budget: Budget, spend: BudgetSpend, *, now: datetime) -> Forecast | None:
    """Projected spend at the end of the window: what is spent, plus the rest of today and each
    remaining day at the scope's run rate for that kind of day (weekday or weekend), from the
    trailing 28 complete days (counted from the scope's first day of spend; none under 7)."""
    tz = org_zone(budget.org)
    today = spend.today
    history = _daily_costs(budget_rows(budget), today - timedelta(days=HISTORY_DAYS), today)
    rates = run_rates(history, today)
    if rates is None:
        return None  # under a week of history: a projection would be noise
    days, weekday_rate, weekend_rate = rates
    method = f"weekday and weekend run rates over the last {len(days)} days"

    def rate(day: date) -> Decimal:
        return weekend_rate if day.weekday() >= 5 else weekday_rate

    day_end = local_midnight(today + DAY, tz)
    day_length = (day_end - local_midnight(today, tz)).total_seconds()
    rest_of_today = Decimal(max(0.0, (day_end - now).total_seconds()) / day_length)
    remaining = spend.limit - spend.spent
    projected = spend.spent
    exhausts_on = None
    steps = [(today, rate(today) * rest_of_today)]
    day = today + DAY
    while day < spend.after_day:
        steps.append((day, rate(day)))
        day += DAY
    for day, amount in steps:
        projected += amount
        remaining -= amount
        if exhausts_on is None and remaining < 0:
            exhausts_on = day
    return Forecast(
        projected=projected,
        exhausts_on=exhausts_on,
        weekday_rate=weekday_rate,
        weekend_rate=weekend_rate,
        method=method,
    )


# --- anomalies -----------------------------------------------------------------------------------


def robust_z(value: Decimal, history: list[Decimal]) -> tuple[float, Decimal]:
    """(robust z-score, median): 0.6745 (x - median) / MAD; infinite when the MAD is zero and
    the value is above the median."""
    median = Decimal(statistics.median(history))
    mad = Decimal(statistics.median([abs(h - median) for h in history]))
    if mad == 0:
        return (math.inf if value > median else 0.0), median
    return float(Decimal("0.6745") * (value - median) / mad), median
