"""What a simulator is told to do: ``SimConfig`` (the stream shape and faults a whole process
is started with) and ``Options`` (what one request's ``x-sim-*`` headers ask for)."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.billing import parse_prices
from simulator.wire import SimError

MAX_TOKENS_OVERRIDE = 32_768
MAX_CHUNKS = 10_000
MAX_DELAY_MS = 600_000
MAX_TOKEN_COUNT = 10_000_000  # x-sim-prompt-tokens and the cache token headers


@dataclass(frozen=True, slots=True)
class SimConfig:
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    chunks: int = 20
    fail_rate: float = 0.0
    status: int | None = None
    api_key: str | None = None  # None: any non-empty key is accepted
    seed: int | None = None
    reset_rate: float = 0.0  # share of requests whose connection is dropped, no answer
    malformed_rate: float = 0.0  # share of non-streaming answers that are 200 + invalid JSON
    cut_stream_after: int | None = None  # streams lose their connection after N content chunks
    retry_after: float = 1.0  # seconds, sent as Retry-After with every 429
    reply: str | None = None  # every non-streaming chat answer's text (e.g. a judge's JSON)
    # bill every chat request the most it allows: each of its ``n`` choices as long as its
    # token cap, images by OpenAI's tile rule (a hostile but honest provider, for budget tests)
    bill_max: bool = False
    # report this many completion tokens on every chat answer, whatever the request allowed
    # (a misbehaving upstream that bills past ``max_tokens``)
    completion_tokens: int | None = None
    # the admin reports' key (None: any non-empty key); inference keys follow ``api_key``
    admin_key: str | None = None
    # the price table of the cost reports, {model: {"input", ...}} (None: the built-in one)
    prices: dict | None = None
    # seconds from a batch's creation to its end (simulator.batches)
    batch_delay: float = 0.5

    def __post_init__(self) -> None:
        self._check_shape()
        self._check_faults()
        if self.prices is not None:
            parse_prices(self.prices)

    def _check_shape(self) -> None:
        if not 0 <= self.latency_ms <= MAX_DELAY_MS:
            raise ValueError(f"latency_ms must be within 0..{MAX_DELAY_MS}")
        if not 0 <= self.chunk_delay_ms <= MAX_DELAY_MS:
            raise ValueError(f"chunk_delay_ms must be within 0..{MAX_DELAY_MS}")
        if not 1 <= self.chunks <= MAX_CHUNKS:
            raise ValueError(f"chunks must be within 1..{MAX_CHUNKS}")
        if (
            self.completion_tokens is not None
            and not 0 <= self.completion_tokens <= MAX_TOKEN_COUNT
        ):
            raise ValueError(f"completion_tokens must be within 0..{MAX_TOKEN_COUNT}")

    def _check_faults(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be within 0..1")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400..599)")
        for name in ("reset_rate", "malformed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if self.reset_rate + self.malformed_rate > 1.0:
            raise ValueError("reset_rate + malformed_rate must be at most 1")
        if self.cut_stream_after is not None and not 0 <= self.cut_stream_after <= MAX_CHUNKS:
            raise ValueError(f"cut_stream_after must be within 0..{MAX_CHUNKS}")
        if not 0 <= self.retry_after <= 86_400:
            raise ValueError("retry_after must be within 0..86400 seconds")
        if not 0 <= self.batch_delay <= 86_400:
            raise ValueError("batch_delay must be within 0..86400 seconds")


@dataclass(slots=True)
class Options:
    """What the request's ``x-sim-*`` headers ask for."""

    status: int | None = None
    latency_ms: float | None = None
    chunk_delay_ms: float | None = None
    chunks: int | None = None
    no_usage: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    malformed: bool = False  # set by --malformed-rate, never by a header
    batch_delay_ms: float | None = None  # a batch created by this request ends this much later


NO_OPTIONS = Options()  # shared, never mutated: requests without x-sim-* headers

# header: (Options field, lowest, highest)
_INT_HEADERS = {
    b"x-sim-status": ("status", 100, 599),
    b"x-sim-chunks": ("chunks", 1, MAX_CHUNKS),
    b"x-sim-prompt-tokens": ("prompt_tokens", 0, MAX_TOKEN_COUNT),
    b"x-sim-completion-tokens": ("completion_tokens", 0, MAX_TOKENS_OVERRIDE),
    b"x-sim-cached-tokens": ("cached_tokens", 0, MAX_TOKEN_COUNT),
    b"x-sim-cache-read-tokens": ("cache_read_tokens", 0, MAX_TOKEN_COUNT),
    b"x-sim-cache-write-tokens": ("cache_write_tokens", 0, MAX_TOKEN_COUNT),
}
# header: Options field, in milliseconds within 0..MAX_DELAY_MS
_MS_HEADERS = {
    b"x-sim-latency-ms": "latency_ms",
    b"x-sim-chunk-delay-ms": "chunk_delay_ms",
    b"x-sim-batch-delay-ms": "batch_delay_ms",
}


def _int_header(name: str, raw: bytes, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SimError(400, f"{name}: not an integer", "invalid_value", name) from None
    if not low <= value <= high:
        raise SimError(400, f"{name}: must be within {low}..{high}", "invalid_value", name)
    return value


def _ms_header(name: str, raw: bytes) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SimError(400, f"{name}: not a number", "invalid_value", name) from None
    if not 0 <= value <= MAX_DELAY_MS:
        raise SimError(400, f"{name}: must be within 0..{MAX_DELAY_MS}", "invalid_value", name)
    return value


def parse_options(sim: dict[bytes, bytes]) -> Options:
    """The ``x-sim-*`` headers (name: raw value) as ``Options``; unknown ones are ignored."""
    opts = Options()
    for name, raw in sim.items():
        if name in _INT_HEADERS:
            field, low, high = _INT_HEADERS[name]
            setattr(opts, field, _int_header(name.decode(), raw, low, high))
        elif name in _MS_HEADERS:
            setattr(opts, _MS_HEADERS[name], _ms_header(name.decode(), raw))
        elif name == b"x-sim-no-usage":
            opts.no_usage = raw.strip().lower() in (b"1", b"true", b"yes")
    return opts


def stream_shape(config: SimConfig, opts: Options) -> tuple[float, int]:
    """(delay between content chunks in ms, number of content chunks) for one stream."""
    delay = config.chunk_delay_ms if opts.chunk_delay_ms is None else opts.chunk_delay_ms
    return delay, opts.chunks or config.chunks
