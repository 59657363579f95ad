"""Tenant-scoped reads of spend and alerts, built on ``teams.selectors.access_for_user``.

Whole-org readers (admin, finance; superusers as admin of every org) read every rollup row and
alert of their organisations; leads and members read the rows of their own teams only (rows
without a team are org-level and belong to whole-org readers). Nobody reads another org. The
``dangerously_*`` readers are unscoped, for jobs and operator commands, never for a request.
"""

from __future__ import annotations

import zoneinfo
from array import array
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncHour

from finops.money import money
from gateway.models import UsageEvent
from reports.models import (
    COST_FIELDS,
    COUNT_FIELDS,
    LATENCY_BOUNDS_MS,
    BudgetAlert,
    DailyDimensionSpend,
    DailySpend,
    HourlySpend,
)
from reports.periods import DAY, local_date, local_midnight
from teams.models import Budget, BudgetScope, Organization, Team, VirtualKey
from teams.selectors import Access, access_for_user

DIMENSIONS = (
    "org",
    "team",
    "feature",
    "endpoint",
    "key",
    "user",
    "model",
    "provider",
    "day",
    "hour",
)
_COLUMN = {
    "org": "org_id",
    "team": "team_id",
    "key": "key_id",
    "feature": "feature",
    "endpoint": "endpoint",
    "user": "end_user",
    "model": "model",
    "provider": "provider",
}


def _whole_org_ids(access: Access) -> list[int]:
    return [o for o in access.org_roles if access.reads_whole_org(o)]


def _spend_filter(access: Access) -> Q:
    return Q(org_id__in=_whole_org_ids(access)) | Q(
        team_id__in=list(access.team_roles), org_id__in=list(access.org_ids)
    )


def daily_spend_list_for_user(user) -> QuerySet[DailySpend]:
    return DailySpend.objects.filter(_spend_filter(access_for_user(user)))


def daily_dimension_spend_list_for_user(user) -> QuerySet[DailyDimensionSpend]:
    """The per-dimension day marginals, scoped exactly as ``daily_spend_list_for_user``."""
    return DailyDimensionSpend.objects.filter(_spend_filter(access_for_user(user)))


def hourly_spend_list_for_user(user) -> QuerySet[HourlySpend]:
    return HourlySpend.objects.filter(_spend_filter(access_for_user(user)))


def budget_alert_list_for_user(user) -> QuerySet[BudgetAlert]:
    """Whole-org readers see every alert of their orgs; leads and members those about their
    teams (team, feature and key budgets, team anomalies, chargeback statements)."""
    access = access_for_user(user)
    return BudgetAlert.objects.filter(
        Q(org_id__in=_whole_org_ids(access)) | Q(team_id__in=list(access.team_roles))
    ).select_related("org", "team", "budget")


def dangerously_all_budget_alerts() -> QuerySet[BudgetAlert]:
    """Unscoped: for the alerting jobs only, never for a user."""
    return BudgetAlert.objects.all()


def dangerously_org_hourly_spend(org: Organization) -> QuerySet[HourlySpend]:
    """Unscoped by user: every hour row of one organisation, for the ``export_focus`` command
    (run by an operator on the server), never for a request."""
    return HourlySpend.objects.filter(org_id=org.pk)


# --- latency -------------------------------------------------------------------------------------


def latency_quantile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a fixed-bucket histogram, interpolated within its bucket;
    beyond the last bound it answers the last bound (a lower bound of the truth).

    A coarse estimate (calls of 1 ms in the 0-50 ms bucket read as a p50 of 25 ms): the pages
    and the spend API take their percentiles from the ledger instead
    (:func:`latency_percentiles`)."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i >= len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            low = LATENCY_BOUNDS_MS[i - 1] if i else 0
            high = LATENCY_BOUNDS_MS[i]
            return low + (high - low) * (rank - seen) / n
        seen += n
    return float(LATENCY_BOUNDS_MS[-1])


# The ledger column of each dimension the exact percentiles group by (ids as the rollups keep
# them: a missing team or key is 0).
_LEDGER_COLUMN = {
    "org_id": "org_id",
    "team_id": "team_id",
    "key_id": "key_id",
    "feature": "feature",
    "endpoint": "endpoint",
    "end_user": "end_user",
    "model": "model",
    "provider": "provider",
}
_IDS = ("org_id", "team_id", "key_id")
Percentiles = tuple[float | None, float | None]


def exact_quantile(values, q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted ``values``, linearly interpolated between the closest
    ranks (PostgreSQL's ``percentile_cont``); None for no value."""
    n = len(values)
    if not n:
        return None
    pos = q * (n - 1)
    low = int(pos)
    high = min(low + 1, n - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def latency_percentiles(
    user,
    *,
    org: Organization,
    first: date,
    last: date,
    columns: Iterable[str] = (),
    team_ids: Iterable[int] | None = None,
) -> dict[tuple, Percentiles]:
    """Exact latency p50 and p95 (ms, one decimal) of the successful production attempts the
    user may read in the org's local days ``first`` to ``last``, from the ledger's recorded
    ``latency_ms`` (the rollups' histogram would only bound them), grouped by rollup
    ``columns`` (``team_id``, ``model``, ..., ``day`` for the local day, ``hour`` for the UTC
    hour). Keys are tuples of those columns' values as the rollups hold them.

    Reads one integer per call of the window, streamed and kept as a compact array, so the cost
    grows with the window's calls: the pages ask for their own range only."""
    columns = tuple(columns)
    tz = _zone(org)
    rows = UsageEvent.objects.filter(
        _spend_filter(access_for_user(user)),
        org_id=org.pk,
        shadow=False,
        status="ok",
        attempt__gt=0,  # a correction row (attempt 0) is money, not a call
        started_at__gte=local_midnight(first, tz),
        started_at__lt=local_midnight(last + DAY, tz),
    )
    if team_ids is not None:
        rows = rows.filter(team_id__in=list(team_ids))
    fields = []
    for column in columns:
        if column == "day":
            rows = rows.annotate(_day=TruncDate("started_at", tzinfo=tz))
            fields.append("_day")
        elif column == "hour":
            rows = rows.annotate(_hour=TruncHour("started_at", tzinfo=UTC))
            fields.append("_hour")
        else:
            fields.append(_LEDGER_COLUMN[column])
    groups: dict[tuple, array] = defaultdict(lambda: array("L"))
    for *key, latency in rows.values_list(*fields, "latency_ms").order_by().iterator(10_000):
        groups[_ledger_key(columns, key)].append(latency)
    out = {}
    for key, values in groups.items():
        ordered = sorted(values)
        out[key] = (_rounded(exact_quantile(ordered, 0.5)), _rounded(exact_quantile(ordered, 0.95)))
    return out


def _ledger_key(columns: tuple[str, ...], values: list) -> tuple:
    """A ledger group's key as the rollups hold it: ids of nothing are 0, hours aware UTC."""
    key = []
    for column, value in zip(columns, values, strict=True):
        if column in _IDS:
            value = value or 0
        elif column == "hour":
            value = _aware(value)
        elif value is None:
            value = ""
        key.append(value)
    return tuple(key)


def _rollup_key(columns: tuple[str, ...], r: dict) -> tuple:
    return tuple(
        _aware(r[c]) if c == "hour" else (r[c] or 0) if c in _IDS else r[c] for c in columns
    )


# --- spend by dimension --------------------------------------------------------------------------


@dataclass(frozen=True)
class SpendQuery:
    group_by: tuple[str, ...]
    start: date
    end: date
    include_evaluation: bool = False
    org: str | None = None
    team: str | None = None


def spend_by_dimension(user, query: SpendQuery) -> list[dict]:
    """Spend rows for ``query``, read from the rollups and scoped to ``user``.

    Dates are local days of each organisation, inclusive. Grouping by ``hour`` reads the hour
    rollups (UTC hours whose start lies within the local days; for zones offset by a half hour
    the edge hours therefore cover half an hour outside them); anything else reads the day
    rollups, which are exact local days. Every row carries its ``org``; dimensions are slugs
    (teams, orgs), names (keys, models, providers) or the raw value; a missing one is ``null``.
    """
    access = access_for_user(user)
    by_hour = "hour" in query.group_by
    model = HourlySpend if by_hour else DailySpend
    queryset = model.objects.filter(_spend_filter(access))

    org_ids = set(access.org_ids)
    if query.org is not None:
        org_ids &= set(Organization.objects.filter(slug=query.org).values_list("id", flat=True))
    orgs = {o.pk: o for o in Organization.objects.filter(id__in=org_ids)}
    queryset = queryset.filter(org_id__in=list(orgs))
    if query.team is not None:
        team_ids = Team.objects.filter(org_id__in=list(orgs), slug=query.team).values_list(
            "id", flat=True
        )
        queryset = queryset.filter(team_id__in=list(team_ids))

    zones = {pk: _zone(org) for pk, org in orgs.items()}
    queryset = queryset.filter(_spend_window(query, zones, by_hour=by_hour))

    columns = ["org_id"]
    for dim in query.group_by:
        if dim in _COLUMN and _COLUMN[dim] not in columns:
            columns.append(_COLUMN[dim])
    if by_hour:
        columns.append("hour")
    elif "day" in query.group_by:
        columns.append("day")
    sums = {name: Sum(name) for name in (*COUNT_FIELDS, *COST_FIELDS)}
    raw = list(queryset.values(*columns).annotate(**sums).order_by(*columns))
    latency: dict[tuple, Percentiles] = {}
    team_ids = None if query.team is None else list(team_ids)
    for pk in {r["org_id"] for r in raw}:
        for key, p in latency_percentiles(
            user,
            org=orgs[pk],
            first=query.start,
            last=query.end,
            columns=columns,
            team_ids=team_ids,
        ).items():
            latency[key] = p

    team_slugs = dict(
        Team.objects.filter(id__in={r["team_id"] for r in raw if "team_id" in r}).values_list(
            "id", "slug"
        )
    )
    key_names = dict(
        VirtualKey.objects.filter(id__in={r["key_id"] for r in raw if "key_id" in r}).values_list(
            "id", "name"
        )
    )
    rows = []
    for r in raw:
        row: dict = {"org": orgs[r["org_id"]].slug}
        _add_dimensions(
            row,
            r,
            query.group_by,
            team_slugs=team_slugs,
            key_names=key_names,
            zone=zones[r["org_id"]],
            by_hour=by_hour,
        )
        percentiles = latency.get(_rollup_key(tuple(columns), r), (None, None))
        rows.append(
            _measures(row, r, include_evaluation=query.include_evaluation, latency=percentiles)
        )
    time_key = "hour" if by_hour else ("day" if "day" in query.group_by else None)
    rows.sort(key=lambda row: (row[time_key] if time_key else "", -Decimal(row["cost"])))
    return rows


def _spend_window(query: SpendQuery, zones: dict, *, by_hour: bool) -> Q:
    """The rollup rows of the query's local days: the hours each organisation's days span, or
    the days themselves."""
    if not by_hour:
        return Q(day__gte=query.start, day__lte=query.end)
    window = Q(pk__in=[])
    for pk, tz in zones.items():
        window |= Q(
            org_id=pk,
            hour__gte=local_midnight(query.start, tz),
            hour__lt=local_midnight(query.end + DAY, tz),
        )
    return window


def _add_dimensions(
    row: dict,
    r: dict,
    group_by: tuple[str, ...],
    *,
    team_slugs: dict[int, str],
    key_names: dict[int, str],
    zone: zoneinfo.ZoneInfo,
    by_hour: bool,
) -> None:
    """Label one rollup group's dimensions on ``row`` (slugs, names or the raw value)."""
    for dim in group_by:
        if dim == "team":
            row["team"] = _label(team_slugs, r["team_id"])
        elif dim == "key":
            row["key"] = _label(key_names, r["key_id"])
            row["key_id"] = r["key_id"] or None
        elif dim in ("feature", "endpoint", "user", "model", "provider"):
            row[dim] = r[_COLUMN[dim]] or None
        elif dim == "day":
            row["day"] = (local_date(_aware(r["hour"]), zone) if by_hour else r["day"]).isoformat()
        elif dim == "hour":
            row["hour"] = _aware(r["hour"]).strftime("%Y-%m-%dT%H:%M:%SZ")


def _measures(row: dict, r: dict, *, include_evaluation: bool, latency: Percentiles) -> dict:
    cost = (r["cost"] or 0) + ((r["eval_cost"] or 0) if include_evaluation else 0)
    row.update(
        requests=r["requests"] or 0,
        attempts=r["attempts"] or 0,
        successes=r["successes"] or 0,
        failures=r["failures"] or 0,
        prompt_tokens=r["prompt_tokens"] or 0,
        completion_tokens=r["completion_tokens"] or 0,
        cached_tokens=r["cached_tokens"] or 0,
        cache_write_tokens=r["cache_write_tokens"] or 0,
        cost=money(cost),
        input_cost=money(r["input_cost"]),
        cached_input_cost=money(r["cached_input_cost"]),
        cache_write_cost=money(r["cache_write_cost"]),
        output_cost=money(r["output_cost"]),
        failed_cost=money(r["failed_cost"]),
        evaluation_cost=money(r["eval_cost"]),
        evaluation_requests=r["eval_requests"] or 0,
        latency_ms_avg=(
            round(r["latency_sum_ms"] / r["latency_count"], 1) if r["latency_count"] else None
        ),
        latency_ms_p50=latency[0],
        latency_ms_p95=latency[1],
    )
    return row


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _label(names: dict[int, str], pk: int) -> str | None:
    if not pk:
        return None
    return names.get(pk, f"#{pk}")  # deleted since: the ledger keeps its id


def _zone(org: Organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(org.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _aware(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def budget_rows(budget: Budget) -> QuerySet[DailySpend]:
    """The day rollups a budget's scope covers (production spend: shadow calls are kept apart
    as evaluation spend and do not count against budgets)."""
    rows = DailySpend.objects.filter(org_id=budget.org_id)
    if budget.scope == BudgetScope.TEAM:
        return rows.filter(team_id=budget.team_id)
    if budget.scope == BudgetScope.FEATURE:
        return rows.filter(team_id=budget.feature.team_id, feature=budget.feature.slug)
    if budget.scope == BudgetScope.KEY:
        return rows.filter(key_id=budget.key_id)
    return rows
