"""The measures the dashboards sum over rollup groups (``Tally``: calls, money, the latency count
and average, and the retry / failure overhead derived from them; latency percentiles come exact
from the ledger, ``reports.selectors.spend.latency_percentiles``), how they rank and how they become
chart series; and the PostgreSQL tuning the dashboards' ``GROUP BY``s run under. Used by
``reports.pages.dashboard_data``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum

from finops.money import money
from reports.models import LATENCY_BUCKETS, LATENCY_FIELDS

HUNDRED = Decimal(100)
CENT = Decimal("0.01")
SERIES_N = 8  # series drawn per chart; the rest is summed as "other"
COUNTS = ("requests", "attempts", "successes", "failures")
MONEY = ("cost", "failed_cost")
LATENCY = ("latency_sum_ms", "latency_count", *LATENCY_FIELDS)


@contextmanager
def _tuned():
    """PostgreSQL: enough ``work_mem`` that the GROUP BYs hash in memory instead of sorting text
    on disk, and no JIT (compiling costs more than these sub-second queries take)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)",
            [str(getattr(settings, "FINOPS_DASHBOARD_WORK_MEM", "64MB"))],
        )
        yield


def _dec(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def _sums(*names: str) -> dict:
    return {name: Sum(name) for name in names}


def _pct(part: Decimal, whole: Decimal) -> str | None:
    return str((part * HUNDRED / whole).quantize(CENT)) if whole else None


@dataclass
class Tally:
    """Measures summed over rollup groups: calls, money, latency histogram."""

    requests: int = 0
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    cost: Decimal = Decimal(0)
    failed_cost: Decimal = Decimal(0)
    latency_sum_ms: int = 0
    latency_count: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)

    def add(self, r: dict) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + (r.get(name) or 0))
        self.cost += _dec(r.get("cost"))
        self.failed_cost += _dec(r.get("failed_cost"))
        if "latency_count" in r:
            self.latency_sum_ms += r["latency_sum_ms"] or 0
            self.latency_count += r["latency_count"] or 0
            for i, name in enumerate(LATENCY_FIELDS):
                self.latency[i] += r[name] or 0

    def as_json(self) -> dict:
        """Counts, costs and the retry / fallback overhead: ``cost_per_call`` is the cost of one
        upstream attempt, ``cost_per_success`` what one successful response cost end to end
        (failed attempts, retries and fallbacks included)."""
        return {
            "requests": self.requests,
            "attempts": self.attempts,
            "retries": max(0, self.attempts - self.requests),
            "successes": self.successes,
            "failures": self.failures,
            "cost": money(self.cost),
            "failed_cost": money(self.failed_cost),
            "cost_per_call": money(self.cost / self.attempts) if self.attempts else None,
            "cost_per_success": money(self.cost / self.successes) if self.successes else None,
            "failed_share_pct": _pct(self.failed_cost, self.cost),
        }

    def latency_json(self, percentiles: tuple[float | None, float | None]) -> dict:
        """Count and average from the rollups; ``percentiles`` (p50, p95) from the ledger."""
        p50, p95 = percentiles if self.latency_count else (None, None)
        return {
            "latency_count": self.latency_count,
            "latency_ms_avg": (
                round(self.latency_sum_ms / self.latency_count, 1) if self.latency_count else None
            ),
            "latency_ms_p50": p50,
            "latency_ms_p95": p95,
        }


def _ranked_pairs(tallies: dict, label, total: Decimal, *, n: int | None = None) -> list:
    """(key, row) per tally, most expensive first (then by label, so the order is stable)."""
    order = sorted(tallies, key=lambda k: (-tallies[k].cost, str(label(k))))
    return [
        (k, {"name": label(k), **tallies[k].as_json(), "share_pct": _pct(tallies[k].cost, total)})
        for k in order[:n]
    ]


def _ranked(tallies: dict, label, total: Decimal, *, n: int | None = None) -> list[dict]:
    return [row for _, row in _ranked_pairs(tallies, label, total, n=n)]


def _series(
    by_day: dict, days: list[date], label, ranking: dict[object, Decimal], n: int = SERIES_N
) -> list[dict]:
    """One cost series per key (the ``n`` most expensive; the rest summed as "other")."""
    order = sorted(ranking, key=lambda k: (-ranking[k], str(label(k))))
    shown, rest = order[:n], order[n:]
    out = [
        {"key": k, "name": label(k), "values": [money(by_day[k].get(d, 0)) for d in days]}
        for k in shown
    ]
    if rest:
        values = [sum((by_day[k].get(d, Decimal(0)) for k in rest), Decimal(0)) for d in days]
        out.append(
            {"key": None, "name": f"other ({len(rest)})", "values": list(map(money, values))}
        )
    return out


def _none(value: str) -> str:
    return value or "(none)"
