"""Money as text: every formatter of USD amounts lives here, named by where its text goes.

Amounts are ``Decimal`` end to end; the ledger keeps 12 decimal places. The API, CSV and FOCUS
exports carry the full precision (:func:`money`); pages and emails round for people. The display
rules are still three (``usd`` for emails and statements, ``usd_six`` for dashboard tables,
``usd_exact`` for the catalog and keys pages); they are to become one house format.
"""

from __future__ import annotations

from decimal import Decimal

TWELVE_PLACES = Decimal("1e-12")
SIX_PLACES = Decimal("0.000001")
CENT = Decimal("0.01")


def money(value) -> str:
    """A cost as a fixed-point string at the ledger's precision (12 places), never exponent;
    ``None`` counts as zero."""
    return format(Decimal(value or 0).quantize(TWELVE_PLACES), "f")


def money_or_none(value: Decimal | None) -> str | None:
    """:func:`money`, but ``None`` stays ``None`` (no data is not zero)."""
    return None if value is None else format(Decimal(value).quantize(TWELVE_PLACES), "f")


def usd(value) -> str:
    """Money for people: cents from a dollar up, micro-dollars below (LLM calls are cheap)."""
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
