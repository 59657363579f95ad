"""FOCUS rows of one origin (``focus_cells.Origin``): per cell (feature x endpoint) one Usage
row per token direction, and an Adjustment row for any cost no direction carries.

The columns and their values are tabled in ``docs/reports.md`` ("FOCUS export"); the module
docstring of ``reports.exports.focus`` explains the design (prices, rounding, names, allocation).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from urllib.parse import urlencode, urlsplit

from finops.money import money
from gateway.models import Provider, ProviderKind
from reports.exports.focus_cells import Cell, Origin
from reports.exports.focus_columns import (
    ALLOCATION_METHOD,
    CONSUMED_UNIT,
    DIRECTIONS,
    PRICE_TERM,
    PRICING_CURRENCY,
    PRICING_UNIT,
    SERVICE_CATEGORY,
    SERVICE_SUBCATEGORY,
    TWELVE_PLACES,
    Direction,
    decimal_text,
    json_object,
    month_bounds,
    stamp,
    tags,
    utc,
)
from reports.exports.focus_invoice import InvoiceShares
from reports.exports.focus_prices import PricePlan, Window, priced
from teams.models import Organization, Team

_KIND_HOST = {ProviderKind.AZURE: "Microsoft", ProviderKind.ANTHROPIC: "Anthropic"}
_KIND_SERVICE = {ProviderKind.AZURE: "Azure OpenAI Service", ProviderKind.ANTHROPIC: "Claude API"}
ONE = Decimal(1)


@dataclass(frozen=True)
class ProviderNames:
    """Who sells, runs, produces and invoices a provider's API (FOCUS's participating entities).

    The gateway resells nothing: the organisation buys from the provider with its own
    credential, so whoever invoices it is the one that sells it the service. That is the API's
    operator, or a reseller when the provider has an ``invoice_issuer`` (FOCUS's purchase "via
    an MSP": the MSP is provider and invoice issuer, the cloud the host). The seller is always
    the invoice issuer, so BilledCost is never read as a marketplace charge."""

    seller: str  # ProviderName (1.2, deprecated in 1.3), ServiceProviderName (1.3)
    host: str  # HostProviderName (1.3): who runs the API
    publisher: str  # PublisherName: who produced the models
    invoice_issuer: str  # InvoiceIssuerName
    service: str  # ServiceName


def provider_names(provider: Provider | None, fallback: str) -> ProviderNames:
    """Names of a configured provider: the host from its kind (the OpenAI API itself when an
    OpenAI-compatible provider points at api.openai.com, its slug otherwise); the publisher its
    ``publisher`` when set (Azure serves OpenAI's models); the seller and invoice issuer its
    ``invoice_issuer`` when set (a reseller), the host otherwise. A provider that no longer
    exists shows the slug the ledger recorded in all of them."""
    if provider is None:
        name = fallback or "Unknown"
        return ProviderNames(name, name, name, name, f"{name} API")
    if provider.kind in _KIND_HOST:
        host = _KIND_HOST[provider.kind]
    elif (urlsplit(provider.base_url).hostname or "").endswith("openai.com"):
        host = "OpenAI"
    else:
        host = provider.slug
    seller = provider.invoice_issuer or host
    return ProviderNames(
        seller=seller,
        host=host,
        publisher=provider.publisher or host,
        invoice_issuer=seller,
        service=_KIND_SERVICE.get(provider.kind, f"{host} API"),
    )


class Lookups:
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


@dataclass
class _Line:
    cell: Cell
    direction: Direction | None  # None: the Adjustment of a cost without a token breakdown
    cost: Decimal
    tokens: int
    pricing: tuple[Decimal, Decimal] | None  # (unit price, pricing quantity)
    ratio: Decimal = ONE


def _lines(origin: Origin, window: Window) -> list[_Line]:
    lines = []
    for cell in origin.cells:
        attributed = Decimal(0)
        for direction in DIRECTIONS:
            tokens, cost = cell.tokens(direction.tokens), cell.sums[direction.cost]
            if not tokens and not cost:
                continue
            rate = window.price.rate(direction) if window.price else None
            pricing = priced(cost, rate, tokens)
            if pricing is None:
                continue  # a cost without tokens or price: part of the adjustment below
            attributed += cost
            lines.append(_Line(cell, direction, cost, tokens, pricing))
        # the gateway writes cost = the sum of its directions, except for calls lost in flight
        # (cost = their admission upper bound, no direction): shown, never dropped
        rest = cell.sums["cost"] - attributed
        if rest:
            lines.append(_Line(cell, None, rest, 0, None))
    return lines


def _allocate(lines: list[_Line]) -> None:
    """AllocatedRatio of each line: its share of its origin charge (the lines of the same
    SKU, or the adjustment), by cost (by tokens where the charge is zero), rounded half-even to
    12 places; the largest share takes the rounding remainder, so the shares sum to exactly 1."""
    by_kind: dict[str | None, list[_Line]] = defaultdict(list)
    for line in lines:
        by_kind[line.direction.sku if line.direction else None].append(line)
    for group in by_kind.values():
        weights = [line.cost for line in group]
        if not sum(weights):
            weights = [Decimal(line.tokens) for line in group]
        if not sum(weights):
            weights = [ONE for _ in group]
        total = sum(weights)
        for line, weight in zip(group, weights, strict=True):
            line.ratio = (weight / total).quantize(TWELVE_PLACES, ROUND_HALF_EVEN)
        largest = max(group, key=lambda line: line.ratio)
        largest.ratio += ONE - sum(line.ratio for line in group)


def _allocation(org: Organization, team_slug: str, line: _Line) -> dict:
    feature, endpoint = line.cell.allocated
    element: dict = {"AllocatedRatio": float(line.ratio)}  # <= 12 places: float text is exact
    if line.direction is not None:
        element.update(UsageQuantity=line.tokens, UsageUnit=CONSUMED_UNIT)
    account = f"{org.slug}/{team_slug}" if team_slug else org.slug
    return {
        "AllocatedMethodId": ALLOCATION_METHOD,
        "AllocatedMethodDetails": json_object({"Elements": [element]}),
        "AllocatedResourceId": f"{account}?{urlencode({'feature': feature, 'endpoint': endpoint})}",
        "AllocatedResourceName": " ".join(p for p in (feature or "(no feature)", endpoint) if p),
        "AllocatedTags": json_object(tags(feature=feature, endpoint=endpoint)),
    }


def _priced_columns(model: str, line: _Line, evaluation: bool) -> dict:
    direction = line.direction
    suffix = " (evaluation)" if evaluation else ""
    if direction is None:
        return {
            "ChargeCategory": "Adjustment",
            "ChargeDescription": f"{model} usage without a token breakdown, estimated{suffix}",
        }
    unit_price, quantity = line.pricing
    unit = decimal_text(unit_price)
    sku = f"{model}:{direction.sku}"
    return {
        "ChargeCategory": "Usage",
        "ChargeDescription": f"{model} {direction.words}{suffix}",
        "ConsumedQuantity": decimal_text(Decimal(line.tokens)),
        "ConsumedUnit": CONSUMED_UNIT,
        "ContractedUnitPrice": unit,
        "ListUnitPrice": unit,
        "PricingCategory": "Standard",
        "PricingCurrencyContractedUnitPrice": unit,
        "PricingCurrencyListUnitPrice": unit,
        "PricingQuantity": decimal_text(quantity),
        "PricingUnit": PRICING_UNIT,
        "SkuId": sku,
        "SkuMeter": direction.meter,
        "SkuPriceDetails": json_object({"x_Model": model, "x_TokenType": direction.token_type}),
        "SkuPriceId": f"{sku}:{PRICE_TERM}",
    }


_NULLABLE = (
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
)


def origin_rows(
    origin: Origin, lookups: Lookups, plan: PricePlan, version: str, invoices: InvoiceShares
) -> Iterator[dict]:
    """The rows (column -> text, empty for null) of one origin, for FOCUS ``version``;
    ``invoices`` gives each its share of what the provider itself billed, where known."""
    org_id, day, team_id, model_name, provider_slug, number = origin.key
    org = lookups.org(org_id)
    team = lookups.teams.get(team_id) if team_id else None
    team_slug = team.slug if team else (f"#{team_id}" if team_id else "")
    provider = lookups.providers.get((org_id, provider_slug))
    names = provider_names(provider, provider_slug)
    window = plan.window(org_id, model_name, number)
    day_start, day_end = utc(day), utc(day + timedelta(days=1))
    billing_start, billing_end = month_bounds(day)
    model = model_name or "unknown"
    common = {
        "BillingAccountId": org.slug,
        "BillingAccountName": org.name,
        "BillingCurrency": org.currency,
        "BillingPeriodEnd": stamp(billing_end),
        "BillingPeriodStart": stamp(billing_start),
        "ChargeClass": "",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": stamp(min(day_end, window.end) if window.end else day_end),
        "ChargePeriodStart": stamp(max(day_start, window.start) if window.start else day_start),
        "HostProviderName": names.host,
        "InvoiceId": "",  # the gateway sees no invoice: the provider's is unknown to it
        "InvoiceIssuerName": names.invoice_issuer,
        "PricingCurrency": PRICING_CURRENCY,
        "ProviderName": names.seller,
        "PublisherName": names.publisher,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceName": names.service,
        "ServiceProviderName": names.seller,
        "ServiceSubcategory": SERVICE_SUBCATEGORY,
        "SubAccountId": f"{org.slug}/{team_slug}" if team_slug else "",
        "SubAccountName": (team.name if team else team_slug),
        "x_Team": team_slug,
        "x_Model": model_name,
        "x_Evaluation": "true" if origin.evaluation else "false",
        "x_PriceEffectiveFrom": stamp(window.price.effective_from if window.price else None),
        **dict.fromkeys(_NULLABLE, ""),
    }
    lines = _lines(origin, window)
    _allocate(lines)
    for line in lines:
        feature, endpoint = line.cell.allocated
        amount = money(line.cost)
        billed = (
            invoices.billed(
                provider,
                day=day,
                model_name=model_name,
                token_type=line.direction.price,
                cost=line.cost,
            )
            if line.direction is not None
            else None
        )
        row = {
            **common,
            "BilledCost": amount,
            "ContractedCost": amount,
            "EffectiveCost": amount,
            "ListCost": amount,
            "PricingCurrencyEffectiveCost": amount,
            "x_Feature": feature,
            "x_Endpoint": endpoint,
            "x_ProviderBilledCost": "" if billed is None else money(billed),
            **_priced_columns(model, line, origin.evaluation),
            **_allocation(org, team_slug, line),
        }
        if version == "1.2":  # no allocation: the feature and endpoint are tags of the row
            row["Tags"] = json_object(
                tags(org=org.slug, team=team_slug, feature=feature, endpoint=endpoint)
            )
        else:  # the origin's tags; the feature and endpoint are the allocated resource's
            row["Tags"] = json_object(tags(org=org.slug, team=team_slug))
        yield row
