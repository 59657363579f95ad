"""What the admin reports (``simulator.admin_reports``) share: query parameters (arrays
repeated, bare or with ``[]``), UTC time buckets and their pages, the opaque page cursor,
grouping the billed rows into buckets, and decimal text."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qsl

from simulator.wire import SimError

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86_400}
# bucket_width: (default limit, highest limit), for the usage reports of both APIs
USAGE_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
MAX_QUERY_VALUES = 1000


class Query:
    """A query string's parameters, each a list of its values (``name[]`` counts as ``name``)."""

    def __init__(self, raw: bytes) -> None:
        self.values: dict[str, list[str]] = {}
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        if len(pairs) > MAX_QUERY_VALUES:
            raise SimError(400, f"at most {MAX_QUERY_VALUES} query parameters", "invalid_value")
        for name, value in pairs:
            self.values.setdefault(name.removesuffix("[]"), []).append(value)

    def one(self, name: str) -> str | None:
        values = self.values.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise SimError(400, f"{name}: given more than once", "invalid_value", name)
        return values[0]

    def many(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def choices(self, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """The values of an enumerated array parameter, in ``allowed``'s order, no repeats."""
        given = self.many(name)
        for value in given:
            if value not in allowed:
                raise SimError(
                    400,
                    f"{name}: '{value}' is not one of {', '.join(allowed)}",
                    "invalid_value",
                    name,
                )
        return tuple(a for a in allowed if a in given)

    def integer(self, name: str, *, required: bool = False) -> int | None:
        raw = self.one(name)
        if raw is None:
            if required:
                raise SimError(
                    400, f"Missing query parameter '{name}'.", "missing_required_parameter", name
                )
            return None
        try:
            return int(raw)
        except ValueError:
            raise SimError(
                400, f"{name}: '{raw}' is not an integer", "invalid_value", name
            ) from None

    def width(self, allowed: tuple[str, ...]) -> tuple[str, int]:
        raw = self.one("bucket_width") or "1d"
        if raw not in allowed:
            raise SimError(
                400,
                f"bucket_width: '{raw}' is not one of {', '.join(allowed)}",
                "invalid_value",
                "bucket_width",
            )
        return raw, WIDTHS[raw]

    def limit(self, default: int, highest: int) -> int:
        value = self.integer("limit")
        if value is None:
            return default
        if not 1 <= value <= highest:
            raise SimError(400, f"limit: must be within 1..{highest}", "invalid_value", "limit")
        return value


# --- time buckets ----------------------------------------------------------------------------


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(name: str, raw: str) -> int:
    """An RFC 3339 timestamp (``Z`` or an offset; none means UTC) as unix seconds, rounded down."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise SimError(
            400, f"{name}: '{raw}' is not an RFC 3339 timestamp", "invalid_value", name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() // 1)


class Buckets:
    """One page of a report's buckets: their starts, and the cursor of the next page."""

    def __init__(self, start: int, stop: int, width: int, limit: int) -> None:
        """From ``start`` (aligned), at most ``limit`` buckets, none starting at ``stop`` or
        after."""
        self.width = width
        self.starts = list(range(start, min(stop, start + limit * width), width))
        following = start + limit * width
        self.next = following if following < stop else None

    def __iter__(self):
        return iter(self.starts)

    @property
    def span(self) -> tuple[int, int]:
        """[first second, last second + 1) of the page (an empty span without buckets)."""
        if not self.starts:
            return 0, 0
        return self.starts[0], self.starts[-1] + self.width


def page(*, first: int, stop: int, width: int, limit: int, cursor: int | None) -> Buckets:
    """The page of buckets from ``first`` (snapped to its bucket) up to ``stop`` (exclusive),
    none after the bucket of "now"; from the cursor's bucket when one is given."""
    first -= first % width
    now = int(time.time())
    stop = min(stop, now - now % width + width)
    if cursor is None:
        return Buckets(first, stop, width, limit)
    if cursor % width or not first <= cursor < stop:
        raise SimError(400, "page: not a cursor of this query", "invalid_value", "page")
    return Buckets(cursor, stop, width, limit)


def encode_cursor(start: int) -> str:
    return "page_" + base64.urlsafe_b64encode(start.to_bytes(8, "big", signed=True)).decode()


def decode_cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        blob = base64.urlsafe_b64decode(raw.removeprefix("page_").encode())
    except (binascii.Error, ValueError):
        blob = b""
    if len(blob) != 8 or not raw.startswith("page_"):
        raise SimError(400, "page: not a cursor of this query", "invalid_value", "page")
    return int.from_bytes(blob, "big", signed=True)


def bucket_of(minute: int, width: int) -> int:
    return minute - minute % width


def grouped(key_of, rows, width: int, span: tuple[int, int]) -> dict[int, dict]:
    """``{bucket start: {group: summed counts}}`` of the rows within ``span``; ``key_of(row
    key)`` is the row's group, or None to leave the row out."""
    lo, hi = span
    out: dict[int, dict] = {}
    for key, counts in rows:
        if not lo <= key[0] < hi:
            continue
        group = key_of(key)
        if group is None:
            continue
        sums = out.setdefault(bucket_of(key[0], width), {})
        total = sums.get(group)
        if total is None:
            sums[group] = list(counts)
        else:
            for i, value in enumerate(counts):
                total[i] += value
    return out


def ordered(groups) -> list:
    """Groups in a stable order (None first), so that pages repeat."""
    return sorted(groups, key=lambda g: tuple((v is not None, str(v)) for v in g))


def json_decimal(value: Decimal) -> str:
    """A Decimal as plain decimal text, without exponent or trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
