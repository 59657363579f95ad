"""Exact cost arithmetic across API families' usage conventions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.pricing import Price, Usage, cost_of, decimal_str, price_at
from gateway.tokens import count_messages, count_text, encodings_load

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def price(inp="2.50", out="10.00", cached=None, write=None, when=T0) -> Price:
    return Price.per_mtok(
        effective_from=when,
        input_usd_per_mtok=Decimal(inp),
        output_usd_per_mtok=Decimal(out),
        cached_input_usd_per_mtok=None if cached is None else Decimal(cached),
        cache_write_usd_per_mtok=None if write is None else Decimal(write),
    )


def test_openai_cached_tokens_are_inside_prompt_tokens():
    usage = Usage.from_openai(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 200,
            "prompt_tokens_details": {"cached_tokens": 600},
        }
    )
    assert (usage.uncached_input, usage.cached_input, usage.prompt_tokens) == (400, 600, 1000)
    cost = cost_of(usage, price(cached="1.25"))
    assert cost.input == Decimal("0.001")  # 400 x 2.50 / 1e6
    assert cost.cached_input == Decimal("0.00075")  # 600 x 1.25 / 1e6
    assert cost.output == Decimal("0.002")
    assert cost.total == Decimal("0.00375")


def test_anthropic_input_tokens_exclude_cache_reads_and_writes():
    usage = Usage.from_anthropic(
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 400,
        }
    )
    assert usage.prompt_tokens == 1500
    cost = cost_of(usage, price(inp="3.00", out="15.00", cached="0.30", write="3.75"))
    assert cost.input == Decimal("0.0003")
    assert cost.cached_input == Decimal("0.0003")
    assert cost.cache_write == Decimal("0.0015")
    assert cost.output == Decimal("0.00075")
    assert cost.total == Decimal("0.00285")


def test_cached_tokens_without_a_cached_price_bill_at_the_input_rate():
    usage = Usage(uncached_input=10, cached_input=10)
    assert cost_of(usage, price(inp="1")).total == Decimal("0.00002")


def test_tiny_prices_stay_exact_and_never_use_exponent_notation():
    cost = cost_of(Usage(uncached_input=1), price(inp="0.15", out="0"))
    assert cost.total == Decimal("1.5E-7")
    assert decimal_str(cost.total) == "0.000000150000"


def test_price_in_force_at_the_call_start_is_used():
    old, new = price(inp="1", when=T0), price(inp="2", when=T0 + timedelta(days=10))
    prices = (new, old)  # newest first
    assert price_at(prices, T0 + timedelta(days=1)) is old
    assert price_at(prices, T0 + timedelta(days=10)) is new
    assert price_at(prices, T0 - timedelta(days=1)) is None


def test_no_price_means_zero_cost_not_a_crash():
    assert cost_of(Usage(uncached_input=5, output=5), None).total == 0


def test_garbage_usage_counts_as_zero():
    usage = Usage.from_openai({"prompt_tokens": "12", "completion_tokens": -3})
    assert usage.prompt_tokens == 0 and usage.output == 0


def test_token_counts_use_tiktoken_for_openai_families_and_bytes_otherwise():
    assert "o200k_base" in encodings_load()
    tokens, exact = count_text("hello world", model="gpt-4o-mini")
    assert exact and tokens == 2
    tokens, exact = count_text("héllo", model="llama-3-70b")
    assert not exact and tokens == len("héllo".encode())
    assert count_messages([{"role": "user", "content": "hello world"}], model="gpt-4o") > 2
