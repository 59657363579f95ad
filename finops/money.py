"""Money as text: every formatter of USD amounts lives here, named by where its text goes.

Amounts are ``Decimal`` end to end; the ledger keeps 12 decimal places. The API, CSV and FOCUS
exports carry the full precision (:func:`money`). Pages show one house format:

- :func:`usd_display` for an amount: to the cent with thousands separators (``$5,000.00``,
  ``-$1.50``), rounded half-even; an amount under a cent (but not zero) with two significant
  digits (``$0.0013``), since LLM calls cost fractions of a cent; ``$0.00`` for zero.
- :func:`usd_per_mtok` for a unit price: USD per million tokens, up to four decimals with
  trailing zeros trimmed to the cent (``$2.50 / Mtok``, ``$0.075 / Mtok``).
- :func:`percent_display` for a percentage: one decimal (``12.5%``), ``0%`` for zero, ``<0.1%``
  for a positive share that would round to zero (and ``>-0.1%`` for its negative).

``usd`` and ``usd_six`` remain for the emails, alert subjects and evaluation pages that have not
moved to the house format yet; ``usd_exact`` for messages that quote a price in full.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

TWELVE_PLACES = Decimal("1e-12")
SIX_PLACES = Decimal("0.000001")
CENT = Decimal("0.01")
_FOUR_PLACES = Decimal("0.0001")
_TENTH = Decimal("0.1")


def money(value) -> str:
    """A cost as a fixed-point string at the ledger's precision (12 places), never exponent;
    ``None`` counts as zero."""
    return format(Decimal(value or 0).quantize(TWELVE_PLACES), "f")


def money_or_none(value: Decimal | None) -> str | None:
    """:func:`money`, but ``None`` stays ``None`` (no data is not zero)."""
    return None if value is None else format(Decimal(value).quantize(TWELVE_PLACES), "f")


def _decimal(value) -> Decimal | None:
    """A number from a Decimal, int, float or numeric string; ``None`` for None, ``""`` or text
    that is no number."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def usd_display(value) -> str:
    """An amount for a page: ``$5,000.00``, ``-$1.50``, ``$0.0013`` under a cent, ``$0.00`` for
    zero; empty for ``None`` or ``""`` (no data is not zero)."""
    number = _decimal(value)
    if number is None:
        return ""
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    if magnitude == 0:
        return "$0.00"
    if magnitude >= CENT:
        return f"{sign}${magnitude.quantize(CENT, rounding=ROUND_HALF_EVEN):,.2f}"
    # Under a cent: two significant digits (0.0013427 -> 0.0013), never rounded to $0.00.
    quantum = Decimal(1).scaleb(magnitude.adjusted() - 1)
    small = magnitude.quantize(quantum, rounding=ROUND_HALF_EVEN)
    if small >= CENT:  # 0.00999 rounds up to a cent
        return f"{sign}$0.01"
    return f"{sign}${format(small, 'f')}"


def usd_per_mtok(value) -> str:
    """A unit price per million tokens for a page: ``$2.50 / Mtok`` (up to four decimals, trailing
    zeros trimmed to the cent); empty for ``None``."""
    number = _decimal(value)
    if number is None:
        return ""
    text = format(abs(number).quantize(_FOUR_PLACES, rounding=ROUND_HALF_EVEN), ",f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    sign = "-" if number < 0 and (whole != "0" or frac.strip("0")) else ""
    return f"{sign}${whole}.{frac} / Mtok"


def percent_display(value) -> str:
    """A percentage (the number of percent, ``12.5`` for 12.5%) for a page: one decimal,
    ``0%`` for zero, ``<0.1%`` for a positive value that would round to zero; empty for
    ``None``."""
    number = _decimal(value)
    if number is None:
        return ""
    if number == 0:
        return "0%"
    rounded = number.quantize(_TENTH, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        return "<0.1%" if number > 0 else ">-0.1%"
    return f"{rounded:,f}%"


def share_display(share) -> str:
    """A 0..1 share as :func:`percent_display`; empty for ``None``."""
    number = _decimal(share)
    return "" if number is None else percent_display(number * 100)


def usd(value) -> str:
    """Money for emails and alert subjects: cents from a dollar up, micro-dollars below."""
    value = Decimal(value or 0)
    places = CENT if abs(value) >= 1 else SIX_PLACES
    return format(value.quantize(places), "f")


def usd_six(value: str | None) -> str:
    """A JSON money string at six places; empty for ``None``."""
    if value is None:
        return ""
    return format(Decimal(value).quantize(SIX_PLACES), "f")


def usd_exact(value: Decimal | None) -> str:
    """A USD amount, exact (up to the ledger's 12 places), without trailing zeros beyond cents
    and never in exponent notation; empty for ``None``."""
    if value is None:
        return ""
    text = format(Decimal(value).quantize(TWELVE_PLACES), "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"
