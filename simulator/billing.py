"""What the simulator bills: every answer it served, aggregated per UTC minute, and the price
table the admin cost reports apply to it (``simulator.admin_reports``).

- A billed call is one the simulator answered with a 200 and its usage: chat, legacy
  completions, Responses, embeddings and Anthropic messages, JSON or SSE, on OpenAI's, Azure's
  and Anthropic's paths. The counts are those of the answer's usage (the endpoints hand them
  over as a ``Billed``; with ``x-sim-no-usage`` the answer omits them but they are billed
  anyway, as a real provider bills what it never reports). Errors, ``count_tokens``, models,
  stored-response reads, connections dropped by ``--reset-rate`` and streams cut by
  ``--cut-stream-after`` (a simulated upstream crash) are not billed. A stream the client
  abandons mid-way is billed in full: the simulator generates its whole answer before the
  first chunk, and the providers bill what they generated. So is a 200 whose body
  ``--malformed-rate`` broke: the provider served it, the client could not read it.
- The aggregate is keyed by (UTC minute, API family, endpoint kind, model as answered, API key
  id, project or workspace, batch); it holds uncached input, cached input, cache-write (5
  minute) and output tokens, and the request count. A line of a batch
  (``simulator.openai_batches``, ``simulator.anthropic_batches``) is billed when it runs,
  marked batch, and priced at the batch rates (``batch_price``: input and output at half the
  table's prices, both providers' discount; cache reads and writes at theirs). It is bounded
  (``MAX_ROWS``): when full, the oldest tenth of it is dropped.
- API key ids are derived from the key, never the key itself: ``key_`` (OpenAI) or ``apikey_``
  (Anthropic) + the first 16 hex digits of its SHA-256. Projects come from ``OpenAI-Project``
  (``proj_default`` without it); Anthropic has no per-request workspace header (a key belongs
  to a workspace), so served messages are in the default workspace (``null``); injected usage
  (``POST /_sim/usage``) may name one.
- Prices are USD per million tokens, ``Decimal`` throughout: ``input``, ``cached_input``
  (default: ``input``), ``cache_write`` (default: ``input``), ``output`` (default 0), and an
  optional ``name`` (Anthropic's cost descriptions). ``--prices FILE`` replaces the built-in
  table (``DEFAULT_PRICES``, public list prices); a model is looked up as answered, then
  without a date suffix (``-2024-07-18``, ``-20250929``), then as ``"*"``; unknown models cost 0.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

MAX_ROWS = 200_000
MAX_KEY_IDS = 4096
MAX_INJECTED = 100_000
MAX_INJECTED_TOKENS = 10**12
MILLION = Decimal(1_000_000)
KINDS = frozenset({"chat", "completions", "responses", "embeddings", "messages"})
DEFAULT_PROJECT = "proj_default"
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")

# USD per million tokens: input, cached input, cache write, output (public list prices).
DEFAULT_PRICES: dict[str, dict[str, str]] = {
    "gpt-4o": {"input": "2.50", "cached_input": "1.25", "output": "10.00"},
    "gpt-4o-mini": {"input": "0.15", "cached_input": "0.075", "output": "0.60"},
    "gpt-4.1": {"input": "2.00", "cached_input": "0.50", "output": "8.00"},
    "gpt-4.1-mini": {"input": "0.40", "cached_input": "0.10", "output": "1.60"},
    "gpt-4.1-nano": {"input": "0.10", "cached_input": "0.025", "output": "0.40"},
    "gpt-5": {"input": "1.25", "cached_input": "0.125", "output": "10.00"},
    "gpt-5-mini": {"input": "0.25", "cached_input": "0.025", "output": "2.00"},
    "o3": {"input": "2.00", "cached_input": "0.50", "output": "8.00"},
    "o3-mini": {"input": "1.10", "cached_input": "0.55", "output": "4.40"},
    "o4-mini": {"input": "1.10", "cached_input": "0.275", "output": "4.40"},
    "gpt-3.5-turbo-instruct": {"input": "1.50", "output": "2.00"},
    "text-embedding-3-small": {"input": "0.02"},
    "text-embedding-3-large": {"input": "0.13"},
    "text-embedding-ada-002": {"input": "0.10"},
    "claude-sonnet-4-5": {
        "input": "3.00",
        "cached_input": "0.30",
        "cache_write": "3.75",
        "output": "15.00",
    },
    "claude-sonnet-4": {
        "input": "3.00",
        "cached_input": "0.30",
        "cache_write": "3.75",
        "output": "15.00",
    },
    "claude-opus-4-5": {
        "input": "5.00",
        "cached_input": "0.50",
        "cache_write": "6.25",
        "output": "25.00",
    },
    "claude-opus-4-1": {
        "input": "15.00",
        "cached_input": "1.50",
        "cache_write": "18.75",
        "output": "75.00",
    },
    "claude-haiku-4-5": {
        "input": "1.00",
        "cached_input": "0.10",
        "cache_write": "1.25",
        "output": "5.00",
    },
    "claude-3-5-haiku": {
        "input": "0.80",
        "cached_input": "0.08",
        "cache_write": "1.00",
        "output": "4.00",
    },
}


@dataclass(frozen=True, slots=True)
class Billed:
    """What one served answer bills: its model as answered and its usage's token counts."""

    model: str
    input: int  # uncached input tokens (without cached and cache-write tokens)
    cached: int = 0
    cache_write: int = 0
    output: int = 0


def from_chat_usage(model: str, usage: dict) -> Billed:
    """A chat (or legacy completions) ``usage``: ``prompt_tokens`` include the cached ones."""
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    return Billed(model, usage["prompt_tokens"] - cached, cached, 0, usage["completion_tokens"])


def from_responses_usage(model: str, usage: dict) -> Billed:
    details = usage["input_tokens_details"]
    cached, written = details["cached_tokens"], details["cache_write_tokens"]
    return Billed(
        model, usage["input_tokens"] - cached - written, cached, written, usage["output_tokens"]
    )


def from_anthropic_usage(model: str, usage: dict) -> Billed:
    """Anthropic's ``input_tokens`` already exclude cache reads and writes."""
    return Billed(
        model,
        usage["input_tokens"],
        usage["cache_read_input_tokens"],
        usage["cache_creation_input_tokens"],
        usage["output_tokens"],
    )


def family_of(kind: str) -> str:
    return "anthropic" if kind == "messages" else "openai"


def key_id(key: bytes | str, family: str) -> str:
    """A stable, non-secret id for an API key (what the admin reports call ``api_key_id``)."""
    raw = key.encode() if isinstance(key, str) else key
    prefix = "apikey_" if family == "anthropic" else "key_"
    return prefix + hashlib.sha256(raw).hexdigest()[:16]


# --- prices ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    name: str | None = None  # Anthropic's product name, e.g. "Claude Sonnet 4.5"


ZERO_PRICE = Price(Decimal(0), Decimal(0), Decimal(0), Decimal(0))


def _decimal(model: str, field: str, value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"prices: {model}.{field} must be a number or a decimal string")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"prices: {model}.{field} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"prices: {model}.{field} must be a finite number, at least 0")
    return amount


def parse_prices(raw) -> dict[str, Price]:
    """``{model: {"input", "cached_input", "cache_write", "output", "name"}}`` as ``Price``s;
    ``ValueError`` on anything else."""
    if not isinstance(raw, dict):
        raise ValueError("prices: a JSON object of model: prices is required")
    table = {}
    for model, entry in raw.items():
        if not isinstance(model, str) or not model or not isinstance(entry, dict):
            raise ValueError(f"prices: {model!r} must map a model name to an object")
        unknown = set(entry) - {"input", "cached_input", "cache_write", "output", "name"}
        if unknown:
            raise ValueError(f"prices: {model} has unknown fields {sorted(unknown)}")
        if "input" not in entry:
            raise ValueError(f"prices: {model}.input is required")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"prices: {model}.name must be a string")
        base = _decimal(model, "input", entry["input"])
        table[model] = Price(
            input=base,
            cached_input=_decimal(model, "cached_input", entry.get("cached_input", base)),
            cache_write=_decimal(model, "cache_write", entry.get("cache_write", base)),
            output=_decimal(model, "output", entry.get("output", 0)),
            name=name,
        )
    return table


def load_prices(path: str | Path) -> dict:
    """The JSON price file (numbers kept exact), checked; ``ValueError`` when unusable."""
    try:
        raw = json.loads(Path(path).read_text(), parse_float=Decimal)
    except OSError as exc:
        raise ValueError(f"prices: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"prices: {path} is not valid JSON: {exc}") from None
    parse_prices(raw)
    return raw


def batch_price(price: Price) -> Price:
    """What a batch line pays: input and output at half price (cache reads and writes, which
    the gateway also bills at their synchronous rates in a batch, unchanged)."""
    return Price(
        input=price.input / 2,
        cached_input=price.cached_input,
        cache_write=price.cache_write,
        output=price.output / 2,
        name=price.name,
    )


def price_of(table: dict[str, Price], model: str) -> Price:
    price = table.get(model)
    if price is None:
        price = table.get(_DATE_SUFFIX.sub("", model))
    if price is None:
        price = table.get("*", ZERO_PRICE)
    return price


def display_name(model: str, table: dict[str, Price]) -> str:
    """Anthropic's product name for a model: the table's ``name``, else derived from the id
    (``claude-sonnet-4-5-20250929`` → ``Claude Sonnet 4.5``)."""
    price = price_of(table, model)
    if price.name:
        return price.name
    parts = _DATE_SUFFIX.sub("", model).split("-")
    if parts and parts[0].lower() == "claude":
        parts = parts[1:]
    words = [p.capitalize() for p in parts if not p.isdigit()]
    version = ".".join(p for p in parts if p.isdigit())
    return " ".join(["Claude", *words, *([version] if version else [])])


# --- the aggregate ---------------------------------------------------------------------------

# (minute, family, kind, model, api key id, project / workspace id, batch)
RowKey = tuple[int, str, str, str, str | None, str | None, bool]


class Ledger:
    """The billed usage: token sums per ``RowKey`` (at most ``MAX_ROWS`` of them)."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices
        # RowKey: [uncached input, cached input, cache write, output, requests]
        self.rows: dict[RowKey, list[int]] = {}
        self._key_ids: dict[tuple[bytes, str], str] = {}

    def record(
        self,
        billed: Billed,
        kind: str,
        key: bytes | None,
        project: bytes | None,
        *,
        batch: bool = False,
    ) -> None:
        """One served call (or one line of a batch), now."""
        family = family_of(kind)
        kid = None
        if key:
            kid = self._key_ids.get((key, family))
            if kid is None:
                if len(self._key_ids) >= MAX_KEY_IDS:
                    self._key_ids.clear()
                kid = self._key_ids[(key, family)] = key_id(key, family)
        if family == "anthropic":
            scope = None  # the default workspace: no request names another
        else:
            scope = project.decode("latin-1") if project else DEFAULT_PROJECT
        minute = int(time.time()) // 60 * 60
        counts = (billed.input, billed.cached, billed.cache_write, billed.output, 1)
        self.add((minute, family, kind, billed.model, kid, scope, batch), counts)

    def add(self, key: RowKey, counts) -> None:
        row = self.rows.get(key)
        if row is None:
            if len(self.rows) >= MAX_ROWS:
                self._evict()
            self.rows[key] = list(counts)
            return
        for i, value in enumerate(counts):
            row[i] += value

    def _evict(self) -> None:
        for key in sorted(self.rows, key=lambda k: k[0])[: MAX_ROWS // 10]:
            del self.rows[key]

    def clear(self) -> None:
        self.rows.clear()

    def inject(self, records) -> int:
        """Historical usage (``POST /_sim/usage``): all records are checked before any is
        added; ``ValueError`` names the first bad one."""
        if not isinstance(records, list):
            raise ValueError("a JSON array of usage records is required")
        if len(records) > MAX_INJECTED:
            raise ValueError(f"at most {MAX_INJECTED} records at once")
        parsed = [_injected(i, record) for i, record in enumerate(records)]
        for key, counts in parsed:
            self.add(key, counts)
        return len(parsed)


def _at(index: int, value) -> int:
    """A record's ``at`` (unix seconds or RFC 3339) as its UTC minute."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"record {index}: at: not an RFC 3339 timestamp") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    else:
        raise ValueError(f"record {index}: at: unix seconds or an RFC 3339 string is required")
    if not 0 <= seconds < 253_402_300_800:  # year 10000
        raise ValueError(f"record {index}: at: out of range")
    return int(seconds) // 60 * 60


def _count(index: int, record: dict, field: str, default: int = 0) -> int:
    value = record.get(field, default)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_INJECTED_TOKENS
    ):
        raise ValueError(f"record {index}: {field}: an integer within 0..{MAX_INJECTED_TOKENS}")
    return value


def _text(index: int, record: dict, field: str) -> str | None:
    value = record.get(field)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"record {index}: {field}: a non-empty string is required")
    return value


def _injected(index: int, record) -> tuple[RowKey, tuple[int, ...]]:
    if not isinstance(record, dict):
        raise ValueError(f"record {index}: an object is required")
    kind = record.get("endpoint", "chat")
    if kind not in KINDS:
        raise ValueError(f"record {index}: endpoint: one of {sorted(KINDS)}")
    family = family_of(kind)
    model = _text(index, record, "model")
    if model is None:
        raise ValueError(f"record {index}: model is required")
    raw_key, kid = _text(index, record, "api_key"), _text(index, record, "api_key_id")
    if raw_key is not None and kid is not None:
        raise ValueError(f"record {index}: give api_key or api_key_id, not both")
    if raw_key is not None:
        kid = key_id(raw_key, family)
    project, workspace = _text(index, record, "project"), _text(index, record, "workspace")
    if family == "anthropic" and project is not None:
        raise ValueError(f"record {index}: project: Anthropic usage has a workspace instead")
    if family == "openai" and workspace is not None:
        raise ValueError(f"record {index}: workspace: OpenAI usage has a project instead")
    scope = workspace if family == "anthropic" else project or DEFAULT_PROJECT
    counts = (
        _count(index, record, "input_tokens"),
        _count(index, record, "cached_tokens"),
        _count(index, record, "cache_write_tokens"),
        _count(index, record, "output_tokens"),
        _count(index, record, "requests", 1),
    )
    batch = record.get("batch", False)
    if not isinstance(batch, bool):
        raise ValueError(f"record {index}: batch: true or false")
    return (_at(index, record.get("at")), family, kind, model, kid, scope, batch), counts
