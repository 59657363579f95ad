"""Anthropic's Admin API usage and cost reports over the billed Messages usage:
``GET /v1/organizations/usage_report/messages`` and ``GET /v1/organizations/cost_report``.

- ``starting_at`` (RFC 3339, required; its bucket is snapped to the start of the UTC
  minute/hour/day), ``ending_at`` (only buckets that end at or before it), ``bucket_width``
  ``1m``/``1h``/``1d`` (default ``1d``; costs ``1d`` only), ``limit`` buckets a page (usage:
  60/1440, 24/168, 7/31 default/highest per width; costs 7/31), ``page`` (the previous
  answer's ``next_page``).
- Usage: ``group_by[]`` any of ``api_key_id``, ``workspace_id``, ``model``, ``service_tier``,
  ``context_window``; filters ``api_key_ids[]``, ``workspace_ids[]``, ``models[]``,
  ``service_tiers[]``, ``context_window[]``. Results have ``uncached_input_tokens``,
  ``cache_creation`` (``ephemeral_5m_input_tokens``; ``ephemeral_1h_input_tokens`` is always 0:
  the simulator writes 5-minute entries only), ``cache_read_input_tokens``, ``output_tokens``,
  ``server_tool_use.web_search_requests`` (0) and the grouped fields (null when not grouped).
  Every message is ``standard`` tier (``batch`` for the lines of a Message Batch), ``0-200k``
  context window; the report has no request count, as upstream.
- Costs: ``group_by[]`` ``workspace_id`` and/or ``description``; ``amount`` is a decimal string
  in cents (``"123.45"`` is $1.2345), ``currency`` ``USD``. Grouped by description, one result
  per model and token type, with ``cost_type`` ``tokens``, ``model``, ``token_type``
  (``uncached_input_tokens``, ``cache_read_input_tokens``,
  ``cache_creation.ephemeral_5m_input_tokens``, ``output_tokens``), ``service_tier``,
  ``context_window`` and a ``description`` such as ``"Claude Sonnet 4.5 Usage - Input
  Tokens"`` (``- Output Tokens``, ``- Input Tokens, Cache Hit``, ``- Input Tokens, Cache
  Write``); otherwise those are null. ``workspace_id`` is null for the default workspace.
  Batch lines are priced at the batch rates (``simulator.billing.batch_price``), their results
  (grouped by description) of ``service_tier`` ``batch``.
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal

import orjson

from simulator.admin_common import (
    USAGE_LIMITS,
    Query,
    grouped,
    json_decimal,
    ordered,
    page,
    parse_rfc3339,
    rfc3339,
)
from simulator.billing import MILLION, Ledger, batch_price, display_name, price_of
from simulator.wire import SimError

USAGE_GROUPS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window")
COST_GROUPS = ("workspace_id", "description")
COST_LIMITS = (7, 31)
SERVICE_TIER = "standard"
BATCH_TIER = "batch"
CONTEXT_WINDOW = "0-200k"
NEVER = 2**62
# (token_type, index of its count in a billed row, Price field, description suffix)
TOKEN_TYPES = (
    ("uncached_input_tokens", 0, "input", "Input Tokens"),
    ("cache_read_input_tokens", 1, "cached_input", "Input Tokens, Cache Hit"),
    ("cache_creation.ephemeral_5m_input_tokens", 2, "cache_write", "Input Tokens, Cache Write"),
    ("output_tokens", 3, "output", "Output Tokens"),
)
_LABELS = {t[0]: t[3] for t in TOKEN_TYPES}


def _cursor(start: int) -> str:
    """Anthropic's cursors carry the next bucket's start: ``page_`` + base64 of its RFC 3339."""
    return "page_" + base64.b64encode(rfc3339(start).encode()).decode()


def _decode_cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        text = base64.b64decode(raw.removeprefix("page_").encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise SimError(400, "page: not a cursor of this query", "invalid_value", "page") from None
    return parse_rfc3339("page", text)


def _range(query: Query, width: int) -> tuple[int, int, int | None]:
    """(the first second, where no bucket may start any more, the cursor)."""
    raw = query.one("starting_at")
    if raw is None:
        raise SimError(400, "starting_at: Field required", "missing_field", "starting_at")
    start = parse_rfc3339("starting_at", raw)
    end_raw = query.one("ending_at")
    stop = NEVER
    if end_raw is not None:
        end = parse_rfc3339("ending_at", end_raw)
        if end <= start:
            raise SimError(400, "ending_at: must be after starting_at", "invalid_value")
        stop = end - width + 1  # buckets that end at or before ending_at
    return start, stop, _decode_cursor(query.one("page"))


def _envelope(buckets, results_of) -> bytes:
    data = [
        {
            "starting_at": rfc3339(start),
            "ending_at": rfc3339(start + buckets.width),
            "results": results_of(start),
        }
        for start in buckets
    ]
    more = buckets.next is not None
    return orjson.dumps(
        {"data": data, "has_more": more, "next_page": _cursor(buckets.next) if more else None}
    )


# --- usage -----------------------------------------------------------------------------------


def _field(key, name: str):
    if name == "api_key_id":
        return key[4]
    if name == "workspace_id":
        return key[5]
    if name == "model":
        return key[3]
    return _tier(key) if name == "service_tier" else CONTEXT_WINDOW


def _tier(key) -> str:
    return BATCH_TIER if key[6] else SERVICE_TIER


def _usage_filter(query: Query):
    keys = set(query.many("api_key_ids"))
    workspaces = set(query.many("workspace_ids"))
    models = set(query.many("models"))
    tiers = set(query.many("service_tiers"))
    windows = set(query.many("context_window"))
    nothing = windows and CONTEXT_WINDOW not in windows

    def keep(key) -> bool:
        return (
            not nothing
            and key[1] == "anthropic"
            and (not tiers or _tier(key) in tiers)
            and (not models or key[3] in models)
            and (not keys or key[4] in keys)
            and (not workspaces or key[5] in workspaces)
        )

    return keep


def _usage_result(fields: dict, counts) -> dict:
    uncached, cached, written, output, _ = counts
    return {
        "uncached_input_tokens": uncached,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": written},
        "cache_read_input_tokens": cached,
        "output_tokens": output,
        "server_tool_use": {"web_search_requests": 0},
        **{name: fields.get(name) for name in USAGE_GROUPS},
    }


def usage_report(query: Query, ledger: Ledger) -> bytes:
    """``GET /v1/organizations/usage_report/messages``."""
    width_name, width = query.width(("1m", "1h", "1d"))
    limit = query.limit(*USAGE_LIMITS[width_name])
    groups = query.choices("group_by", USAGE_GROUPS)
    start, stop, cursor = _range(query, width)
    buckets = page(first=start, stop=stop, width=width, limit=limit, cursor=cursor)
    keep = _usage_filter(query)

    def key_of(key):
        return tuple(_field(key, g) for g in groups) if keep(key) else None

    sums = grouped(key_of, ledger.rows.items(), width, buckets.span)

    def results_of(bucket: int) -> list:
        by_group = sums.get(bucket, {})
        return [
            _usage_result(dict(zip(groups, g, strict=True)), by_group[g]) for g in ordered(by_group)
        ]

    return _envelope(buckets, results_of)


# --- costs -----------------------------------------------------------------------------------


def _cost_sums(ledger: Ledger, groups, span) -> dict[int, dict]:
    """``{day: {(workspace, model, token type, service tier): USD}}``, the parts not grouped by
    left None."""
    by_workspace, by_description = "workspace_id" in groups, "description" in groups
    lo, hi = span
    prices: dict = {}
    out: dict[int, dict] = {}
    for key, counts in ledger.rows.items():
        minute, family, _, model, _, workspace, batch = key
        if family != "anthropic" or not lo <= minute < hi:
            continue
        price = prices.get((model, batch))
        if price is None:
            price = price_of(ledger.prices, model)
            price = prices[(model, batch)] = batch_price(price) if batch else price
        day = out.setdefault(minute - minute % 86_400, {})
        for token_type, index, rate, _ in TOKEN_TYPES:
            tokens = counts[index]
            if not tokens:
                continue
            group = (
                workspace if by_workspace else None,
                model if by_description else None,
                token_type if by_description else None,
                (BATCH_TIER if batch else SERVICE_TIER) if by_description else None,
            )
            day[group] = (
                day.get(group, Decimal(0)) + Decimal(tokens) * getattr(price, rate) / MILLION
            )
    return out


def cost_report(query: Query, ledger: Ledger) -> bytes:
    """``GET /v1/organizations/cost_report``: per UTC day only, amounts in cents."""
    _, width = query.width(("1d",))
    limit = query.limit(*COST_LIMITS)
    groups = query.choices("group_by", COST_GROUPS)
    start, stop, cursor = _range(query, width)
    buckets = page(first=start, stop=stop, width=width, limit=limit, cursor=cursor)
    sums = _cost_sums(ledger, groups, buckets.span)

    def results_of(day: int) -> list:
        by_group = sums.get(day, {})
        results = []
        for group in ordered(by_group):
            workspace, model, token_type, tier = group
            described = token_type is not None
            description = None
            if described:
                description = f"{display_name(model, ledger.prices)} Usage - {_LABELS[token_type]}"
            results.append(
                {
                    "currency": "USD",
                    "amount": json_decimal(by_group[group] * 100),
                    "workspace_id": workspace,
                    "description": description,
                    "cost_type": "tokens" if described else None,
                    "context_window": CONTEXT_WINDOW if described else None,
                    "model": model,
                    "service_tier": tier,
                    "token_type": token_type,
                }
            )
        return results

    return _envelope(buckets, results_of)
