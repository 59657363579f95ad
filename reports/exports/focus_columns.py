"""The FOCUS export's columns per version, its fixed vocabulary, and the text of its cells.

No database here: ``reports.apis`` and the ``export_focus`` command import the versions from this
module, ``focus_rows`` the rest. ``docs/reports.md`` ("FOCUS export") tables every column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

FOCUS_VERSIONS: tuple[str, ...] = ("1.2", "1.3")
FOCUS_VERSION = "1.3"  # the default; 1.2 stays selectable

# FOCUS 1.2 columns the export carries, alphabetically (as the specification lists them).
_FOCUS_1_2: tuple[str, ...] = (
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
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)
# What FOCUS 1.3 adds for us: the split-cost-allocation columns and the two provider columns
# that replace ProviderName / PublisherName (both kept: 1.3 deprecates them, it does not drop them).
_FOCUS_1_3_ADDED: tuple[str, ...] = (
    "AllocatedMethodDetails",
    "AllocatedMethodId",
    "AllocatedResourceId",
    "AllocatedResourceName",
    "AllocatedTags",
    "HostProviderName",
    "ServiceProviderName",
)
CUSTOM_COLUMNS: tuple[str, ...] = (
    "x_Team",
    "x_Feature",
    "x_Endpoint",
    "x_Model",
    "x_Evaluation",
    "x_PriceEffectiveFrom",
    "x_ProviderBilledCost",
)
FOCUS_COLUMNS: dict[str, tuple[str, ...]] = {
    "1.2": _FOCUS_1_2,
    "1.3": tuple(sorted(_FOCUS_1_2 + _FOCUS_1_3_ADDED)),
}


def columns(version: str) -> tuple[str, ...]:
    """The header of a ``version`` export: FOCUS columns first, then the custom ``x_`` ones."""
    return FOCUS_COLUMNS[version] + CUSTOM_COLUMNS


# --- vocabulary ----------------------------------------------------------------------------------

SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"
PRICING_CURRENCY = "USD"  # the catalog's prices are USD per million tokens (ModelPrice)
PRICING_UNIT = "1000000 Tokens"  # as providers publish them
CONSUMED_UNIT = "Tokens"
PRICE_TERM = "on-demand"  # the one pricing term of the catalog: SkuPriceId = SkuId + term
# Tag keys the gateway defines carry its own prefix (FOCUS Tags-C-012-M).
TAG_PREFIX = "llmfinops/"
# The split-cost-allocation method of FOCUS 1.3 rows (docs/reports.md documents it).
ALLOCATION_METHOD = "llmfinops/metered-calls"
MTOK = Decimal(1_000_000)
TWELVE_PLACES = Decimal("1e-12")


@dataclass(frozen=True)
class Direction:
    """One token direction of the ledger: a SKU of each model, priced on its own."""

    sku: str  # in SkuId: ``<model>:<sku>``
    tokens: str  # token measure of a cell
    cost: str  # cost measure of a cell
    price: str  # PricePoint attribute (USD per million tokens)
    words: str  # in ChargeDescription
    meter: str  # SkuMeter
    token_type: str  # x_TokenType in SkuPriceDetails


DIRECTIONS: tuple[Direction, ...] = (
    Direction("input", "input_tokens", "input_cost", "input", "input tokens", "Input Tokens",
              "Input"),
    Direction("cached-input", "cached_tokens", "cached_input_cost", "cached_input",
              "cached input tokens", "Cached Input Tokens", "Cached Input"),
    Direction("cache-write", "cache_write_tokens", "cache_write_cost", "cache_write",
              "cache write tokens", "Cache Write Tokens", "Cache Write"),
    Direction("output", "completion_tokens", "output_cost", "output", "output tokens",
              "Output Tokens", "Output"),
)  # fmt: skip


# --- cell text -----------------------------------------------------------------------------------


def utc(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def stamp(instant: datetime | None) -> str:
    """ISO 8601 in UTC with ``Z`` (FOCUS DateTimeFormat); empty (null) for ``None``."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if instant else ""


def month_bounds(day: date) -> tuple[datetime, datetime]:
    first = day.replace(day=1)
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return utc(first), utc(after)


def decimal_text(value: Decimal) -> str:
    """A FOCUS Decimal cell: fixed point, no exponent, no trailing zeros, and always a decimal
    point (``1100.0``, never ``1100``): a CSV reader types a column of bare integers as an
    integer column, and the validator then fails its Decimal type check."""
    text = format(value.normalize(), "f") if value else "0"
    return text if "." in text else f"{text}.0"


def json_object(values: dict) -> str:
    """A FOCUS KeyValueFormat cell: a JSON object, keys sorted, values scalars."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def tags(**values: str) -> dict[str, str]:
    """Gateway-defined tags with their prefix; empty values are left out."""
    return {f"{TAG_PREFIX}{key}": value for key, value in values.items() if value}
