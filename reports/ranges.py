"""The date range of a dashboard: presets or custom local days, in the organisation's timezone.

``?range=7d|30d|mtd|last_month|qtd`` or ``?start=YYYY-MM-DD&end=YYYY-MM-DD`` (``range=custom``
implied); days are inclusive local days of the organisation, like the spend API's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from reports.periods import DAY, local_date, period_first_day

PRESETS: dict[str, str] = {
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "mtd": "Month to date",
    "last_month": "Last month",
    "qtd": "Quarter to date",
}
DEFAULT_PRESET = "mtd"
MAX_DAYS = 400  # the spend API's limit


class RangeError(ValueError):
    pass


@dataclass(frozen=True)
class DateRange:
    preset: str  # one of PRESETS, or "custom"
    start: date
    end: date  # inclusive
    today: date  # the org's local today when the range was computed

    @property
    def label(self) -> str:
        return PRESETS.get(self.preset, "Custom")

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def as_json(self) -> dict:
        return {
            "preset": self.preset,
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "today": self.today.isoformat(),
        }

    def params(self) -> dict[str, str]:
        """Query parameters that select this range again."""
        if self.preset == "custom":
            return {"start": self.start.isoformat(), "end": self.end.isoformat()}
        return {"range": self.preset}


def date_range_from_params(params: Mapping[str, str], *, tz: tzinfo, now: datetime) -> DateRange:
    """The range a request asks for (default: month to date); ``RangeError`` when malformed."""
    today = local_date(now, tz)
    preset = params.get("range") or (
        "custom" if params.get("start") or params.get("end") else DEFAULT_PRESET
    )
    if preset == "custom":
        try:
            start = date.fromisoformat(params.get("start") or "")
            end = date.fromisoformat(params.get("end") or today.isoformat())
        except ValueError as exc:
            raise RangeError("start and end are local days: YYYY-MM-DD") from exc
        if start > end:
            raise RangeError("start must not be after end")
        if (end - start).days >= MAX_DAYS:
            raise RangeError(f"at most {MAX_DAYS} days")
        return DateRange("custom", start, end, today)
    if preset == "7d":
        return DateRange(preset, today - timedelta(days=6), today, today)
    if preset == "30d":
        return DateRange(preset, today - timedelta(days=29), today, today)
    if preset == "mtd":
        return DateRange(preset, period_first_day("month", today), today, today)
    if preset == "qtd":
        return DateRange(preset, period_first_day("quarter", today), today, today)
    if preset == "last_month":
        end = period_first_day("month", today) - DAY
        return DateRange(preset, end.replace(day=1), end, today)
    raise RangeError(f"unknown range {preset!r}: one of {', '.join(PRESETS)} or start/end")
