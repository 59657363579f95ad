"""Price windows of the FOCUS export, so that every row carries exactly one catalog price.

A model's price (``gateway.ModelPrice``) applies from its ``effective_from`` on, and the gateway
prices each call at the rate in force when the call started (``gateway.pricing.price_at``). Over
the export's range ``[lo, hi)`` each model of the catalog has numbered windows: window 0 is the
price in force at ``lo`` (none before the model's first price: the gateway charged nothing),
window ``k`` starts at the ``k``-th price change inside the range. Rows are grouped by window:

- hour rollups are assigned to a window by their hour (``PricePlan.case("hour")``): a change at
  a whole hour starts the window at that hour;
- a change inside an hour cuts that hour, which no rollup can; those *split cells* (org, model,
  hour) are left out of the rollup read and read from the ledger rows themselves, each assigned
  to a window by its ``started_at`` (``PricePlan.case("started_at")``), so the cut is exact.

A model the catalog no longer knows (deleted or renamed) has one window and no price; its rows
derive their unit price from the ledger (``priced``).
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from django.db.models import Case, IntegerField, Q, Value, When
from django.db.models.expressions import Expression

from gateway.models import LLMModel, ModelPrice
from reports.exports.focus_columns import MTOK, TWELVE_PLACES, Direction

HOUR = timedelta(hours=1)
_PRICE_FIELDS = (
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "cache_write_usd_per_mtok",
)


@dataclass(frozen=True)
class PricePoint:
    """One catalog price: USD per million tokens of each direction, from ``effective_from``."""

    effective_from: datetime | None  # None: no price in force (the gateway charged nothing)
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal

    def rate(self, direction: Direction) -> Decimal:
        return getattr(self, direction.price)


NO_PRICE = PricePoint(None, Decimal(0), Decimal(0), Decimal(0), Decimal(0))


def _point(row: dict) -> PricePoint:
    inp = Decimal(row["input_usd_per_mtok"])
    # no separate price: the provider bills these at the input rate (as gateway.pricing does)
    cached, written = row["cached_input_usd_per_mtok"], row["cache_write_usd_per_mtok"]
    return PricePoint(
        effective_from=row["effective_from"],
        input=inp,
        output=Decimal(row["output_usd_per_mtok"]),
        cached_input=inp if cached is None else Decimal(cached),
        cache_write=inp if written is None else Decimal(written),
    )


@dataclass(frozen=True)
class Window:
    number: int
    start: datetime | None  # None: open (began before the export)
    end: datetime | None  # None: open (lasts past the export)
    price: PricePoint | None  # None: the model is not in the catalog


def floor_hour(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


def ceil_hour(instant: datetime) -> datetime:
    floor = floor_hour(instant)
    return floor if floor == instant else floor + HOUR


class PricePlan:
    """The price windows of every model of the organisations ``org_ids`` over ``[lo, hi)``."""

    def __init__(self, *, org_ids: Iterable[int], lo: datetime, hi: datetime) -> None:
        org_ids = list(org_ids)
        history: dict[tuple[int, str], list[PricePoint]] = defaultdict(list)
        for org_id, name in LLMModel.objects.filter(org_id__in=org_ids).values_list(
            "org_id", "name"
        ):
            history[(org_id, name)] = []
        prices = (
            ModelPrice.objects.filter(model__org_id__in=org_ids)
            .values("model__org_id", "model__name", "effective_from", *_PRICE_FIELDS)
            .order_by("model__org_id", "model__name", "effective_from")
        )
        for row in prices:
            history[(row["model__org_id"], row["model__name"])].append(_point(row))
        self._windows = {key: _windows(points, lo, hi) for key, points in history.items()}

    def window(self, org_id: int, model: str, number: int) -> Window:
        windows = self._windows.get((org_id, model))
        if windows is None:
            return Window(number, None, None, None)
        return windows[number]

    def _changes(self) -> list[tuple[int, str, Window]]:
        return [
            (org_id, model, window)
            for (org_id, model), windows in sorted(self._windows.items())
            for window in windows[1:]
        ]

    def case(self, field: str) -> Expression:
        """The window number of a rollup row (``field="hour"``: by its hour) or of a ledger row
        (``field="started_at"``) as an SQL expression; 0 where no change applies."""
        whens = []
        for org_id, model, window in reversed(self._changes()):  # the latest change first
            bound = ceil_hour(window.start) if field == "hour" else window.start
            condition = Q(org_id=org_id, model=model, **{f"{field}__gte": bound})
            whens.append(When(condition, then=Value(window.number)))
        if not whens:
            return Value(0, output_field=IntegerField())
        return Case(*whens, default=Value(0), output_field=IntegerField())

    def split_cells(self) -> list[tuple[int, str, datetime]]:
        """(org, model, hour) of every price change inside an hour."""
        cells = {
            (org_id, model, floor_hour(window.start))
            for org_id, model, window in self._changes()
            if floor_hour(window.start) != window.start
        }
        return sorted(cells)


def _windows(points: list[PricePoint], lo: datetime, hi: datetime) -> list[Window]:
    in_force = NO_PRICE
    changes = []
    for point in points:
        if point.effective_from <= lo:
            in_force = point
        elif point.effective_from < hi:
            changes.append(point)
    bounds = [None] + [p.effective_from for p in changes] + [None]
    prices = [in_force, *changes]
    return [Window(i, bounds[i], bounds[i + 1], price) for i, price in enumerate(prices)]


# --- unit price and pricing quantity -------------------------------------------------------------


def quantity_for(cost: Decimal, rate: Decimal) -> Decimal:
    """The pricing quantity ``cost / rate``, with the fewest decimal places for which
    ``rate x quantity``, rounded half-even to 12 places (the ledger's precision), gives back
    ``cost`` exactly. Costs the gateway priced at ``rate`` give the token count / 1e6 (at most
    six places when the rate has at most six, as published prices do)."""
    with decimal.localcontext() as context:
        context.prec = 60
        exact = cost / rate
        for places in range(31):
            quantity = exact.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
            if (quantity * rate).quantize(TWELVE_PLACES, ROUND_HALF_EVEN) == cost:
                return quantity
        return exact


def priced(cost: Decimal, rate: Decimal | None, tokens: int) -> tuple[Decimal, Decimal] | None:
    """(ListUnitPrice, PricingQuantity) of a row of ``tokens`` tokens that cost ``cost``: the
    catalog ``rate`` (USD per million tokens) and the quantity it prices, in millions of tokens.

    Without a usable catalog rate (the model left the catalog, or a zero rate contradicted by a
    charge) the rate is the ledger's own, ``cost / tokens``; ``None`` when there is neither (a
    cost without tokens: the caller books it as an adjustment)."""
    if rate is not None and rate > 0:
        return rate, quantity_for(cost, rate)
    if rate is not None and not cost:
        return rate, Decimal(tokens) / MTOK
    if tokens > 0:
        with decimal.localcontext() as context:
            context.prec = 60
            implied = cost * MTOK / tokens
        rate = implied.quantize(TWELVE_PLACES) or implied.quantize(Decimal("1e-24"))
        if not rate:
            return rate, Decimal(tokens) / MTOK
        return rate, quantity_for(cost, rate)
    return None
