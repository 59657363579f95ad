"""Ledger -> spend rollups, incremental and idempotent.

One run:

1. claims the watermark row (``RollupState``; ``FOR UPDATE`` on PostgreSQL, SKIP LOCKED for the
   periodic task so a second worker simply skips; SQLite serialises writers anyway);
2. takes the ledger rows past the watermark in insertion order (``id``), up to the newest row
   inserted at least the safety lag ago (periodic task) or the newest committed row (by hand);
3. finds the buckets those rows fall in (UTC hours; the org's local days) and recomputes each
   affected bucket *whole* from the ledger: delete its rows, insert the ledger's ``GROUP BY``;
4. rebuilds the per-dimension marginals of the recomputed days (``DailyDimensionSpend``, what the
   dashboards read) from the new day rows, in the same transaction as those;
5. moves the watermark, in the same transaction (a large run on PostgreSQL recomputes its
   bucket runs on parallel connections, each run atomic, and moves the watermark after all).

Because a bucket is always rebuilt from every ledger row in it, late events (old ``started_at``,
new ``id``), spool replays and a run repeated by a second worker can never count anything twice.

The SQL of one bucket run (steps 3 and 4) is ``reports.services.rollup_sql``; the reconciliation
of the rollups with the ledger (``spend_reconcile``) is at the end of this module.
"""

from __future__ import annotations

import logging
import time
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from gateway.models import UsageEvent
from gateway.savings import LEVERS
from reports.models import DailySpend, HourlySpend, RollupState
from reports.periods import DAY, HOUR, floor_hour, local_date, local_midnight
from reports.services.rollup_sql import (
    _as_utc,
    _dt,
    _hour_expr,
    _q,
    _recompute_days,
    _recompute_hours,
)
from teams.models import Organization

log = logging.getLogger(__name__)

STATE_NAME = "spend"
HOURS_PER_STATEMENT = 24 * 7  # bounds one INSERT … SELECT (and gives the progress bar steps)
DAYS_PER_STATEMENT = 7


@dataclass
class RollupResult:
    events: int = 0
    hours: int = 0
    days: int = 0
    watermark: int = 0
    busy: bool = False
    seconds: float = 0.0
    orgs: set[int] = field(default_factory=set)

    def __str__(self) -> str:
        if self.busy:
            return "busy: another rollup holds the watermark"
        return (
            f"{self.events} new events, {self.hours} hour and {self.days} day buckets "
            f"recomputed, watermark {self.watermark}, {self.seconds:.2f} s"
        )


# --- planning ------------------------------------------------------------------------------------


def _org_zones(org_ids: Iterable[int]) -> dict[int, zoneinfo.ZoneInfo]:
    zones = {org_id: zoneinfo.ZoneInfo("UTC") for org_id in org_ids}
    for org_id, name in Organization.objects.filter(id__in=list(zones)).values_list(
        "id", "timezone"
    ):
        try:
            zones[org_id] = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            log.warning(
                "org %s has an unknown timezone %r; rolling up its days in UTC", org_id, name
            )
    return zones


def _hour_runs(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive hours merged into ``[start, end)`` runs of at most HOURS_PER_STATEMENT."""
    runs: list[tuple[datetime, datetime]] = []
    start = prev = None
    length = 0
    for hour in sorted(set(hours)):
        if prev is not None and hour == prev + HOUR and length < HOURS_PER_STATEMENT:
            prev, length = hour, length + 1
            continue
        if start is not None:
            runs.append((start, prev + HOUR))
        start = prev = hour
        length = 1
    if start is not None:
        runs.append((start, prev + HOUR))
    return runs


def _day_runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days merged into ``[first, after)`` runs of at most DAYS_PER_STATEMENT."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] == day and (day - runs[-1][0]).days < DAYS_PER_STATEMENT:
            runs[-1] = (runs[-1][0], day + DAY)
        else:
            runs.append((day, day + DAY))
    return runs


def _days_of_hours(hours: Iterable[datetime], tz) -> set[date]:
    """Local days touched by UTC hours (an hour can straddle local midnight in +05:30)."""
    days: set[date] = set()
    for hour in hours:
        days.add(local_date(hour, tz))
        days.add(local_date(hour + HOUR - timedelta(microseconds=1), tz))
    return days


def _new_rows_plan(cursor, *, after: int, upto: int) -> tuple[int, dict[int, set[datetime]]]:
    """(row count, org -> UTC hours) of the ledger rows ``after < id <= upto``."""
    ledger = _q(UsageEvent._meta.db_table)
    hour = _hour_expr()
    cursor.execute(
        f"SELECT org_id, {hour}, COUNT(*) FROM {ledger} "  # noqa: S608
        f"WHERE id > %s AND id <= %s GROUP BY org_id, {hour}",
        [after, upto],
    )
    hours: dict[int, set[datetime]] = defaultdict(set)
    count = 0
    for org_id, bucket, n in cursor.fetchall():
        hours[org_id].add(_as_utc(bucket))
        count += n
    return count, hours


def _since_plan(cursor, since: date) -> tuple[dict[int, set[datetime]], int]:
    """Every hour from ``since`` (local midnight of each org) to its newest ledger row, and how
    many ledger rows that covers."""
    ledger = _q(UsageEvent._meta.db_table)
    earliest = datetime.combine(since, datetime.min.time(), tzinfo=UTC) - timedelta(hours=15)
    cursor.execute(
        f"SELECT org_id, MAX(started_at), COUNT(*) FROM {ledger} "  # noqa: S608
        "WHERE started_at >= %s GROUP BY org_id",
        [_dt(earliest)],
    )
    found = cursor.fetchall()
    newest = {org_id: _as_utc(value) for org_id, value, _n in found}
    zones = _org_zones(newest)
    plan: dict[int, set[datetime]] = {}
    for org_id, last in newest.items():
        first = floor_hour(local_midnight(since, zones[org_id]))
        if last < first:
            continue
        hours, hour = set(), first
        while hour <= last:
            hours.add(hour)
            hour += HOUR
        plan[org_id] = hours
    return plan, sum(n for _org, _last, n in found)


# --- the service ---------------------------------------------------------------------------------


def _claim(*, wait: bool) -> RollupState | None:
    RollupState.objects.get_or_create(name=STATE_NAME)
    return (
        RollupState.objects.select_for_update(skip_locked=not wait).filter(name=STATE_NAME).first()
    )


def _tune(cursor) -> None:
    if connection.vendor == "postgresql":
        # a large rollup's hash aggregates stay in memory (this transaction only); JIT costs
        # more to compile these forty aggregates than it saves
        work_mem = getattr(settings, "FINOPS_ROLLUP_WORK_MEM", "256MB")
        cursor.execute(
            "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)", [work_mem]
        )


def _execute(cursor, item: tuple) -> None:
    if item[0] == "hours":
        _, org_id, (start, end), _tz = item
        _recompute_hours(cursor, org_id=org_id, start=start, end=end)
    else:
        _, org_id, (first, after), tz = item
        _recompute_days(cursor, org_id=org_id, first=first, after=after, tz=tz)


def _execute_parallel(work: list[tuple], *, workers: int, bar) -> None:
    """Recompute bucket runs on ``workers`` connections of their own, each run in its own
    transaction (a run's delete and insert stay atomic; the watermark moves only after all)."""

    def run(item: tuple) -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                _tune(cursor)
                _execute(cursor, item)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rollup") as pool:
        for future in as_completed([pool.submit(run, item) for item in work]):
            future.result()
            bar.update(1)


def _plan_work(plan: dict[int, set[datetime]], result: RollupResult) -> list[tuple]:
    """Hour runs and day runs, interleaved so that parallel workers share the load."""
    zones = _org_zones(plan)
    hour_work: list[tuple] = []
    day_work: list[tuple] = []
    for org_id, hours in sorted(plan.items()):
        tz = zones[org_id]
        days = _days_of_hours(hours, tz)
        hour_work += [("hours", org_id, run, tz) for run in _hour_runs(hours)]
        day_work += [("days", org_id, run, tz) for run in _day_runs(days)]
        result.hours += len(hours)
        result.days += len(days)
    result.orgs = set(plan)
    work = []
    for i in range(max(len(hour_work), len(day_work))):
        work += hour_work[i : i + 1] + day_work[i : i + 1]
    return work


def usage_rollup(
    *, periodic: bool = False, since: date | None = None, progress: bool = False
) -> RollupResult:
    """Roll the ledger up past the watermark; with ``since``, also rebuild every bucket from that
    local date on (a backfill, or a repair after an org's timezone changed).

    ``periodic`` (the beat task): leaves rows inserted less than
    ``FINOPS_ROLLUP_SAFETY_LAG_SECONDS`` ago for the next run (an id allocated by a transaction
    that has not committed yet must not be skipped), and skips the run if another worker holds
    the watermark. By hand, every committed row is included, waiting for a running rollup.

    Large runs on PostgreSQL (``FINOPS_ROLLUP_PARALLEL_MIN_ROWS`` ledger rows or more, outside
    any caller's transaction) recompute their bucket runs on ``FINOPS_ROLLUP_WORKERS``
    connections at once, while this one holds the watermark.
    """
    began = time.monotonic()
    result = RollupResult()
    nested = connection.in_atomic_block
    with transaction.atomic():
        state = _claim(wait=not periodic)
        if state is None:
            result.busy = True
            return result
        with connection.cursor() as cursor:
            _tune(cursor)
            ledger = _q(UsageEvent._meta.db_table)
            if periodic:
                lag = float(getattr(settings, "ROLLUP_SAFETY_LAG_SECONDS", 5.0))
                cursor.execute(
                    f"SELECT MAX(id) FROM {ledger} WHERE id > %s AND inserted_at <= %s",  # noqa: S608
                    [state.last_event_id, _dt(timezone.now() - timedelta(seconds=lag))],
                )
            else:
                cursor.execute(f"SELECT MAX(id) FROM {ledger} WHERE id > %s", [state.last_event_id])  # noqa: S608
            upto = cursor.fetchone()[0] or state.last_event_id

            plan: dict[int, set[datetime]] = defaultdict(set)
            rows = 0
            if upto > state.last_event_id:
                result.events, new_hours = _new_rows_plan(
                    cursor, after=state.last_event_id, upto=upto
                )
                rows = result.events
                for org_id, hours in new_hours.items():
                    plan[org_id] |= hours
            if since is not None:
                since_plan, rows_since = _since_plan(cursor, since)
                rows = max(rows, rows_since)
                for org_id, hours in since_plan.items():
                    plan[org_id] |= hours
            work = _plan_work(plan, result)

            workers = int(getattr(settings, "FINOPS_ROLLUP_WORKERS", 2))
            parallel = (
                connection.vendor == "postgresql"
                and not nested
                and workers > 1
                and len(work) > 1
                and rows >= int(getattr(settings, "FINOPS_ROLLUP_PARALLEL_MIN_ROWS", 200_000))
            )
            with tqdm(total=len(work), disable=not progress, unit="run", desc="rollup") as bar:
                if parallel:
                    _execute_parallel(work, workers=workers, bar=bar)
                else:
                    for item in work:
                        _execute(cursor, item)
                        bar.update(1)

        result.watermark = upto
        result.seconds = time.monotonic() - began
        RollupState.objects.filter(pk=state.pk).update(
            last_event_id=upto,
            last_run_at=timezone.now(),
            last_events=result.events,
            last_duration_ms=int(result.seconds * 1000),
        )
    if result.events or since:
        log.info("rollup: %s", result)
    return result


# --- reconciliation ------------------------------------------------------------------------------


@dataclass
class Reconciliation:
    """One org's ledger totals next to its rollups' over the same instants: the local days
    ``start..end`` for the day rollups, and the UTC hours covering them for the hour rollups."""

    org_id: int
    ledger_days: dict[str, Decimal]
    daily: dict[str, Decimal]
    ledger_hours: dict[str, Decimal]
    hourly: dict[str, Decimal]

    @property
    def ok(self) -> bool:
        return self.ledger_days == self.daily and self.ledger_hours == self.hourly


_COUNTS = ("attempts", "prompt_tokens", "completion_tokens")


def _ledger_measures() -> dict:
    """What reconciliation compares, as aggregates of the ledger: production cost, evaluation
    cost and the judge's part of it, attempts, tokens, and per saving lever what it saved and
    the spend of its rows (``saved``: every production row's ``saved_usd``)."""
    from django.db.models import Count, Q, Sum

    prod = Q(shadow=False)
    measures = {
        "cost": Sum("cost", filter=prod),
        "eval_cost": Sum("cost", filter=Q(shadow=True)),
        "judge_cost": Sum("cost", filter=Q(shadow=True, router_decision="judge")),
        # a correction row (attempt 0) is money, not an attempt
        "attempts": Count("id", filter=prod & Q(attempt__gt=0)),
        "prompt_tokens": Sum("prompt_tokens", filter=prod),
        "completion_tokens": Sum("completion_tokens", filter=prod),
        "saved": Sum("saved_usd", filter=prod),
    }
    for lever in LEVERS:
        measures[f"saved_{lever}"] = Sum("saved_usd", filter=prod & Q(saving_lever=lever))
        measures[f"spend_{lever}"] = Sum("cost", filter=prod & Q(saving_lever=lever))
    return measures


def _ledger_totals(org_id: int, lo: datetime, hi: datetime) -> dict[str, Decimal]:
    totals = UsageEvent.objects.filter(
        org_id=org_id, started_at__gte=lo, started_at__lt=hi
    ).aggregate(**{f"total_{name}": agg for name, agg in _ledger_measures().items()})
    return _normalised({name.removeprefix("total_"): value for name, value in totals.items()})


def _rollup_totals(queryset) -> dict[str, Decimal]:
    from django.db.models import Sum

    names = [name for name in _ledger_measures() if name != "saved"]
    totals = queryset.aggregate(**{name: Sum(name) for name in names})
    totals["saved"] = sum((Decimal(totals[f"saved_{lever}"] or 0) for lever in LEVERS), Decimal(0))
    return _normalised(totals)


def spend_reconcile(*, start: date, end: date) -> list[Reconciliation]:
    """Compare, per org, the rollups with the ledger for the local days ``start..end``
    (inclusive). Money must match exactly on PostgreSQL (to a billionth on SQLite, which keeps
    decimals as doubles)."""
    wide_lo = datetime.combine(start, datetime.min.time(), tzinfo=UTC) - timedelta(hours=15)
    wide_hi = datetime.combine(end + DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=15)
    org_ids = set(
        UsageEvent.objects.filter(started_at__gte=wide_lo, started_at__lt=wide_hi)
        .values_list("org_id", flat=True)
        .distinct()
    ) | set(
        DailySpend.objects.filter(day__gte=start, day__lte=end)
        .values_list("org_id", flat=True)
        .distinct()
    )
    zones = _org_zones(org_ids)
    out = []
    for org_id in sorted(org_ids):
        tz = zones[org_id]
        lo, hi = local_midnight(start, tz), local_midnight(end + DAY, tz)
        hour_lo, hour_hi = floor_hour(lo), floor_hour(hi - timedelta(microseconds=1)) + HOUR
        out.append(
            Reconciliation(
                org_id=org_id,
                ledger_days=_ledger_totals(org_id, lo, hi),
                daily=_rollup_totals(
                    DailySpend.objects.filter(org_id=org_id, day__gte=start, day__lte=end)
                ),
                ledger_hours=_ledger_totals(org_id, hour_lo, hour_hi),
                hourly=_rollup_totals(
                    HourlySpend.objects.filter(org_id=org_id, hour__gte=hour_lo, hour__lt=hour_hi)
                ),
            )
        )
    return out


def _normalised(values: dict) -> dict[str, Decimal]:
    exact = connection.vendor == "postgresql"
    out = {}
    for name, value in values.items():
        value = Decimal(value or 0)
        if not exact and name not in _COUNTS:
            value = value.quantize(Decimal("1e-9"))
        out[name] = value
    return out
