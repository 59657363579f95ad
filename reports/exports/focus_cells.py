"""Reads of the FOCUS export: *cells* (UTC day x team x model x provider x price window x feature
x endpoint, with their token and cost sums), grouped into *origins* (the cells of one team's
charge for one model, provider, day and price window, which the rows split by feature and
endpoint).

Production cells come from the hour rollups (``HourlySpend``, the caller's scoped queryset)
except the *split cells* of ``PricePlan`` (an hour a price change cuts), which come from the
ledger. Evaluation (shadow) cells come from the ledger, because the rollups keep evaluation cost
but not its tokens. The ledger is only ever read for the (org, team) pairs the caller's rollup
queryset holds over the same hours, so no read reaches past the caller's scope.

Both streams are ordered by origin, so an origin's cells are consecutive and rows leave in UTC
day order, one origin in memory at a time.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import reduce
from operator import or_

from django.db.models import F, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay

from gateway.models import UsageEvent
from reports.exports.focus_prices import HOUR, PricePlan
from reports.models import HourlySpend

CHUNK = 2000
TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens")
COSTS = ("input_cost", "cached_input_cost", "cache_write_cost", "output_cost", "cost")
_ORDER = ("org_id", "day", "team", "model", "provider", "price_window", "feature", "endpoint")


@dataclass
class Cell:
    org_id: int
    day: date
    team_id: int  # 0: no team (org-level spend)
    model: str
    provider: str
    window: int
    feature: str
    endpoint: str
    evaluation: bool
    sums: dict = field(default_factory=dict)

    @property
    def origin(self) -> tuple:
        return (self.org_id, self.day, self.team_id, self.model, self.provider, self.window)

    @property
    def allocated(self) -> tuple[str, str]:
        return (self.feature, self.endpoint)

    def add(self, other: Cell) -> None:
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0) + value

    def tokens(self, name: str) -> int:
        if name == "input_tokens":  # OpenAI's convention: prompt tokens include the cache ones
            return max(
                0,
                self.sums["prompt_tokens"]
                - self.sums["cached_tokens"]
                - self.sums["cache_write_tokens"],
            )
        return self.sums[name]


@dataclass
class Origin:
    """The cells of one origin charge, in the order they were read."""

    key: tuple
    evaluation: bool
    cells: list[Cell]

    @property
    def block(self) -> tuple[int, date]:
        return self.key[:2]


def _day(value) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def _cell(row: dict, *, evaluation: bool) -> Cell:
    sums = {name: int(row[name] or 0) for name in TOKENS}
    sums.update({name: Decimal(row[name] or 0) for name in COSTS})
    return Cell(
        org_id=row["org_id"],
        day=_day(row["day"]),
        team_id=row["team"] or 0,
        model=row["model"],
        provider=row["provider"],
        window=row["price_window"],
        feature=row["feature"],
        endpoint=row["endpoint"],
        evaluation=evaluation,
        sums=sums,
    )


def _sums() -> dict:
    return {name: Sum(name) for name in TOKENS + COSTS}


def _rollup_cells(queryset: QuerySet[HourlySpend], plan: PricePlan, lo, hi) -> Iterator[Cell]:
    rows = queryset.filter(hour__gte=lo, hour__lt=hi)
    split = [Q(org_id=o, model=m, hour=h) for o, m, h in plan.split_cells()]
    if split:
        rows = rows.exclude(reduce(or_, split))
    grouped = (
        rows.annotate(
            day=TruncDay("hour", tzinfo=UTC), team=F("team_id"), price_window=plan.case("hour")
        )
        .values(*_ORDER)
        .annotate(**_sums())
        .order_by(*_ORDER)
    )
    for row in grouped.iterator(chunk_size=CHUNK):
        yield _cell(row, evaluation=False)


def _scope(pairs) -> Q | None:
    """Ledger rows of exactly these (org, team) pairs (team 0: rows without a team)."""
    teams: dict[int, set[int]] = defaultdict(set)
    for org_id, team_id in pairs:
        teams[org_id].add(team_id or 0)
    clauses = []
    for org_id, ids in sorted(teams.items()):
        of_team = Q(team_id__in=sorted(ids - {0}))
        if 0 in ids:
            of_team |= Q(team_id__isnull=True)
        clauses.append(Q(org_id=org_id) & of_team)
    return reduce(or_, clauses) if clauses else None


def _ledger_cells(where: Q, plan: PricePlan, *, evaluation: bool) -> Iterator[Cell]:
    grouped = (
        UsageEvent.objects.filter(where, shadow=evaluation)
        .annotate(
            day=TruncDay("started_at", tzinfo=UTC),
            team=Coalesce("team_id", Value(0), output_field=IntegerField()),
            price_window=plan.case("started_at"),
        )
        .values(*_ORDER)
        .annotate(**_sums())
        .order_by(*_ORDER)
    )
    for row in grouped.iterator(chunk_size=CHUNK):
        yield _cell(row, evaluation=evaluation)


def _split_cells(queryset: QuerySet[HourlySpend], plan: PricePlan) -> dict:
    """The production cells of the split hours, read from the ledger: block -> origin ->
    (feature, endpoint) -> cell."""
    clauses = []
    for org_id, model, hour in plan.split_cells():
        pairs = queryset.filter(org_id=org_id, model=model, hour=hour).values_list(
            "org_id", "team_id"
        )
        scope = _scope(pairs.distinct())
        if scope is not None:
            when = Q(model=model, started_at__gte=hour, started_at__lt=hour + HOUR)
            clauses.append(scope & when)
    found: dict = defaultdict(lambda: defaultdict(dict))
    if clauses:
        for cell in _ledger_cells(reduce(or_, clauses), plan, evaluation=False):
            found[cell.origin[:2]][cell.origin][cell.allocated] = cell
    return found


def _origins(cells: Iterator[Cell], *, evaluation: bool) -> Iterator[Origin]:
    for key, group in itertools.groupby(cells, key=lambda c: c.origin):
        yield Origin(key, evaluation, list(group))


def _merged(origins: Iterator[Origin], pending: dict) -> Iterator[Origin]:
    """The rollup origins with the split-hour cells added to their own origin; split-hour
    origins the rollups lack follow the last rollup origin of their UTC day (blocks stay in
    order, so an origin is never emitted in two parts)."""

    def flush(block) -> Iterator[Origin]:
        for key, cells in sorted(pending.pop(block, {}).items()):
            yield Origin(key, False, list(cells.values()))

    current = None
    for origin in origins:
        if origin.block != current:
            if current is not None:
                yield from flush(current)
            for block in sorted(b for b in pending if b < origin.block):
                yield from flush(block)
            current = origin.block
        extra = pending.get(current, {}).pop(origin.key, {})
        if extra:
            by_allocated = {cell.allocated: cell for cell in origin.cells}
            for allocated, cell in extra.items():
                if allocated in by_allocated:
                    by_allocated[allocated].add(cell)
                else:
                    origin.cells.append(cell)
        yield origin
    if current is not None:
        yield from flush(current)
    for block in sorted(pending):
        yield from flush(block)


def origins(
    queryset: QuerySet[HourlySpend],
    plan: PricePlan,
    *,
    lo: datetime,
    hi: datetime,
    include_evaluation: bool,
) -> Iterator[Origin]:
    """Every origin of ``queryset`` (already scoped) over ``[lo, hi)``, in UTC day order."""
    pending = _split_cells(queryset, plan)
    production = _merged(_origins(_rollup_cells(queryset, plan, lo, hi), evaluation=False), pending)
    if not include_evaluation:
        yield from production
        return
    pairs = (
        queryset.filter(hour__gte=lo, hour__lt=hi, eval_attempts__gt=0)
        .values_list("org_id", "team_id")
        .distinct()
    )
    scope = _scope(pairs)
    if scope is None:
        yield from production
        return
    shadow = _ledger_cells(scope & Q(started_at__gte=lo, started_at__lt=hi), plan, evaluation=True)
    # production first within a UTC day (heapq.merge keeps the order of equal keys)
    yield from heapq.merge(
        production, _origins(shadow, evaluation=True), key=lambda origin: origin.block
    )
