"""FOCUS 1.2 export: the hour rollups as a FinOps Open Cost and Usage Specification dataset.

One row per UTC day x team x feature x endpoint x model (and its provider) x token direction
(input, cached input, cache write, output), read from ``HourlySpend`` (UTC hours, so UTC days are
exact) and streamed: rows come off a database cursor in chunks and leave as CSV lines, so a big
month never sits in memory.

Money: every cost column is the rollup's sum at the ledger's full precision (12 places, fixed
point, unrounded). The gateway bills at catalog price with no discount or commitment, so
``ListCost == ContractedCost == BilledCost == EffectiveCost``. Evaluation (shadow) spend is left
out unless asked for; then it comes as one row per grain (``SkuId`` ``<model>:evaluation``, priced
per request, since the rollups keep its cost but not its tokens) marked ``x_Evaluation=true``.

The rows come from a queryset the caller scoped: the API's through
``reports.selectors.hourly_spend_list_for_user``, the ``export_focus`` command's through
``reports.selectors.dangerously_org_hourly_spend``. ``docs/reports.md`` ("FOCUS export") tables
every column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDay

from finops.money import money
from gateway.models import Provider, ProviderKind
from reports.models import HourlySpend
from teams.models import Organization, Team

FOCUS_VERSION = "1.2"

# FOCUS columns in the specification's (alphabetical) order, then the custom ``x_`` columns.
COLUMNS: tuple[str, ...] = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_Team",
    "x_Feature",
    "x_Endpoint",
    "x_Model",
    "x_Evaluation",
)

# (name in SkuId, token column, cost column, words for ChargeDescription)
DIRECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("input", "input_tokens", "input_cost", "input tokens"),
    ("cached-input", "cached_tokens", "cached_input_cost", "cached input tokens"),
    ("cache-write", "cache_write_tokens", "cache_write_cost", "cache write tokens"),
    ("output", "completion_tokens", "output_cost", "output tokens"),
)

_GRAIN = ("org_id", "day", "team_id", "feature", "endpoint", "model", "provider")
_SUMS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "input_cost",
    "cached_input_cost",
    "cache_write_cost",
    "output_cost",
    "cost",
    "eval_attempts",
    "eval_cost",
)
_KIND_PROVIDER = {ProviderKind.AZURE: "Microsoft", ProviderKind.ANTHROPIC: "Anthropic"}
_KIND_SERVICE = {ProviderKind.AZURE: "Azure OpenAI Service", ProviderKind.ANTHROPIC: "Claude API"}
_TEXT_COLUMNS = ("x_Feature", "x_Endpoint", "ChargeDescription", "SkuId", "x_Model")
ZERO = Decimal(0)
CHUNK = 2000


@dataclass(frozen=True)
class FocusQuery:
    start: date  # first UTC day, inclusive
    end: date  # last UTC day, inclusive
    include_evaluation: bool = False


@dataclass(frozen=True)
class ProviderNames:
    provider: str
    publisher: str
    invoice_issuer: str
    service: str


def provider_names(provider: Provider | None, fallback: str) -> ProviderNames:
    """Display names of a configured provider: ``ProviderName`` from its kind (the OpenAI API
    itself when an OpenAI-compatible provider points at api.openai.com, its slug otherwise);
    ``PublisherName`` and ``InvoiceIssuerName`` from its ``publisher`` / ``invoice_issuer`` when
    set (Azure bills for OpenAI's models: provider and issuer Microsoft, publisher OpenAI)."""
    if provider is None:
        name = fallback or "Unknown"
        return ProviderNames(name, name, name, f"{name} API")
    if provider.kind in _KIND_PROVIDER:
        name = _KIND_PROVIDER[provider.kind]
    elif (urlsplit(provider.base_url).hostname or "").endswith("openai.com"):
        name = "OpenAI"
    else:
        name = provider.slug
    return ProviderNames(
        provider=name,
        publisher=provider.publisher or name,
        invoice_issuer=provider.invoice_issuer or name,
        service=_KIND_SERVICE.get(provider.kind, f"{name} API"),
    )


def _utc(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month_bounds(day: date) -> tuple[str, str]:
    first = day.replace(day=1)
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return _stamp(_utc(first)), _stamp(_utc(after))


class _Lookups:
    """Orgs, teams and providers by id, loaded once per organisation the rows touch."""

    def __init__(self) -> None:
        self.orgs: dict[int, Organization] = {}
        self.teams: dict[int, Team] = {}
        self.providers: dict[tuple[int, str], Provider] = {}

    def org(self, org_id: int) -> Organization:
        if org_id not in self.orgs:
            self.orgs[org_id] = Organization.objects.get(pk=org_id)
            self.teams.update({t.pk: t for t in Team.objects.filter(org_id=org_id)})
            self.providers.update(
                {(org_id, p.slug): p for p in Provider.objects.filter(org_id=org_id)}
            )
        return self.orgs[org_id]


def focus_rows(queryset: QuerySet[HourlySpend], query: FocusQuery) -> Iterator[dict]:
    """FOCUS rows (column -> string) of the hour rows in ``queryset`` (already scoped to whoever
    asked) over the UTC days ``query.start..query.end``, in grain order."""
    grouped = (
        queryset.filter(hour__gte=_utc(query.start), hour__lt=_utc(query.end + timedelta(days=1)))
        .annotate(day=TruncDay("hour", tzinfo=UTC))
        .values(*_GRAIN)
        .annotate(**{name: Sum(name) for name in _SUMS})
        .order_by(*_GRAIN)
    )
    lookups = _Lookups()
    for r in grouped.iterator(chunk_size=CHUNK):
        yield from _grain_rows(r, lookups, include_evaluation=query.include_evaluation)


def _grain_rows(r: dict, lookups: _Lookups, *, include_evaluation: bool) -> Iterator[dict]:
    org = lookups.org(r["org_id"])
    day = r["day"]
    day = day.date() if isinstance(day, datetime) else date.fromisoformat(str(day)[:10])
    team = lookups.teams.get(r["team_id"]) if r["team_id"] else None
    team_slug = team.slug if team else (f"#{r['team_id']}" if r["team_id"] else "")
    names = provider_names(lookups.providers.get((org.pk, r["provider"])), r["provider"])
    model = r["model"] or "unknown"
    billing_start, billing_end = _month_bounds(day)
    tags = {"org": org.slug, "team": team_slug, "feature": r["feature"], "endpoint": r["endpoint"]}
    common = {
        "BillingAccountId": org.slug,
        "BillingAccountName": org.name,
        "BillingCurrency": org.currency,
        "BillingPeriodEnd": billing_end,
        "BillingPeriodStart": billing_start,
        "ChargeCategory": "Usage",
        "ChargeClass": "",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": _stamp(_utc(day + timedelta(days=1))),
        "ChargePeriodStart": _stamp(_utc(day)),
        "InvoiceIssuerName": names.invoice_issuer,
        "PricingCategory": "Standard",
        "ProviderName": names.provider,
        "PublisherName": names.publisher,
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": names.service,
        "ServiceSubcategory": "Generative AI",
        "SubAccountId": f"{org.slug}/{team_slug}" if team_slug else "",
        "SubAccountName": (team.name if team else team_slug),
        "Tags": json.dumps({k: v for k, v in tags.items() if v}, sort_keys=True),
        "x_Team": team_slug,
        "x_Feature": r["feature"],
        "x_Endpoint": r["endpoint"],
        "x_Model": r["model"],
        "x_Evaluation": "false",
    }
    counts = {
        "input_tokens": max(
            0,
            (r["prompt_tokens"] or 0) - (r["cached_tokens"] or 0) - (r["cache_write_tokens"] or 0),
        ),
        "cached_tokens": r["cached_tokens"] or 0,
        "cache_write_tokens": r["cache_write_tokens"] or 0,
        "completion_tokens": r["completion_tokens"] or 0,
    }
    attributed = ZERO
    for sku, token_column, cost_column, words in DIRECTIONS:
        tokens, cost = counts[token_column], Decimal(r[cost_column] or 0)
        attributed += cost
        if tokens or cost:
            yield _row(
                common, cost, tokens, "Tokens", sku=f"{model}:{sku}", text=f"{model} {words}"
            )
    # The gateway writes cost = the sum of its directions; anything else is shown, not lost.
    rest = Decimal(r["cost"] or 0) - attributed
    if rest:
        yield _row(common, rest, 0, "Tokens", sku=f"{model}:other", text=f"{model} other usage")
    eval_attempts, eval_cost = r["eval_attempts"] or 0, Decimal(r["eval_cost"] or 0)
    if include_evaluation and (eval_attempts or eval_cost):
        row = _row(
            common,
            eval_cost,
            eval_attempts,
            "Requests",
            sku=f"{model}:evaluation",
            text=f"{model} evaluation (shadow) requests",
        )
        row["x_Evaluation"] = "true"
        yield row


def _row(common: dict, cost: Decimal, quantity: int, unit: str, *, sku: str, text: str) -> dict:
    amount = money(cost)
    return {
        **common,
        "BilledCost": amount,
        "ChargeDescription": text,
        "ConsumedQuantity": str(quantity) if quantity else "",
        "ConsumedUnit": unit if quantity else "",
        "ContractedCost": amount,
        "EffectiveCost": amount,
        "ListCost": amount,
        "PricingQuantity": str(quantity),
        "PricingUnit": unit,
        "SkuId": sku,
    }


def _safe(text: str) -> str:
    # A cell starting with one of these is a formula to a spreadsheet (CSV injection); feature
    # and endpoint names come from request headers.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def focus_csv(rows: Iterable[dict]) -> Iterator[str]:
    """The header line, then one CSV line per row (a generator: feed it to a streaming
    response or a file)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(values) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(COLUMNS)
    for row in rows:
        for column in _TEXT_COLUMNS:
            row[column] = _safe(row[column])
        yield line(row[c] for c in COLUMNS)
