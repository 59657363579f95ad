"""Exact cost arithmetic: Decimal prices per token, usage normalised across API families.

OpenAI counts cached tokens inside ``prompt_tokens``; Anthropic's ``input_tokens`` excludes cache
reads and writes. ``Usage`` keeps the three input directions apart so one formula serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

MTOK = Decimal(1_000_000)
ZERO = Decimal(0)
QUANT = Decimal("1e-12")  # the ledger's precision (decimal_places=12)


@dataclass(frozen=True, slots=True)
class Usage:
    uncached_input: int = 0
    cached_input: int = 0
    cache_write: int = 0
    output: int = 0
    estimated: bool = False

    @property
    def prompt_tokens(self) -> int:
        """Total prompt tokens, OpenAI's convention (cache reads and writes included)."""
        return self.uncached_input + self.cached_input + self.cache_write

    @classmethod
    def from_openai(cls, usage: dict | None) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details") or {}
        cached = min(_int(details.get("cached_tokens")), prompt) if isinstance(details, dict) else 0
        return cls(uncached_input=prompt - cached, cached_input=cached, output=completion)

    @classmethod
    def from_responses(cls, usage: dict | None) -> Usage | None:
        """OpenAI Responses usage: ``input_tokens`` counts cache reads (and cache writes, where
        reported) inside it, as ``prompt_tokens`` does; reasoning tokens are inside
        ``output_tokens``."""
        if not isinstance(usage, dict):
            return None
        total_input = _int(usage.get("input_tokens"))
        details = usage.get("input_tokens_details")
        details = details if isinstance(details, dict) else {}
        cached = min(_int(details.get("cached_tokens")), total_input)
        written = min(_int(details.get("cache_write_tokens")), total_input - cached)
        return cls(
            uncached_input=total_input - cached - written,
            cached_input=cached,
            cache_write=written,
            output=_int(usage.get("output_tokens")),
        )

    @classmethod
    def from_anthropic(cls, usage: dict | None) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        return cls(
            uncached_input=_int(usage.get("input_tokens")),
            cached_input=_int(usage.get("cache_read_input_tokens")),
            cache_write=_int(usage.get("cache_creation_input_tokens")),
            output=_int(usage.get("output_tokens")),
        )


def _int(value) -> int:
    return value if isinstance(value, int) and value > 0 else 0


@dataclass(frozen=True, slots=True)
class Price:
    """Per-token prices (USD), already divided from the per-million figures. ``batch_input`` /
    ``batch_output`` are the Batch APIs' (half the synchronous ones unless the catalog says);
    cache reads and writes in a batch keep their synchronous prices."""

    effective_from: datetime
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal
    batch_input: Decimal = ZERO
    batch_output: Decimal = ZERO

    @classmethod
    def per_mtok(
        cls,
        *,
        effective_from: datetime,
        input_usd_per_mtok: Decimal,
        output_usd_per_mtok: Decimal,
        cached_input_usd_per_mtok: Decimal | None,
        cache_write_usd_per_mtok: Decimal | None,
        batch_input_usd_per_mtok: Decimal | None = None,
        batch_output_usd_per_mtok: Decimal | None = None,
    ) -> Price:
        inp = Decimal(input_usd_per_mtok) / MTOK
        out = Decimal(output_usd_per_mtok) / MTOK
        return cls(
            effective_from=effective_from,
            input=inp,
            output=out,
            # no separate price means the provider bills these at the input rate
            cached_input=inp
            if cached_input_usd_per_mtok is None
            else Decimal(cached_input_usd_per_mtok) / MTOK,
            cache_write=inp
            if cache_write_usd_per_mtok is None
            else Decimal(cache_write_usd_per_mtok) / MTOK,
            batch_input=inp / 2
            if batch_input_usd_per_mtok is None
            else Decimal(batch_input_usd_per_mtok) / MTOK,
            batch_output=out / 2
            if batch_output_usd_per_mtok is None
            else Decimal(batch_output_usd_per_mtok) / MTOK,
        )

    def for_batch(self) -> Price:
        """This price as the Batch APIs bill: input and output at their batch rates."""
        return Price(
            effective_from=self.effective_from,
            input=self.batch_input,
            output=self.batch_output,
            cached_input=self.cached_input,
            cache_write=self.cache_write,
            batch_input=self.batch_input,
            batch_output=self.batch_output,
        )


@dataclass(frozen=True, slots=True)
class Cost:
    input: Decimal = ZERO
    cached_input: Decimal = ZERO
    cache_write: Decimal = ZERO
    output: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.input + self.cached_input + self.cache_write + self.output


def cost_of(usage: Usage, price: Price | None) -> Cost:
    """Exact cost of one attempt. Quantised to the ledger's 12 decimal places (per-Mtok prices
    with up to 6 decimals times whole tokens never need more, so nothing is rounded away)."""
    if price is None:
        return Cost()
    return Cost(
        input=(usage.uncached_input * price.input).quantize(QUANT),
        cached_input=(usage.cached_input * price.cached_input).quantize(QUANT),
        cache_write=(usage.cache_write * price.cache_write).quantize(QUANT),
        output=(usage.output * price.output).quantize(QUANT),
    )


def price_at(prices: tuple[Price, ...], when: datetime) -> Price | None:
    """The price in force at ``when``; ``prices`` is sorted newest first."""
    for price in prices:
        if price.effective_from <= when:
            return price
    return None


def decimal_str(value: Decimal) -> str:
    """Fixed-point string, never exponent notation (``format(Decimal('1E-7'), 'f')``)."""
    text = format(value, "f")
    return text
