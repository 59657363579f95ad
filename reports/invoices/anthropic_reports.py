"""Anthropic's Admin API usage report (messages) and cost report, read into figures.

- ``GET {base}/v1/organizations/usage_report/messages`` with ``bucket_width=1d`` and
  ``group_by[]`` model, api_key_id, workspace_id: per UTC day ``uncached_input_tokens``,
  ``cache_read_input_tokens``, ``cache_creation`` (5-minute and 1-hour writes, summed as cache
  writes) and ``output_tokens``. The default workspace and the Console's own traffic have
  ``workspace_id`` / ``api_key_id`` null.
- ``GET {base}/v1/organizations/cost_report`` with ``group_by[]`` description and workspace_id:
  per UTC day ``amount`` — in the *lowest currency unit* (cents) as a decimal string, so
  ``"123.45"`` is $1.2345 — with ``model`` and ``token_type`` for token costs. Costs that are
  not tokens (``web_search``, ``code_execution``, …) are kept under model ``""``: they count in
  the provider's total, never against a model's tokens.

Auth: the admin key as ``x-api-key`` with ``anthropic-version``. Pages follow ``next_page``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal

import httpx

from reports.invoices.figures import Figure, ReportError, amount, count, report_pages
from reports.models import TokenType

API_VERSION = "2023-06-01"
DAYS_PER_PAGE = 31  # the largest limit for daily buckets
CENTS = Decimal(100)

_COST_TOKEN_TYPES = {
    "uncached_input_tokens": TokenType.INPUT,
    "output_tokens": TokenType.OUTPUT,
    "cache_read_input_tokens": TokenType.CACHED_INPUT,
    "cache_creation.ephemeral_5m_input_tokens": TokenType.CACHE_WRITE,
    "cache_creation.ephemeral_1h_input_tokens": TokenType.CACHE_WRITE,
}


def _rfc3339(day: date) -> str:
    return datetime.combine(day, time(0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(text) -> date:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC).date()
    except ValueError:
        raise ReportError(f"not an RFC 3339 time: {str(text)[:40]!r}") from None


def _buckets(client, url: str, key: str, start: date, end: date, *, group: list):
    params = [
        ("starting_at", _rfc3339(start)),
        ("ending_at", _rfc3339(end)),
        ("bucket_width", "1d"),
        ("limit", str(DAYS_PER_PAGE)),
        *(("group_by[]", g) for g in group),
    ]
    headers = {"x-api-key": key, "anthropic-version": API_VERSION}
    for body in report_pages(client, url, params=params, headers=headers):
        for bucket in body["data"]:
            if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                raise ReportError(f"{url}: a bucket without results")
            day = _day(bucket.get("starting_at"))
            if start <= day < end:
                yield day, [x for x in bucket["results"] if isinstance(x, dict)]


def _where(result: dict) -> dict[str, str]:
    return {
        "model": str(result.get("model") or "")[:200],
        "account": str(result.get("workspace_id") or "")[:200],
        "api_key_id": str(result.get("api_key_id") or "")[:200],
    }


def _usage(client, base: str, key: str, start: date, end: date) -> Iterator[Figure]:
    url = f"{base}/v1/organizations/usage_report/messages"
    for day, results in _buckets(
        client, url, key, start, end, group=["model", "api_key_id", "workspace_id"]
    ):
        for r in results:
            creation = r.get("cache_creation") or {}
            if not isinstance(creation, dict):
                raise ReportError(f"{url}: cache_creation is not an object")
            written = sum(count(v) for v in creation.values())
            where = _where(r)
            yield Figure(
                day,
                token_type=TokenType.INPUT,
                tokens=count(r.get("uncached_input_tokens")),
                **where,
            )
            for token_type, tokens in (
                (TokenType.CACHED_INPUT, count(r.get("cache_read_input_tokens"))),
                (TokenType.CACHE_WRITE, written),
                (TokenType.OUTPUT, count(r.get("output_tokens"))),
            ):
                if tokens:
                    yield Figure(day, token_type=token_type, tokens=tokens, **where)


def _costs(client, base: str, key: str, start: date, end: date) -> Iterator[Figure]:
    url = f"{base}/v1/organizations/cost_report"
    for day, results in _buckets(
        client, url, key, start, end, group=["description", "workspace_id"]
    ):
        for r in results:
            currency = str(r.get("currency") or "USD").upper()
            if currency != "USD":
                raise ReportError(f"{url}: costs in {currency!r}; only USD is reconciled")
            token_type = _COST_TOKEN_TYPES.get(str(r.get("token_type") or ""))
            is_tokens = (r.get("cost_type") in (None, "tokens")) and token_type is not None
            yield Figure(
                day,
                model=str(r.get("model") or "")[:200] if is_tokens else "",
                token_type=token_type if is_tokens else TokenType.INPUT,
                cost_usd=amount(r.get("amount", "0")) / CENTS,
                account=str(r.get("workspace_id") or "")[:200],
            )


def anthropic_report_figures(
    client: httpx.Client, *, base_url: str, admin_key: str, start: date, end: date
) -> list[Figure]:
    """Every usage and cost figure of the UTC days ``[start, end)``."""
    base = base_url.rstrip("/")
    return [
        *_usage(client, base, admin_key, start, end),
        *_costs(client, base, admin_key, start, end),
    ]
