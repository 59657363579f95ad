"""Calendar arithmetic in an organisation's timezone: local days and budget windows.

Budget windows are calendar-aligned in the org's timezone (day, ISO week from Monday, month,
quarter) and half-open: ``start <= t < end``. A call belongs to the window of its start time.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, tzinfo

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def org_zone(org) -> zoneinfo.ZoneInfo:
    """An organisation's timezone; UTC when its name is not a known zone."""
    try:
        return zoneinfo.ZoneInfo(org.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The instant (UTC) a local day starts."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def local_day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    return local_midnight(day, tz), local_midnight(day + DAY, tz)


def local_date(instant: datetime, tz: tzinfo) -> date:
    return instant.astimezone(tz).date()


def floor_hour(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def period_first_day(period: str, day: date) -> date:
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)
    raise ValueError(f"unknown budget period {period!r}")


def period_next_first_day(period: str, first: date) -> date:
    if period == "day":
        return first + DAY
    if period == "week":
        return first + timedelta(days=7)
    months = 1 if period == "month" else 3
    month = first.month - 1 + months
    return date(first.year + month // 12, month % 12 + 1, 1)


def period_days(period: str, day: date) -> tuple[date, date]:
    """The local days of the window containing ``day``: (first, first day of the next window)."""
    first = period_first_day(period, day)
    return first, period_next_first_day(period, first)


def budget_window(period: str, tz: tzinfo | str, at: datetime) -> tuple[datetime, datetime]:
    """The window of ``period`` containing the instant ``at``, as UTC instants."""
    if isinstance(tz, str):
        tz = zoneinfo.ZoneInfo(tz)
    first, after = period_days(period, local_date(at, tz))
    return local_midnight(first, tz), local_midnight(after, tz)
