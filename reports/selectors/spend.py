"""Tenant-scoped reads of spend and alerts, built on ``teams.selectors.access_for_user``.

Whole-org readers (admin, finance; superusers as admin of every org) read every rollup row and
alert of their organisations; leads and members read the rows of their own teams only (rows
without a team are org-level and belong to whole-org readers). Nobody reads another org. The
``dangerously_*`` readers are unscoped, for jobs and operator commands, never for a request.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from finops.money import money
from reports.models import (
    COST_FIELDS,
    COUNT_FIELDS,
    LATENCY_BOUNDS_MS,
    LATENCY_FIELDS,
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
    beyond the last bound it answers the last bound (a lower bound of the truth)."""
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
        rows.append(_measures(row, r, include_evaluation=query.include_evaluation))
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


def _measures(row: dict, r: dict, *, include_evaluation: bool) -> dict:
    cost = (r["cost"] or 0) + ((r["eval_cost"] or 0) if include_evaluation else 0)
    latency = [r[name] or 0 for name in LATENCY_FIELDS]
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
        latency_ms_p50=_rounded(latency_quantile(latency, 0.5)),
        latency_ms_p95=_rounded(latency_quantile(latency, 0.95)),
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
