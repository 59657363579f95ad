"""The SQL of the rollups: one bucket run of one organisation rebuilt whole from the ledger.

``_recompute_hours`` and ``_recompute_days`` delete a run of buckets and insert the ledger's
``GROUP BY`` over the same instants (one ``INSERT … SELECT``; the inner query classifies each
ledger row once); a day run then rebuilds its per-dimension marginals (``DailyDimensionSpend``)
from the new day rows, in the same transaction. ``reports.services.rollup`` plans the runs, holds
the watermark and calls these.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.db import connection
from django.utils import timezone

from gateway.models import UsageEvent
from gateway.savings import LEVERS
from reports.models import (
    COST_FIELDS,
    DIMENSION_FIELDS,
    LATENCY_BOUNDS_MS,
    LATENCY_FIELDS,
    MEASURE_FIELDS,
    DailyDimensionSpend,
    DailySpend,
    Dimension,
    HourlySpend,
)
from reports.periods import DAY, local_day_bounds, local_midnight


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _hour_expr() -> str:
    """The UTC hour a ledger row started in, as a value of the ``hour`` column."""
    if connection.vendor == "postgresql":
        return "date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    if connection.vendor == "sqlite":  # datetimes are stored as naive UTC text
        return "strftime('%%Y-%%m-%%d %%H:00:00', started_at)"
    raise NotImplementedError(f"rollups support PostgreSQL and SQLite, not {connection.vendor}")


def _row_sql() -> str:
    """Per ledger row, once: the dimensions with their sentinels, and the row's class as booleans
    (production attempt, production success, evaluation attempt, first attempt, production
    money, evaluation money, judge money), its latency bucket and its saving lever. A correction
    row (``attempt`` 0: a re-pricing appended by invoice reconciliation) is money only: it adds
    to the costs, never to a count."""
    bucket = "CASE " + " ".join(
        f"WHEN latency_ms <= {bound} THEN {i}" for i, bound in enumerate(LATENCY_BOUNDS_MS)
    )
    return (
        "org_id, COALESCE(team_id, 0) AS team_id, COALESCE(key_id, 0) AS key_id, "
        "feature, endpoint, end_user, model, provider, "
        "(NOT shadow AND attempt > 0) AS p, (NOT shadow AND status = 'ok') AS s, "
        "(shadow AND attempt > 0) AS e, attempt = 1 AS a1, NOT shadow AS k, shadow AS x, "
        "(shadow AND router_decision = 'judge') AS j, "
        "CASE WHEN shadow THEN '' ELSE saving_lever END AS lv, "
        f"{bucket} ELSE {len(LATENCY_BOUNDS_MS)} END AS lb, "
        "prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, latency_ms, "
        "input_cost, cached_input_cost, cache_write_cost, output_cost, cost, saved_usd"
    )


def _measures_sql() -> list[tuple[str, str]]:
    """Aggregates over the classified rows of ``_row_sql``, with ``FILTER`` (PostgreSQL; SQLite
    3.30+): a million-row rollup evaluates these forty times a row, so they stay simple."""

    def count(cond: str) -> str:
        return f"COUNT(*) FILTER (WHERE {cond})"

    def total(column: str, cond: str = "p") -> str:
        return f"COALESCE(SUM({column}) FILTER (WHERE {cond}), 0)"

    measures = [
        ("requests", count("p AND a1")),
        ("attempts", count("p")),
        ("successes", count("s")),
        ("failures", count("p AND NOT s")),
        ("prompt_tokens", total("prompt_tokens")),
        ("completion_tokens", total("completion_tokens")),
        ("cached_tokens", total("cached_tokens")),
        ("cache_write_tokens", total("cache_write_tokens")),
        ("eval_requests", count("e AND a1")),
        ("eval_attempts", count("e")),
        ("latency_sum_ms", total("latency_ms", "s")),
        ("latency_count", count("s")),
    ]
    measures += [(name, count(f"s AND lb = {i}")) for i, name in enumerate(LATENCY_FIELDS)]
    special = {
        "failed_cost": total("cost", "p AND NOT s"),
        "eval_cost": total("cost", "x"),
        "judge_cost": total("cost", "j"),
    }
    for lever in LEVERS:  # names from code, never from a row
        special[f"saved_{lever}"] = total("saved_usd", f"lv = '{lever}'")
        special[f"spend_{lever}"] = total("cost", f"lv = '{lever}'")
    for name in COST_FIELDS:
        measures.append((name, special.get(name) or total(name, "k")))
    return measures


def _insert_sql(table: str, bucket_column: str, bucket_expr: str) -> str:
    """INSERT … SELECT of one rollup table's buckets from the ledger rows of one org and time
    range. The inner query classifies each row once (``OFFSET 0`` keeps PostgreSQL from
    inlining it into every aggregate); the outer one groups by position."""
    measures = _measures_sql()
    columns = [bucket_column, *DIMENSION_FIELDS, *(name for name, _ in measures)]
    group = ", ".join(str(i) for i in range(1, len(DIMENSION_FIELDS) + 2))
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    # identifiers come from model metadata; every value is a parameter
    return (
        f"INSERT INTO {_q(table)} ({', '.join(_q(c) for c in columns)}) "  # noqa: S608
        f"SELECT bucket, {', '.join(DIMENSION_FIELDS)}, {', '.join(e for _, e in measures)} "
        f"FROM (SELECT {bucket_expr} AS bucket, {_row_sql()} "
        f"FROM {_q(UsageEvent._meta.db_table)} "
        f"WHERE org_id = %s AND started_at >= %s AND started_at < %s{fence}) AS ledger "
        f"GROUP BY {group}"
    )


def _dt(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _as_utc(value) -> datetime:
    """A bucket value read back from a raw cursor (aware, naive or, on SQLite, text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _recompute_hours(cursor, *, org_id: int, start: datetime, end: datetime) -> None:
    """Rebuild the hour buckets ``start <= hour < end`` (whole hours) of one org."""
    table = HourlySpend._meta.db_table
    cursor.execute(
        f"DELETE FROM {_q(table)} WHERE org_id = %s AND hour >= %s AND hour < %s",  # noqa: S608
        [org_id, _dt(start), _dt(end)],
    )
    cursor.execute(
        _insert_sql(table, "hour", _hour_expr()),
        [org_id, _dt(start), _dt(end)],
    )


def _recompute_days(cursor, *, org_id: int, first: date, after: date, tz) -> None:
    """Rebuild the local days ``first <= day < after`` of one org from the ledger rows that
    started within them. PostgreSQL converts each row's start to the org's timezone; SQLite
    (no timezones) takes one day at a time, its bounds computed here."""
    table = _q(DailySpend._meta.db_table)
    cursor.execute(
        f"DELETE FROM {table} WHERE org_id = %s AND day >= %s AND day < %s",  # noqa: S608
        [
            org_id,
            connection.ops.adapt_datefield_value(first),
            connection.ops.adapt_datefield_value(after),
        ],
    )
    if connection.vendor == "postgresql":
        cursor.execute(
            _insert_sql(table, "day", "(started_at AT TIME ZONE %s)::date"),
            [tz.key, org_id, _dt(local_midnight(first, tz)), _dt(local_midnight(after, tz))],
        )
    else:
        day = first
        while day < after:
            start, end = local_day_bounds(day, tz)
            cursor.execute(
                _insert_sql(table, "day", "%s"),
                [connection.ops.adapt_datefield_value(day), org_id, _dt(start), _dt(end)],
            )
            day += DAY
    _recompute_day_marginals(cursor, org_id=org_id, first=first, after=after)


# The marginals of DailySpend the dashboards read: dimension -> (the DailySpend column it groups
# by, the expression of its value); the team total groups by day and team only.
_MARGINALS = {
    Dimension.FEATURE: ("feature", "feature"),
    Dimension.ENDPOINT: ("endpoint", "endpoint"),
    Dimension.MODEL: ("model", "model"),
    Dimension.KEY: ("key_id", "CAST(key_id AS VARCHAR(20))"),
}


def _marginals_sql() -> str:
    """INSERT … SELECT of the ``DailyDimensionSpend`` rows of one org and day range: the range's
    ``DailySpend`` rows summed by day and team (the team total), and by day, team and each
    dimension's value. PostgreSQL reads those rows once (``GROUPING SETS``, a third of the time
    of the portable form); SQLite takes a ``UNION ALL`` of one ``GROUP BY`` per dimension."""
    sums = ", ".join(f"SUM({name})" for name in MEASURE_FIELDS)
    columns = ["day", "org_id", "team_id", "dimension", "value", *MEASURE_FIELDS]
    source = _q(DailySpend._meta.db_table)
    where = "WHERE org_id = %s AND day >= %s AND day < %s"
    total = f"'{Dimension.TEAM.value}', ''"
    # identifiers and dimension names come from code; every value is a parameter
    insert = (
        f"INSERT INTO {_q(DailyDimensionSpend._meta.db_table)} "
        f"({', '.join(_q(c) for c in columns)}) "
    )
    if connection.vendor == "postgresql":
        # no DailySpend column is NULL, so only GROUPING() tells which set a row sums
        dimension = " ".join(
            f"WHEN GROUPING({col}) = 0 THEN '{d.value}'" for d, (col, _) in _MARGINALS.items()
        )
        value = " ".join(f"WHEN GROUPING({col}) = 0 THEN {v}" for col, v in _MARGINALS.values())
        sets = ", ".join(["()", *(f"({col})" for col, _ in _MARGINALS.values())])
        select = (
            f"SELECT day, org_id, team_id, CASE {dimension} ELSE '{Dimension.TEAM.value}' END, "  # noqa: S608
            f"CASE {value} ELSE '' END, {sums} FROM {source} {where} "
            f"GROUP BY day, org_id, team_id, GROUPING SETS ({sets})"
        )
        return insert + select
    selects = [
        f"SELECT day, org_id, team_id, {total}, {sums} FROM {source} {where} "  # noqa: S608
        "GROUP BY day, org_id, team_id",
        *(
            f"SELECT day, org_id, team_id, '{d.value}', {v}, {sums} FROM {source} {where} "  # noqa: S608
            f"GROUP BY day, org_id, team_id, {col}"
            for d, (col, v) in _MARGINALS.items()
        ),
    ]
    return insert + " UNION ALL ".join(selects)


def _recompute_day_marginals(cursor, *, org_id: int, first: date, after: date) -> None:
    """Rebuild the ``DailyDimensionSpend`` rows of one org's days ``first <= day < after`` from
    its ``DailySpend`` rows, just rebuilt in the same transaction (so the two always agree)."""
    bounds = [
        org_id,
        connection.ops.adapt_datefield_value(first),
        connection.ops.adapt_datefield_value(after),
    ]
    cursor.execute(
        f"DELETE FROM {_q(DailyDimensionSpend._meta.db_table)} "  # noqa: S608
        "WHERE org_id = %s AND day >= %s AND day < %s",
        bounds,
    )
    selects = 1 if connection.vendor == "postgresql" else 1 + len(_MARGINALS)
    cursor.execute(_marginals_sql(), bounds * selects)
