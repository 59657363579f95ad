"""FOCUS export: spend as a FinOps Open Cost and Usage Specification dataset, FOCUS 1.3 by default
and 1.2 on request (``FocusQuery.focus_version``).

Grain: one row per UTC day x team x feature x endpoint x model (and its provider) x price
window x token direction (input, cached input, cache write, output). A day is cut at each price
change of its model (``focus_prices``), so every row carries exactly one catalog price, and the
row's ChargePeriodStart/End are the part of the day that price was in force. Rows come from the
hour rollups (``HourlySpend``), except an hour a price change cuts, which is read from the
ledger rows themselves, and evaluation (shadow) spend, which the rollups keep without its tokens
(``focus_cells``). They are streamed: read off database cursors in chunks, one origin charge in
memory at a time, written out as CSV lines.

Money: every cost column is the ledger's sum at its full precision (12 places, fixed point,
unrounded), so the BilledCost of all rows equals the ledger's spend over the same UTC days to the
last digit. The gateway bills at catalog price with no discount or commitment, so
``ListCost == ContractedCost == BilledCost == EffectiveCost`` and the unit prices are the
catalog's. Tokens are ConsumedQuantity (``Tokens``); PricingQuantity is in the unit providers
publish prices in (``1000000 Tokens``) and is *the quantity the cost prices*: ``ListCost /
ListUnitPrice`` with the fewest decimal places for which ``ListUnitPrice x PricingQuantity``,
rounded half-even to 12 places, gives ``ListCost`` back exactly (the documented rounding rule).
For costs the gateway priced at that rate (all of them, in practice) it is the token count / 1e6
exactly; it differs from ConsumedQuantity only where the ledger counted tokens it did not price
at the rate (the admission bound of a call lost in flight).

SKUs (FOCUS's AI guidance): the SKU is the model's token direction (SkuId ``gpt-4o:input``, SkuMeter
``Input Tokens``), the SKU price its catalog rate (SkuPriceId ``gpt-4o:input:on-demand``: stable
across price changes, as the specification wants; the rate in force is ListUnitPrice, the catalog
record ``x_PriceEffectiveFrom``). A cost no direction carries (a call lost in flight, metered at
its admission upper bound) is one Adjustment row per cell, without SKU, price or quantity.

FOCUS 1.3 adds ServiceProviderName and HostProviderName (ProviderName and PublisherName stay,
deprecated) and describes the team/feature split with its split-cost-allocation columns: the
origin charge is a team's (SubAccount's) charge for one SKU price and charge period; the gateway
allocates it to the features and endpoints whose calls it metered (AllocatedMethodId
``llmfinops/metered-calls``, AllocatedRatio = the share of the cost).

The rows come from a queryset the caller scoped and never reach past it: the API's through
``reports.selectors.hourly_spend_list_for_user``, the ``export_focus`` command's through
``reports.selectors.dangerously_org_hourly_spend``. ``docs/reports.md`` ("FOCUS export") tables
every column of both versions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import QuerySet

from reports.exports.focus_cells import origins
from reports.exports.focus_columns import FOCUS_VERSION, FOCUS_VERSIONS, columns, utc
from reports.exports.focus_invoice import InvoiceShares
from reports.exports.focus_prices import PricePlan
from reports.exports.focus_rows import Lookups, origin_rows, provider_names
from reports.models import HourlySpend

__all__ = [
    "COLUMNS",
    "FOCUS_VERSION",
    "FOCUS_VERSIONS",
    "FocusQuery",
    "columns",
    "focus_csv",
    "focus_rows",
    "provider_names",
]

COLUMNS = columns(FOCUS_VERSION)
# A cell starting with one of these is a formula to a spreadsheet (CSV injection); feature and
# endpoint names come from request headers, model names from the catalog.
_TEXT_COLUMNS = (
    "x_Feature",
    "x_Endpoint",
    "x_Model",
    "ChargeDescription",
    "SkuId",
    "SkuPriceId",
    "AllocatedResourceName",
)


@dataclass(frozen=True)
class FocusQuery:
    start: date  # first UTC day, inclusive
    end: date  # last UTC day, inclusive
    include_evaluation: bool = False
    focus_version: str = FOCUS_VERSION

    def __post_init__(self) -> None:
        if self.focus_version not in FOCUS_VERSIONS:
            raise ValueError(f"FOCUS version {self.focus_version!r} is not one of {FOCUS_VERSIONS}")


def focus_rows(queryset: QuerySet[HourlySpend], query: FocusQuery) -> Iterator[dict]:
    """FOCUS rows (column -> text, empty for null) of the hour rows in ``queryset`` (already
    scoped to whoever asked) over the UTC days ``query.start..query.end``, in UTC day order."""
    lo, hi = utc(query.start), utc(query.end + timedelta(days=1))
    org_ids = queryset.filter(hour__gte=lo, hour__lt=hi).values_list("org_id", flat=True)
    plan = PricePlan(org_ids=set(org_ids.distinct()), lo=lo, hi=hi)
    lookups = Lookups()
    invoices = InvoiceShares(query.start, query.end + timedelta(days=1))
    for origin in origins(
        queryset, plan, lo=lo, hi=hi, include_evaluation=query.include_evaluation
    ):
        yield from origin_rows(origin, lookups, plan, query.focus_version, invoices)


def _safe(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def focus_csv(rows: Iterable[dict], *, focus_version: str = FOCUS_VERSION) -> Iterator[str]:
    """The header line of ``focus_version``, then one CSV line per row (a generator: feed it to
    a streaming response or a file). An empty cell is a null."""
    header = columns(focus_version)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(values) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(header)
    for row in rows:
        for column in _TEXT_COLUMNS:
            row[column] = _safe(row[column])
        yield line(row[c] for c in header)
