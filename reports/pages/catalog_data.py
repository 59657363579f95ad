"""Read assembly of the model catalog page: prices, observed latency, throughput and errors per
model, and the "re-price" of a team's recent traffic on another model.

Everything is read through the tenant-scoped selectors: the models of the viewer's organisation
(``model_list_for_user``) and the rollups the viewer may read (``daily_spend_list_for_user``:
the whole organisation for admin and finance, the viewer's own teams for leads and members).
Only production traffic counts: the rollups' production columns exclude shadow (evaluation)
attempts. Money stays ``Decimal`` from the rollup to the page. The tables, the chart and the
view are ``reports.pages.catalog``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Sum
from django.utils import timezone

from finops.money import usd_per_mtok
from gateway.models import LLMModel, ModelPrice
from gateway.pricing import MTOK, ZERO, Price, Usage, cost_of
from gateway.selectors import model_list_for_user
from reports.models import LATENCY_FIELDS
from reports.periods import local_date
from reports.selectors import daily_spend_list_for_user
from reports.selectors.spend import latency_percentiles
from teams.models import Organization, Team

WINDOW_DAYS = 30
_TOKEN_SUMS = ("prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens")
_STAT_SUMS = (
    "requests",
    "attempts",
    "successes",
    "failures",
    *_TOKEN_SUMS,
    "cost",
    "latency_sum_ms",
    "latency_count",
    *LATENCY_FIELDS,
)


def per_mtok(value: Decimal | None) -> str:
    """A per-million-token price as stored (DecimalField, 12 places), trailing zeros dropped."""
    if value is None:
        return ""
    text = format(Decimal(value), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def window_days(org: Organization, *, now: datetime | None = None) -> tuple[date, date]:
    """The last ``WINDOW_DAYS`` local days of the organisation, today included (inclusive)."""
    today = local_date(now or timezone.now(), org.tz)
    return today - timedelta(days=WINDOW_DAYS - 1), today


def current_price(model: LLMModel, *, now: datetime | None = None) -> ModelPrice | None:
    """The price in force now, from the prefetched price history (no query per model)."""
    now = now or timezone.now()
    live = [p for p in model.prices.all() if p.effective_from <= now]
    return max(live, key=lambda p: p.effective_from) if live else None


def billing_price(price: ModelPrice) -> Price:
    """Per-token prices as the gateway bills them (a missing cache price is the input rate)."""
    return Price.per_mtok(
        effective_from=price.effective_from,
        input_usd_per_mtok=price.input_usd_per_mtok,
        output_usd_per_mtok=price.output_usd_per_mtok,
        cached_input_usd_per_mtok=price.cached_input_usd_per_mtok,
        cache_write_usd_per_mtok=price.cache_write_usd_per_mtok,
    )


def per_mtok_label(price: ModelPrice) -> str:
    """ "in $0.15 / Mtok, cached $0.075 / Mtok, write $0.15 / Mtok, out $0.60 / Mtok", as
    billed."""
    p = billing_price(price)
    parts = [
        ("in", p.input),
        ("cached", p.cached_input),
        ("write", p.cache_write),
        ("out", p.output),
    ]
    return ", ".join(f"{label} {usd_per_mtok(value * MTOK)}" for label, value in parts)


# --- the catalog ---------------------------------------------------------------------------------


@dataclass
class ModelStats:
    """Production traffic of one model over the window (sums of the day rollups)."""

    requests: int = 0
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = ZERO
    latency_sum_ms: int = 0
    latency_count: int = 0
    # exact from the ledger's recorded latencies (``latency_percentiles``), not the histogram
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def error_rate(self) -> Decimal | None:
        """Failed attempts / all attempts, in percent."""
        if not self.attempts:
            return None
        return (Decimal(self.failures) * 100 / self.attempts).quantize(Decimal("0.01"))

    @property
    def throughput(self) -> Decimal | None:
        """Output tokens per second: completion tokens over the summed end-to-end latency of
        successful attempts (time to first token included, so below the pure decode speed)."""
        if not self.latency_sum_ms:
            return None
        rate = Decimal(self.completion_tokens) * 1000 / Decimal(self.latency_sum_ms)
        return rate.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def model_stats(user, *, org: Organization, first: date, last: date) -> dict[str, ModelStats]:
    """Per model name, the window's production traffic the viewer may read."""
    rows = (
        daily_spend_list_for_user(user)
        .filter(org_id=org.pk, day__gte=first, day__lte=last)
        .values("model")
        .annotate(**{name: Sum(name) for name in _STAT_SUMS})
        .order_by("model")
    )
    latency = latency_percentiles(user, org=org, first=first, last=last, columns=("model",))
    stats: dict[str, ModelStats] = {}
    for r in rows:
        s = ModelStats(**{name: r[name] or 0 for name in _STAT_SUMS if name not in LATENCY_FIELDS})
        s.cost = Decimal(r["cost"] or 0)
        if s.latency_count:
            s.p50_ms, s.p95_ms = latency.get((r["model"],), (None, None))
        stats[r["model"]] = s
    return stats


def catalog_models(user, *, org: Organization) -> list[LLMModel]:
    return list(model_list_for_user(user).filter(org=org).order_by("name"))


# --- re-price ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepriceRow:
    source: str
    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    completion_tokens: int
    actual: Decimal
    repriced: Decimal

    @property
    def difference(self) -> Decimal:
        """Positive: the target would have cost more."""
        return self.repriced - self.actual


@dataclass(frozen=True)
class Reprice:
    team: Team
    target: LLMModel
    price: ModelPrice
    first: date
    last: date
    rows: list[RepriceRow]

    @property
    def actual(self) -> Decimal:
        return sum((r.actual for r in self.rows), ZERO)

    @property
    def repriced(self) -> Decimal:
        return sum((r.repriced for r in self.rows), ZERO)

    @property
    def difference(self) -> Decimal:
        return self.repriced - self.actual


def reprice_team(user, *, team: Team, target: LLMModel, first: date, last: date) -> Reprice | None:
    """What the team's production tokens of [first, last] would have cost at the target's
    current prices, per source model, next to what they did cost. None if the target has no
    price. ``prompt_tokens`` follows OpenAI's convention (cache reads and writes included), so
    the uncached part is what is left after taking those out."""
    price = current_price(target)
    if price is None:
        return None
    per_token = billing_price(price)
    sums = (
        daily_spend_list_for_user(user)
        .filter(org_id=team.org_id, team_id=team.pk, day__gte=first, day__lte=last)
        .values("model")
        .annotate(cost_sum=Sum("cost"), **{name: Sum(name) for name in _TOKEN_SUMS})
        .order_by("model")
    )
    rows = []
    for r in sums:
        prompt, cached = r["prompt_tokens"] or 0, r["cached_tokens"] or 0
        write, completion = r["cache_write_tokens"] or 0, r["completion_tokens"] or 0
        usage = Usage(
            uncached_input=max(0, prompt - cached - write),
            cached_input=cached,
            cache_write=write,
            output=completion,
        )
        rows.append(
            RepriceRow(
                source=r["model"] or "(unknown)",
                prompt_tokens=prompt,
                cached_tokens=cached,
                cache_write_tokens=write,
                completion_tokens=completion,
                actual=Decimal(r["cost_sum"] or 0),
                repriced=cost_of(usage, per_token).total,
            )
        )
    return Reprice(team=team, target=target, price=price, first=first, last=last, rows=rows)
