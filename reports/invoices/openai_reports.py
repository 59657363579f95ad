"""OpenAI's organisation Usage API (completions, embeddings) and Costs API, read into figures.

- ``GET {base}/organization/usage/completions`` and ``…/usage/embeddings`` with
  ``bucket_width=1d`` and ``group_by`` model, project_id, api_key_id: tokens by UTC day. A
  completions result's ``input_tokens`` counts cached and cache-write tokens inside it; where
  the result also gives ``input_uncached_tokens`` that is used, else it is derived.
- ``GET {base}/organization/costs`` with ``group_by`` line_item and project_id: dollars by UTC
  day. A line item names the model and the token type (``"gpt-4o-mini-2024-07-18, input"``,
  ``"…, cached input"``, ``"…, output"``); one that names no model (or no known token type) is
  kept under model ``""`` and counts in the provider's total only.

``{base}`` is the provider's ``/v1`` base URL (the OpenAI SDK's), and the credential an admin
key sent as a bearer token. Pages follow ``next_page`` while ``has_more``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time

import httpx

from reports.invoices.figures import Figure, ReportError, amount, count, report_pages, utc_day
from reports.models import TokenType

DAYS_PER_PAGE = 31  # the usage endpoints' largest limit for daily buckets

_LINE_TYPES = {
    "input": TokenType.INPUT,
    "input tokens": TokenType.INPUT,
    "input_tokens": TokenType.INPUT,
    "uncached input": TokenType.INPUT,
    "cached input": TokenType.CACHED_INPUT,
    "cached input tokens": TokenType.CACHED_INPUT,
    "input_cached_tokens": TokenType.CACHED_INPUT,
    "cache write": TokenType.CACHE_WRITE,
    "cache write input": TokenType.CACHE_WRITE,
    "input_cache_write_tokens": TokenType.CACHE_WRITE,
    "output": TokenType.OUTPUT,
    "output tokens": TokenType.OUTPUT,
    "output_tokens": TokenType.OUTPUT,
}


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time(0), UTC).timestamp())


def _buckets(
    client, url, key, start: date, end: date, *, extra: list
) -> Iterator[tuple[date, list]]:
    params = [
        ("start_time", str(_epoch(start))),
        ("end_time", str(_epoch(end))),
        ("bucket_width", "1d"),
        ("limit", str(DAYS_PER_PAGE)),
        *extra,
    ]
    headers = {"authorization": f"Bearer {key}"}
    for body in report_pages(client, url, params=params, headers=headers):
        for bucket in body["data"]:
            if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                raise ReportError(f"{url}: a bucket without results")
            day = utc_day(count(bucket.get("start_time")))
            if start <= day < end:
                yield day, [r for r in bucket["results"] if isinstance(r, dict)]


def _usage(client, base: str, key: str, start: date, end: date) -> Iterator[Figure]:
    group = [("group_by", g) for g in ("model", "project_id", "api_key_id")]
    url = f"{base}/organization/usage/completions"
    for day, results in _buckets(client, url, key, start, end, extra=group):
        for r in results:
            total = count(r.get("input_tokens"))
            cached = count(r.get("input_cached_tokens"))
            written = count(r.get("input_cache_write_tokens"))
            uncached = (
                count(r["input_uncached_tokens"])
                if r.get("input_uncached_tokens") is not None
                else max(0, total - cached - written)
            )
            where = _where(r)
            requests = count(r.get("num_model_requests"))
            yield Figure(
                day, token_type=TokenType.INPUT, tokens=uncached, requests=requests, **where
            )
            for token_type, tokens in (
                (TokenType.CACHED_INPUT, cached),
                (TokenType.CACHE_WRITE, written),
                (TokenType.OUTPUT, count(r.get("output_tokens"))),
            ):
                if tokens:
                    yield Figure(day, token_type=token_type, tokens=tokens, **where)
    url = f"{base}/organization/usage/embeddings"
    for day, results in _buckets(client, url, key, start, end, extra=group):
        for r in results:
            yield Figure(
                day,
                token_type=TokenType.INPUT,
                tokens=count(r.get("input_tokens")),
                requests=count(r.get("num_model_requests")),
                **_where(r),
            )


def _where(result: dict) -> dict[str, str]:
    """The model, project and API key id of a result, "" where the report has none."""
    return {
        "model": str(result.get("model") or "")[:200],
        "account": str(result.get("project_id") or "")[:200],
        "api_key_id": str(result.get("api_key_id") or "")[:200],
    }


def line_item_parse(line_item: str) -> tuple[str, str | None]:
    """(model, token type) of a costs line item; ("", None) when it names neither."""
    text = (line_item or "").strip()
    model, sep, kind = text.rpartition(",")
    if not sep:
        return "", _LINE_TYPES.get(text.lower())
    return model.strip(), _LINE_TYPES.get(kind.strip().lower())


def _costs(client, base: str, key: str, start: date, end: date) -> Iterator[Figure]:
    url = f"{base}/organization/costs"
    group = [("group_by", "line_item"), ("group_by", "project_id")]
    for day, results in _buckets(client, url, key, start, end, extra=group):
        for r in results:
            money = r.get("amount") or {}
            if not isinstance(money, dict):
                raise ReportError(f"{url}: amount is not an object")
            currency = str(money.get("currency") or "usd").lower()
            if currency != "usd":
                raise ReportError(f"{url}: costs in {currency!r}; only USD is reconciled")
            model, token_type = line_item_parse(str(r.get("line_item") or ""))
            yield Figure(
                day,
                model=model[:200] if token_type else "",
                token_type=token_type or TokenType.INPUT,
                cost_usd=amount(money.get("value", 0)),
                account=str(r.get("project_id") or "")[:200],
                api_key_id=str(r.get("api_key_id") or "")[:200],
            )


def openai_report_figures(
    client: httpx.Client, *, base_url: str, admin_key: str, start: date, end: date
) -> list[Figure]:
    """Every usage and cost figure of the UTC days ``[start, end)``."""
    base = base_url.rstrip("/")
    return [
        *_usage(client, base, admin_key, start, end),
        *_costs(client, base, admin_key, start, end),
    ]
