"""The provider's figures against the ledger, per provider x UTC day x model x token type.

**Grain.** Provider figures (``ProviderUsage``) summed per provider, UTC day, model and token
type; ledger rows (``UsageEvent``, every attempt: failed, shadow, lost and correction rows
included, as the provider bills attempts) summed per provider slug, UTC day of ``started_at``,
``upstream_model`` and token type (uncached input = prompt - cached - cache write). A provider's
model name is matched to the ledger's exactly or, failing that, without a dated snapshot suffix
(``gpt-4o-mini-2024-07-18``, ``claude-3-5-haiku-20241022`` and Azure's ``-0718`` match
``gpt-4o-mini``, ``claude-3-5-haiku``); a provider figure with no model (a cost line that names
none) is compared at the provider's total only. Only days some import of the provider covers
are compared, each from the source of the latest import that covered it (an API pull and an
uploaded file never count the same day twice).

**Classes.** With ``P``/``L`` the provider's and the ledger's tokens, ``C_p``/``C_l`` their
costs and ``u = C_p / P`` the provider's unit price, the difference ``C_p - C_l`` splits
exactly into

- *unmetered* ``(P - L) * u`` when the provider counted more tokens (traffic that bypassed the
  gateway), *over-metered* the same when the ledger counted more (attempts the provider did not
  bill, lost-call estimates), when ``|P - L|`` exceeds ``TOKEN_TOLERANCE`` of the larger;
- *price drift* ``L * u - C_l``: the same tokens at a different price, when the catalog's unit
  price differs from ``u`` by more than ``PRICE_TOLERANCE``;
- the remainder (within both tolerances: rounding, a call straddling midnight) is *matched*.

A drift within ``ROUNDING`` (half the coarsest precision a provider reports costs in) is matched
too; a token gap is never rounded away (its tokens are real). A row's ``class`` is its largest
part. Where the
provider gave tokens but no cost (or the reverse), the missing side is valued at the ledger's
unit price (or the difference is taken on cost alone).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.db.models import Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate

from gateway.models import Provider, UsageEvent
from reports.models import ProviderReportPull, ProviderUsage, TokenType

TOKEN_TOLERANCE = Decimal("0.001")  # 0.1 % of the larger token count
PRICE_TOLERANCE = Decimal("0.005")  # 0.5 % of the provider's unit price
# half the coarsest precision a provider reports a cost in (Anthropic: hundredths of a cent):
# a smaller price drift may be the provider's rounding
ROUNDING = Decimal("0.00005")
ZERO = Decimal(0)
CLASSES = ("matched", "unmetered", "over_metered", "price_drift")
GROUPS = ("day", "model", "token_type")
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")
_LEDGER_TYPES = (
    (TokenType.INPUT, "input_cost"),
    (TokenType.CACHED_INPUT, "cached_input_cost"),
    (TokenType.CACHE_WRITE, "cache_write_cost"),
    (TokenType.OUTPUT, "output_cost"),
)


@dataclass
class Row:
    provider: str
    day: date | None
    model: str
    token_type: str
    provider_tokens: int | None = None
    ledger_tokens: int = 0
    provider_cost: Decimal | None = None
    ledger_cost: Decimal = ZERO
    unmetered: Decimal = ZERO
    over_metered: Decimal = ZERO
    price_drift: Decimal = ZERO
    accounts: dict = field(default_factory=dict)  # (account, api key id) -> [tokens, cost]

    @property
    def difference(self) -> Decimal:
        return (self.provider_cost or ZERO) - self.ledger_cost

    @property
    def matched(self) -> Decimal:
        return self.difference - self.unmetered + self.over_metered - self.price_drift

    @property
    def klass(self) -> str:
        parts = {
            "unmetered": abs(self.unmetered),
            "over_metered": abs(self.over_metered),
            "price_drift": abs(self.price_drift),
        }
        name, biggest = max(parts.items(), key=lambda kv: kv[1])
        return name if biggest > 0 else "matched"

    @property
    def implied_price_per_mtok(self) -> Decimal | None:
        if not self.provider_tokens or self.provider_cost is None:
            return None
        return self.provider_cost * 1_000_000 / self.provider_tokens


def base_model(name: str) -> str:
    """``name`` without a dated snapshot suffix, lowercased, spaces as dashes (Azure meters)."""
    return _SNAPSHOT.sub("", "-".join(name.strip().lower().split()))


def _span(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def covered_days(provider: Provider, start: date, end: date) -> dict[date, str]:
    """Day -> the source of the latest successful import of ``provider`` that covered it."""
    chosen: dict[date, str] = {}
    pulls = ProviderReportPull.objects.filter(
        provider=provider, status="ok", start__lt=end, end__gt=start
    ).order_by("created_at", "id")
    for pull in pulls:
        day = max(pull.start, start)
        while day < min(pull.end, end):
            chosen[day] = pull.source
            day = date.fromordinal(day.toordinal() + 1)
    return chosen


def _provider_rows(provider: Provider, days: dict[date, str]) -> dict[tuple, Row]:
    rows: dict[tuple, Row] = {}
    if not days:
        return rows
    figures = ProviderUsage.objects.filter(
        provider=provider, day__gte=min(days), day__lte=max(days)
    ).values_list(
        "day", "source", "model", "token_type", "account", "api_key_id", "tokens", "cost_usd"
    )
    for day, source, model, token_type, account, key_id, tokens, cost in figures.iterator():
        if days.get(day) != source:
            continue
        row = rows.setdefault((day, model, token_type), Row(provider.slug, day, model, token_type))
        if tokens is not None:
            row.provider_tokens = (row.provider_tokens or 0) + tokens
        if cost is not None:
            row.provider_cost = (row.provider_cost or ZERO) + cost
        bucket = row.accounts.setdefault((account, key_id), [0, ZERO])
        bucket[0] += tokens or 0
        bucket[1] += cost or ZERO
    return rows


def _ledger_rows(provider: Provider, days: dict[date, str]) -> dict[tuple, tuple[int, Decimal]]:
    if not days:
        return {}
    grouped = (
        UsageEvent.objects.filter(
            org_id=provider.org_id,
            provider=provider.slug,
            started_at__gte=_span(min(days)),
            started_at__lt=_span(date.fromordinal(max(days).toordinal() + 1)),
        )
        .annotate(
            day=TruncDate("started_at", tzinfo=UTC),
            # a row written without its upstream name (an old writer) goes by the catalog's
            served=Coalesce(NullIf("upstream_model", Value("")), "model"),
        )
        .values("day", "served")
        .annotate(
            prompt=Sum("prompt_tokens"),
            cached=Sum("cached_tokens"),
            written=Sum("cache_write_tokens"),
            output=Sum("completion_tokens"),
            **{name: Sum(name) for _, name in _LEDGER_TYPES},
        )
    )
    out: dict[tuple, tuple[int, Decimal]] = {}
    for g in grouped:
        if g["day"] not in days:
            continue
        prompt, cached, written = g["prompt"] or 0, g["cached"] or 0, g["written"] or 0
        tokens = {
            TokenType.INPUT: max(0, prompt - cached - written),
            TokenType.CACHED_INPUT: cached,
            TokenType.CACHE_WRITE: written,
            TokenType.OUTPUT: g["output"] or 0,
        }
        for token_type, cost_name in _LEDGER_TYPES:
            cost = Decimal(g[cost_name] or 0)
            if tokens[token_type] or cost:
                key = (g["day"], g["served"], token_type)
                old = out.get(key, (0, ZERO))
                out[key] = (old[0] + tokens[token_type], old[1] + cost)
    return out


def _match_models(provider_models: Iterable[str], ledger_models: Iterable[str]) -> dict[str, str]:
    """Provider model name -> the ledger's upstream model it is (itself when none)."""
    ledger = set(ledger_models)
    by_base: dict[str, str] = {}
    for name in sorted(ledger):
        by_base.setdefault(base_model(name), name)
    out = {}
    for name in provider_models:
        if not name or name in ledger:
            out[name] = name
        else:
            out[name] = by_base.get(base_model(name), name)
    return out


def _classify(row: Row) -> Row:
    p_tokens, l_tokens = row.provider_tokens, row.ledger_tokens
    if row.provider_cost is None and p_tokens is not None and l_tokens:
        row.provider_cost = row.ledger_cost * p_tokens / l_tokens  # valued at our price
    difference = row.difference
    if p_tokens is None or p_tokens == 0:
        gap = difference  # cost alone
        unit = None
    else:
        unit = (row.provider_cost or ZERO) / p_tokens
        slack = TOKEN_TOLERANCE * max(p_tokens, l_tokens)
        gap = (p_tokens - l_tokens) * unit if abs(p_tokens - l_tokens) > slack else ZERO
    if gap > 0:
        row.unmetered = gap
    elif gap < 0:
        row.over_metered = -gap
    if unit is not None and l_tokens:
        ours = row.ledger_cost / l_tokens
        drift = l_tokens * unit - row.ledger_cost
        if unit and abs(ours - unit) > PRICE_TOLERANCE * unit and abs(drift) > ROUNDING:
            row.price_drift = drift
    return row


def provider_reconcile(provider: Provider, start: date, end: date) -> list[Row]:
    """The finest rows (day x model x token type) of ``provider`` for ``[start, end)``."""
    days = covered_days(provider, start, end)
    theirs = _provider_rows(provider, days)
    ours = _ledger_rows(provider, days)
    names = _match_models({k[1] for k in theirs}, {k[1] for k in ours})
    merged: dict[tuple, Row] = {}
    for (day, model, token_type), row in theirs.items():
        key = (day, names.get(model, model), token_type)
        if key in merged:  # two snapshots of one model: add them up
            other = merged[key]
            for (acct, kid), (tokens, cost) in row.accounts.items():
                bucket = other.accounts.setdefault((acct, kid), [0, ZERO])
                bucket[0] += tokens
                bucket[1] += cost
            if row.provider_tokens is not None:
                other.provider_tokens = (other.provider_tokens or 0) + row.provider_tokens
            if row.provider_cost is not None:
                other.provider_cost = (other.provider_cost or ZERO) + row.provider_cost
        else:
            merged[key] = replace(row, model=key[1])
    for key, (tokens, cost) in ours.items():
        row = merged.setdefault(key, Row(provider.slug, *key))
        row.ledger_tokens += tokens
        row.ledger_cost += cost
    return [_classify(merged[k]) for k in sorted(merged, key=lambda k: (k[0], k[1], k[2]))]


def rows_group(rows: list[Row], group_by: Iterable[str]) -> list[Row]:
    """``rows`` summed over what ``group_by`` leaves out (the provider is always kept); the
    class parts add up, so a coarser row's split is the sum of its finer rows'."""
    keep = set(group_by)
    out: dict[tuple, Row] = {}
    for r in rows:
        key = (
            r.provider,
            r.day if "day" in keep else None,
            r.model if "model" in keep else "",
            r.token_type if "token_type" in keep else "",
        )
        g = out.get(key)
        if g is None:
            out[key] = g = Row(*key, provider_tokens=None, provider_cost=None)
        if r.provider_tokens is not None:
            g.provider_tokens = (g.provider_tokens or 0) + r.provider_tokens
        if r.provider_cost is not None:
            g.provider_cost = (g.provider_cost or ZERO) + r.provider_cost
        g.ledger_tokens += r.ledger_tokens
        g.ledger_cost += r.ledger_cost
        g.unmetered += r.unmetered
        g.over_metered += r.over_metered
        g.price_drift += r.price_drift
        for k, (tokens, cost) in r.accounts.items():
            bucket = g.accounts.setdefault(k, [0, ZERO])
            bucket[0] += tokens
            bucket[1] += cost
    return [out[k] for k in sorted(out, key=lambda k: (k[0], k[1] or date.min, k[2], k[3]))]


def org_reconcile(
    providers: Iterable[Provider],
    start: date,
    end: date,
    group_by: Iterable[str] = ("day", "model"),
) -> list[Row]:
    """Reconciliation rows of each of ``providers`` (already scoped by the caller)."""
    rows: list[Row] = []
    for provider in providers:
        rows += rows_group(provider_reconcile(provider, start, end), group_by)
    return rows


def totals(rows: Iterable[Row]) -> dict[str, Decimal]:
    """Provider and ledger totals, the difference and its split, of ``rows``."""
    out = defaultdict(lambda: ZERO)
    for r in rows:
        out["provider_cost"] += r.provider_cost or ZERO
        out["ledger_cost"] += r.ledger_cost
        out["difference"] += r.difference
        out["unmetered"] += r.unmetered
        out["over_metered"] += r.over_metered
        out["price_drift"] += r.price_drift
        out["matched"] += r.matched
    return dict(out)


def coverage(rows: Iterable[Row]) -> Decimal | None:
    """Metered / billed over ``rows``: the share of the provider's bill the ledger saw at the
    provider's price (unmetered spend lowers it; a wrong catalog price does not)."""
    t = totals(rows)
    billed = t.get("provider_cost", ZERO)
    if not billed:
        return None
    return (billed - t["unmetered"]) / billed
