"""One figure of a provider's usage or cost report, whatever the source it came from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx

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


MAX_PAGES = 1_000  # a misbehaving server that always says has_more cannot loop a pull forever


def _error_message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return r.reason_phrase


def report_pages(client: httpx.Client, url: str, *, params: list, headers: dict) -> Iterator[dict]:
    """Each page of a paged admin report (``data``, ``has_more``, ``next_page``, the shape both
    OpenAI's and Anthropic's use), JSON floats as Decimal; ``ReportError`` on a refusal, an
    unreachable host or a body of another shape."""
    page = None
    for _ in range(MAX_PAGES):
        query = params + ([("page", page)] if page else [])
        try:
            r = client.get(url, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise ReportError(f"{url}: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise ReportError(f"{url}: HTTP {r.status_code}: {_error_message(r)}")
        try:
            body = json.loads(r.content, parse_float=Decimal)
        except ValueError:
            raise ReportError(f"{url}: the answer is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ReportError(f"{url}: the answer has no data list")
        yield body
        page = body.get("next_page")
        if not body.get("has_more") or not page:
            return
    raise ReportError(f"{url}: more than {MAX_PAGES} pages")
