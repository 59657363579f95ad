"""OpenAI's organisation reports over the billed usage (OpenAI's and Azure's paths):
``GET /v1/organization/usage/completions`` (chat, legacy completions and Responses),
``GET /v1/organization/usage/embeddings`` and ``GET /v1/organization/costs``, as OpenAI's
published description (``UsageResponse``, ``UsageTimeBucket``, ``UsageCompletionsResult``,
``UsageEmbeddingsResult``, ``CostsResult``) has them.

- ``start_time`` (unix seconds, required, inclusive), ``end_time`` (exclusive),
  ``bucket_width`` ``1m``/``1h``/``1d`` (default ``1d``; costs: ``1d`` only), ``limit``
  buckets a page (usage: 60/1440, 24/168, 7/31 default/highest per width; costs 7/180),
  ``page``; filters ``models``, ``project_ids``, ``api_key_ids``, ``user_ids``, ``batch``
  (usage), ``project_ids``, ``api_key_ids``, ``line_items`` (costs); ``group_by`` any of
  ``project_id``, ``user_id``, ``api_key_id``, ``model``, ``batch``, ``service_tier`` (usage;
  embeddings without the last two) or ``project_id``, ``line_item``, ``api_key_id`` (costs).
- Calls carry no user (``user_id`` is null, and a ``user_ids`` filter matches nothing) and use
  the ``default`` service tier; ``batch`` is true for the lines of a batch
  (``simulator.openai_batches``), false for every other call. All tokens are text.
- Costs: ``amount.value`` is a JSON number written from an exact ``Decimal`` (USD), its
  ``currency`` ``usd``. Line items are ``"<model>, input_tokens"`` (uncached input),
  ``"<model>, input_cached_tokens"``, ``"<model>, input_cache_write_tokens"`` and
  ``"<model>, output_tokens"`` (the form of the official SDK's example,
  ``"gpt-6.2-astra, input_tokens"``); grouped by ``line_item``, a result has its ``quantity``
  of tokens (``quantity_unit`` ``tokens``). Batch lines are priced at the batch rates
  (``simulator.billing.batch_price``) under the same line items.
"""

from __future__ import annotations

from decimal import Decimal

import orjson

from simulator.admin_common import (
    USAGE_LIMITS,
    Query,
    decode_cursor,
    encode_cursor,
    grouped,
    json_decimal,
    ordered,
    page,
)
from simulator.billing import MILLION, Ledger, batch_price, price_of
from simulator.wire import SimError

COMPLETION_KINDS = frozenset({"chat", "completions", "responses"})
EMBEDDING_KINDS = frozenset({"embeddings"})
COMPLETION_GROUPS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
EMBEDDING_GROUPS = ("project_id", "user_id", "api_key_id", "model")
COST_GROUPS = ("project_id", "line_item", "api_key_id")
COST_LIMITS = (7, 180)
NEVER = 2**62
# (line item suffix, index of its count in a billed row, Price field)
LINE_ITEMS = (
    ("input_tokens", 0, "input"),
    ("input_cached_tokens", 1, "cached_input"),
    ("input_cache_write_tokens", 2, "cache_write"),
    ("output_tokens", 3, "output"),
)


def _field(key, name: str):
    """A billed row's value of a ``group_by`` field."""
    if name == "project_id":
        return key[5]
    if name == "api_key_id":
        return key[4]
    if name == "model":
        return key[3]
    if name == "batch":
        return key[6]
    if name == "service_tier":
        return "default"
    return None  # user_id


def _range(query: Query) -> tuple[int, int, int | None]:
    """(start_time, the end, exclusive, the cursor)."""
    start = query.integer("start_time", required=True)
    end = query.integer("end_time")
    if start < 0:
        raise SimError(400, "start_time: must not be negative", "invalid_value", "start_time")
    if end is not None and end <= start:
        raise SimError(400, "end_time: must be after start_time", "invalid_value", "end_time")
    return start, NEVER if end is None else end, decode_cursor(query.one("page"))


def _batch(query: Query) -> bool | None:
    raw = query.one("batch")
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise SimError(400, "batch: must be true or false", "invalid_value", "batch")
    return raw.lower() == "true"


def _usage_filter(query: Query, kinds: frozenset[str]):
    """A billed row's key: whether the usage query keeps it."""
    models = set(query.many("models"))
    projects = set(query.many("project_ids"))
    keys = set(query.many("api_key_ids"))
    nobody = bool(query.many("user_ids"))
    batch = _batch(query)

    def keep(key) -> bool:
        return (
            not nobody
            and key[1] == "openai"
            and (batch is None or key[6] == batch)
            and key[2] in kinds
            and (not models or key[3] in models)
            and (not keys or key[4] in keys)
            and (not projects or key[5] in projects)
        )

    return keep


def _envelope(buckets, results_of) -> bytes:
    data = [
        {
            "object": "bucket",
            "start_time": start,
            "end_time": start + buckets.width,
            "results": results_of(start),
        }
        for start in buckets
    ]
    more = buckets.next is not None
    return orjson.dumps(
        {
            "object": "page",
            "data": data,
            "has_more": more,
            "next_page": encode_cursor(buckets.next) if more else None,
        }
    )


def _usage(query: Query, ledger: Ledger, kinds: frozenset[str], allowed, result) -> bytes:
    width_name, width = query.width(("1m", "1h", "1d"))
    limit = query.limit(*USAGE_LIMITS[width_name])
    groups = query.choices("group_by", allowed)
    start, stop, cursor = _range(query)
    buckets = page(first=start, stop=stop, width=width, limit=limit, cursor=cursor)
    keep = _usage_filter(query, kinds)

    def key_of(key):
        return tuple(_field(key, g) for g in groups) if keep(key) else None

    sums = grouped(key_of, ledger.rows.items(), width, buckets.span)

    def results_of(bucket: int) -> list:
        by_group = sums.get(bucket, {})
        return [result(dict(zip(groups, g, strict=True)), by_group[g]) for g in ordered(by_group)]

    return _envelope(buckets, results_of)


def _completions_result(fields: dict, counts) -> dict:
    uncached, cached, written, output, requests = counts
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": uncached + cached + written,
        "input_cached_tokens": cached,
        "input_cache_write_tokens": written,
        "input_uncached_tokens": uncached,
        "output_tokens": output,
        "input_text_tokens": uncached,
        "output_text_tokens": output,
        "input_cached_text_tokens": cached,
        "input_audio_tokens": 0,
        "input_cached_audio_tokens": 0,
        "output_audio_tokens": 0,
        "input_image_tokens": 0,
        "input_cached_image_tokens": 0,
        "output_image_tokens": 0,
        "num_model_requests": requests,
        **{name: fields.get(name) for name in COMPLETION_GROUPS},
    }


def _embeddings_result(fields: dict, counts) -> dict:
    return {
        "object": "organization.usage.embeddings.result",
        "input_tokens": counts[0] + counts[1] + counts[2],
        "num_model_requests": counts[4],
        **{name: fields.get(name) for name in EMBEDDING_GROUPS},
    }


def completions_usage(query: Query, ledger: Ledger) -> bytes:
    """``GET /v1/organization/usage/completions``."""
    return _usage(query, ledger, COMPLETION_KINDS, COMPLETION_GROUPS, _completions_result)


def embeddings_usage(query: Query, ledger: Ledger) -> bytes:
    """``GET /v1/organization/usage/embeddings``."""
    return _usage(query, ledger, EMBEDDING_KINDS, EMBEDDING_GROUPS, _embeddings_result)


# --- costs -----------------------------------------------------------------------------------


def _cost_sums(query: Query, ledger: Ledger, groups, span) -> dict[int, dict]:
    """``{day: {group: [USD, tokens]}}``: every billed row's line items, priced."""
    projects = set(query.many("project_ids"))
    keys = set(query.many("api_key_ids"))
    wanted = set(query.many("line_items"))
    lo, hi = span
    prices: dict = {}
    out: dict[int, dict] = {}
    for key, counts in ledger.rows.items():
        minute, family, _, model, kid, project, batch = key
        if family != "openai" or not lo <= minute < hi:
            continue
        if (projects and project not in projects) or (keys and kid not in keys):
            continue
        price = prices.get((model, batch))
        if price is None:
            price = price_of(ledger.prices, model)
            price = prices[(model, batch)] = batch_price(price) if batch else price
        day = out.setdefault(minute - minute % 86_400, {})
        for suffix, index, rate in LINE_ITEMS:
            tokens = counts[index]
            line = f"{model}, {suffix}"
            if not tokens or (wanted and line not in wanted):
                continue
            values = {"project_id": project, "line_item": line, "api_key_id": kid}
            entry = day.setdefault(tuple(values[g] for g in groups), [Decimal(0), 0])
            entry[0] += Decimal(tokens) * getattr(price, rate) / MILLION
            entry[1] += tokens
    return out


def costs(query: Query, ledger: Ledger) -> bytes:
    """``GET /v1/organization/costs``: per UTC day only."""
    _, width = query.width(("1d",))
    limit = query.limit(*COST_LIMITS)
    groups = query.choices("group_by", COST_GROUPS)
    start, stop, cursor = _range(query)
    buckets = page(first=start, stop=stop, width=width, limit=limit, cursor=cursor)
    sums = _cost_sums(query, ledger, groups, buckets.span)
    by_item = "line_item" in groups

    def results_of(day: int) -> list:
        by_group = sums.get(day, {})
        results = []
        for group in ordered(by_group):
            amount, tokens = by_group[group]
            fields = dict(zip(groups, group, strict=True))
            results.append(
                {
                    "object": "organization.costs.result",
                    "amount": {
                        "value": orjson.Fragment(json_decimal(amount).encode()),
                        "currency": "usd",
                    },
                    "line_item": fields.get("line_item"),
                    "project_id": fields.get("project_id"),
                    "api_key_id": fields.get("api_key_id"),
                    "quantity": tokens if by_item else None,
                    "quantity_unit": "tokens" if by_item else None,
                }
            )
        return results

    return _envelope(buckets, results_of)
