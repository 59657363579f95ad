"""One figure of a provider's usage or cost report, whatever the source it came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from reports.models import TokenType


class ReportError(ValueError):
    """The provider's report could not be read: a refused credential, an unreachable host, a
    body that is not the documented format. The message never holds a credential."""


@dataclass(frozen=True, slots=True)
class Figure:
    day: date
    model: str = ""
    token_type: str = TokenType.INPUT
    tokens: int | None = None
    cost_usd: Decimal | None = None
    requests: int | None = None
    account: str = ""  # project / workspace
    api_key_id: str = ""


TOKEN_TYPES = frozenset(TokenType.values)


def utc_day(seconds: int | float) -> date:
    return datetime.fromtimestamp(int(seconds), UTC).date()


def count(value) -> int:
    """A token count of a report: a non-negative integer (a JSON number, a string of one)."""
    if isinstance(value, bool) or value is None:
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ReportError(f"not a token count: {str(value)[:40]!r}") from None
    if number < 0:
        raise ReportError(f"negative token count: {number}")
    return number


def amount(value) -> Decimal:
    """A money amount as the report wrote it: the JSON is parsed with Decimal floats, so no
    binary rounding enters between the provider's figure and ours."""
    try:
        result = Decimal(str(value).strip())
    except (ArithmeticError, ValueError, TypeError):
        raise ReportError(f"not an amount: {str(value)[:40]!r}") from None
    if not result.is_finite():
        raise ReportError(f"not an amount: {str(value)[:40]!r}")
    return result
