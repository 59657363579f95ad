"""Routing records (``gateway.records``) for unit tests, built without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from gateway.pricing import Price
from gateway.records import ModelRecord, ProviderRecord


def provider_record(kind: str = "openai", *, slug: str = "p", base_url: str = "http://x"):
    return ProviderRecord(slug=slug, kind=kind, base_url=base_url, api_key="", api_version="")


def price(inp="1", out="2", *, cached=None, write=None) -> Price:
    """A price per million tokens in force since 2026-01-01."""
    return Price.per_mtok(
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        input_usd_per_mtok=Decimal(inp),
        output_usd_per_mtok=Decimal(out),
        cached_input_usd_per_mtok=Decimal(cached) if cached is not None else None,
        cache_write_usd_per_mtok=Decimal(write) if write is not None else None,
    )


def model_record(
    name: str = "gpt-4o-mini",
    *,
    upstream: str | None = None,
    kind: str = "openai",
    provider: ProviderRecord | None = None,
    prices=None,
    max_out: int | None = None,
    window: int | None = None,
    uid: str = "",
) -> ModelRecord:
    """A chat model on ``provider`` (an ``openai`` one by default) at ``price()`` unless
    ``prices`` says otherwise (``()`` for an unpriced model)."""
    return ModelRecord(
        name=name,
        upstream_model=upstream or name,
        mode="chat",
        max_output_tokens=max_out,
        provider=provider or provider_record(kind),
        prices=(price(),) if prices is None else tuple(prices),
        context_window=window,
        uid=uid,
    )
