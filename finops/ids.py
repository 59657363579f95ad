"""Row ids taken from a URL's query string.

``str.isdigit`` accepts non-ASCII digits (``"١"``) and ``int`` any length, but a primary key is a
64-bit integer: SQLite raises ``OverflowError`` and PostgreSQL ``NumericValueOutOfRange`` on a
larger one, which would answer a hostile query string with a 500. Parse through here instead.
"""

from __future__ import annotations

MAX_ID = 2**63 - 1  # BigAutoField


def id_parse(value: str | None) -> int | None:
    """The id ``value`` names, or None when it cannot name a row (not ASCII digits, 0, too big)."""
    if not value or len(value) > 19 or not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None
