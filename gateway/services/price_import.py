"""Import model prices from the two public price catalogs: LiteLLM's
``model_prices_and_context_window.json`` and OpenRouter's ``GET /api/v1/models``.

Both quote USD per token; the catalog stores USD per million tokens. Every number is read as a
``Decimal`` straight from the JSON text (a float would turn ``0.0000029999900000000002`` into
something else before we ever saw it), scaled by 10^6 and quantised to the price fields' 12
decimals. The whole file is validated before anything is written: a malformed file is rejected
with the path of every problem and changes nothing. A price change never rewrites history: it
appends a ``ModelPrice`` row through ``model_price_add`` (which records the audit entry).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from gateway.models import LLMModel, ModelPrice
from gateway.services.catalog import model_price_add, model_update
from teams.models import Organization

FORMATS = ("litellm", "openrouter")
PRICE_FIELDS = (
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "cache_write_usd_per_mtok",
)
PRICE_LABELS = {
    "input_usd_per_mtok": "input",
    "output_usd_per_mtok": "output",
    "cached_input_usd_per_mtok": "cached input",
    "cache_write_usd_per_mtok": "cache write",
}
QUANT = Decimal("1e-12")
# ModelPrice fields hold 24 digits, 12 after the point.
MAX_PER_MTOK = Decimal(10) ** 12
MAX_TOKENS = 2_147_483_647  # PositiveIntegerField

LITELLM_PRICES = {
    "input_cost_per_token": "input_usd_per_mtok",
    "output_cost_per_token": "output_usd_per_mtok",
    "cache_read_input_token_cost": "cached_input_usd_per_mtok",
    "cache_creation_input_token_cost": "cache_write_usd_per_mtok",
}
OPENROUTER_PRICES = {
    "prompt": "input_usd_per_mtok",
    "completion": "output_usd_per_mtok",
    "input_cache_read": "cached_input_usd_per_mtok",
    "input_cache_write": "cache_write_usd_per_mtok",
}
TIERED_KEY_RE = re.compile(r"_above_")
DECIMAL_TEXT_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
# OpenRouter quotes "-1" for routers whose price depends on the model they pick.
OPENROUTER_VARIABLE = Decimal(-1)


class PriceImportError(ValueError):
    """The file cannot be imported; ``errors`` lists each problem as ``path: message``."""

    def __init__(self, errors: list[str]):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


@dataclass(frozen=True)
class CatalogEntry:
    """One model of a catalog, prices already in USD per million tokens."""

    key: str
    prices: dict[str, Decimal | None]  # PRICE_FIELDS -> value; empty when not token-priced
    context_window: int | None = None
    max_output_tokens: int | None = None
    not_modelled: tuple[str, ...] = ()  # tiered or extra prices the catalog cannot hold

    @property
    def token_priced(self) -> bool:
        return bool(self.prices)


@dataclass
class Catalog:
    format: str
    entries: dict[str, CatalogEntry]
    skipped: list[str] = field(default_factory=list)  # e.g. "sample_spec"

    @property
    def token_priced(self) -> int:
        return sum(1 for e in self.entries.values() if e.token_priced)


@dataclass
class PriceChange:
    model: LLMModel
    entry: CatalogEntry
    old: ModelPrice | None
    new: dict[str, Decimal | None]

    def changed_fields(self) -> list[str]:
        if self.old is None:
            return list(PRICE_FIELDS)
        return [n for n in PRICE_FIELDS if getattr(self.old, n) != self.new[n]]


@dataclass
class LimitFill:
    model: LLMModel
    entry: CatalogEntry
    values: dict[str, int]  # context_window / max_output_tokens, only those that were empty


@dataclass
class ImportPlan:
    org: Organization
    catalog: Catalog
    effective_from: datetime | None  # None: now, at the moment of writing
    matched: dict[str, str] = field(default_factory=dict)  # model name -> catalog key
    changes: list[PriceChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    fills: list[LimitFill] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # model -> candidate keys
    unpriced: dict[str, str] = field(default_factory=dict)  # model -> key without token prices
    not_modelled: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model -> keys
    errors: list[str] = field(default_factory=list)


# --- parsing ------------------------------------------------------------------------------------


_DUPLICATES = "\x00duplicates"  # where _object_pairs notes repeated keys, for _duplicates


def _object_pairs(pairs: list[tuple[str, object]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            # json.loads keeps the last one silently; two prices for one model is a broken file
            obj.setdefault(_DUPLICATES, []).append(key)
        obj[key] = value
    return obj


class _Constant:
    """NaN / Infinity, which Python's json accepts but which are not numbers."""

    def __init__(self, text: str):
        self.text = text


def _load(text: str | bytes) -> object:
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_Constant,
            object_pairs_hook=_object_pairs,
        )
    except json.JSONDecodeError as exc:
        raise PriceImportError(
            [f"line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"]
        ) from exc
    except (UnicodeDecodeError, RecursionError) as exc:
        raise PriceImportError([f"(file): not valid JSON ({exc.__class__.__name__})"]) from exc


def _duplicates(obj: dict, path: str, errors: list[str]) -> None:
    for key in obj.pop(_DUPLICATES, []):
        errors.append(f"{_join(path, key)}: duplicate key")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return type(value).__name__


def _number(value: object, *, strings: bool) -> Decimal | None:
    """The value as a finite Decimal, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    text_ok = strings and isinstance(value, str) and DECIMAL_TEXT_RE.match(value)
    if not (isinstance(value, int | Decimal) or text_ok):
        return None
    number = Decimal(value)
    return number if number.is_finite() else None


def _per_mtok(value: object, path: str, errors: list[str], *, strings: bool) -> Decimal | None:
    number = _number(value, strings=strings)
    if number is None:
        errors.append(f"{path}: not a number")
        return None
    if number < 0:
        errors.append(f"{path}: negative")
        return None
    per_mtok = number.scaleb(6)  # moves the point: no product to round
    if per_mtok >= MAX_PER_MTOK:
        errors.append(f"{path}: too large")
        return None
    return per_mtok.quantize(QUANT)


def _tokens(value: object, path: str, errors: list[str]) -> int | None:
    """A token limit; 0 and null mean unknown."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{path}: not a whole number")
        return None
    if value < 0 or value > MAX_TOKENS:
        errors.append(f"{path}: out of range")
        return None
    return value or None


def litellm_catalog_parse(*, text: str | bytes) -> Catalog:
    """Parse LiteLLM's price map: ``{"model": {"input_cost_per_token": 2.5e-06, ...}}``."""
    data = _load(text)
    errors: list[str] = []
    if not isinstance(data, dict):
        raise PriceImportError([f"(top level): expected an object, got {_type_name(data)}"])
    _duplicates(data, "", errors)
    entries: dict[str, CatalogEntry] = {}
    skipped: list[str] = []
    for key, spec in data.items():
        if key == "sample_spec":
            skipped.append(key)
            continue
        if not isinstance(spec, dict):
            errors.append(f"{key}: expected an object, got {_type_name(spec)}")
            continue
        _duplicates(spec, key, errors)
        prices: dict[str, Decimal | None] = {}
        for name, target in LITELLM_PRICES.items():
            if spec.get(name) is not None:
                prices[target] = _per_mtok(spec[name], f"{key}.{name}", errors, strings=False)
        if "input_usd_per_mtok" not in prices and "output_usd_per_mtok" not in prices:
            prices = {}  # priced per image, second or call: nothing to import per token
        if prices:
            prices.setdefault("input_usd_per_mtok", Decimal(0))
            prices.setdefault("output_usd_per_mtok", Decimal(0))
            prices.setdefault("cached_input_usd_per_mtok", None)
            prices.setdefault("cache_write_usd_per_mtok", None)
        context = _tokens(spec.get("max_input_tokens"), f"{key}.max_input_tokens", errors)
        output_key = "max_output_tokens" if "max_output_tokens" in spec else "max_tokens"
        max_output = _tokens(spec.get(output_key), f"{key}.{output_key}", errors)
        tiered = tuple(
            sorted(k for k, v in spec.items() if TIERED_KEY_RE.search(k) and v is not None)
        )
        entries[key] = CatalogEntry(
            key=key,
            prices=prices,
            context_window=context,
            max_output_tokens=max_output,
            not_modelled=tiered,
        )
    if errors:
        raise PriceImportError(errors)
    return Catalog(format="litellm", entries=entries, skipped=skipped)


def openrouter_catalog_parse(*, text: str | bytes) -> Catalog:
    """Parse OpenRouter's model list: ``{"data": [{"id": ..., "pricing": {"prompt": "…"}}]}``."""
    data = _load(text)
    if not isinstance(data, dict):
        raise PriceImportError([f"(top level): expected an object, got {_type_name(data)}"])
    errors: list[str] = []
    _duplicates(data, "", errors)
    rows = data.get("data")
    if not isinstance(rows, list):
        raise PriceImportError([*errors, f"data: expected a list, got {_type_name(rows)}"])
    entries: dict[str, CatalogEntry] = {}
    skipped: list[str] = []
    for i, row in enumerate(rows):
        at = f"data[{i}]"
        if not isinstance(row, dict):
            errors.append(f"{at}: expected an object, got {_type_name(row)}")
            continue
        _duplicates(row, at, errors)
        key = row.get("id")
        if not isinstance(key, str) or not key:
            errors.append(f"{at}.id: expected a model id")
            continue
        at = f"{at}({key})"
        if key in entries:
            errors.append(f"{at}.id: duplicate id")
            continue
        pricing = row.get("pricing")
        if not isinstance(pricing, dict):
            errors.append(f"{at}.pricing: expected an object, got {_type_name(pricing)}")
            continue
        _duplicates(pricing, f"{at}.pricing", errors)
        if any(_number(v, strings=True) == OPENROUTER_VARIABLE for v in pricing.values()):
            skipped.append(key)  # a router (openrouter/auto): no fixed price to import
            continue
        prices, not_modelled = _openrouter_prices(pricing, at, errors)
        context, max_output = _openrouter_limits(row, at, errors)
        entries[key] = CatalogEntry(
            key=key,
            prices=prices,
            context_window=context,
            max_output_tokens=max_output,
            not_modelled=not_modelled,
        )
    if errors:
        raise PriceImportError(errors)
    return Catalog(format="openrouter", entries=entries, skipped=skipped)


def _openrouter_prices(
    pricing: dict, at: str, errors: list[str]
) -> tuple[dict[str, Decimal | None], tuple[str, ...]]:
    """A row's per-token prices, and the names of the prices billed otherwise (not modelled)."""
    prices: dict[str, Decimal | None] = {}
    not_modelled: list[str] = []
    for name, value in pricing.items():
        target = OPENROUTER_PRICES.get(name)
        if value is None and target not in ("input_usd_per_mtok", "output_usd_per_mtok"):
            continue
        per_mtok = _per_mtok(value, f"{at}.pricing.{name}", errors, strings=True)
        if target:
            prices[target] = per_mtok
        elif per_mtok:  # request, image, web_search, ...: billed, but not per token
            not_modelled.append(name)
    for required in ("prompt", "completion"):
        if required not in pricing:
            errors.append(f"{at}.pricing.{required}: missing")
    prices.setdefault("cached_input_usd_per_mtok", None)
    prices.setdefault("cache_write_usd_per_mtok", None)
    return prices, tuple(sorted(not_modelled))


def _openrouter_limits(row: dict, at: str, errors: list[str]) -> tuple[int | None, int | None]:
    """A row's (context window, max output tokens)."""
    top = row.get("top_provider")
    if top is not None and not isinstance(top, dict):
        errors.append(f"{at}.top_provider: expected an object, got {_type_name(top)}")
        top = None
    context = _tokens(row.get("context_length"), f"{at}.context_length", errors)
    max_output = _tokens(
        (top or {}).get("max_completion_tokens"),
        f"{at}.top_provider.max_completion_tokens",
        errors,
    )
    return context, max_output


PARSERS: dict[str, Callable[..., Catalog]] = {
    "litellm": litellm_catalog_parse,
    "openrouter": openrouter_catalog_parse,
}


def price_catalog_parse(*, fmt: str, text: str | bytes) -> Catalog:
    if fmt not in PARSERS:
        raise PriceImportError([f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}"])
    return PARSERS[fmt](text=text)


# --- matching and planning ----------------------------------------------------------------------


def _tail(key: str) -> str | None:
    """The name after the ``provider/`` prefix: ``anthropic/claude-x`` -> ``claude-x``."""
    return key.split("/", 1)[1] if "/" in key else None


def _match(
    model: LLMModel, catalog: Catalog, by_tail: dict[str, list[str]]
) -> tuple[CatalogEntry | None, list[str]]:
    """Exact key first; then a key whose part after ``provider/`` is the upstream name. Several
    such keys: the one prefixed by the model's provider kind, else any if they all cost the same,
    else none (ambiguous; the candidates are returned)."""
    name = model.upstream_model or model.name
    if name in catalog.entries:
        return catalog.entries[name], []
    candidates = by_tail.get(name, [])
    if len(candidates) == 1:
        return catalog.entries[candidates[0]], []
    if not candidates:
        return None, []
    same_kind = [k for k in candidates if k.split("/", 1)[0] == model.provider.kind]
    if len(same_kind) == 1:
        return catalog.entries[same_kind[0]], []
    prices = {tuple(sorted(catalog.entries[k].prices.items())) for k in candidates}
    if len(prices) == 1:
        return catalog.entries[candidates[0]], []
    return None, candidates


def price_import_plan(
    *, org: Organization, catalog: Catalog, effective_from: datetime | None = None
) -> ImportPlan:
    """Compare the org's models with the catalog; reads only. A model needs a new price row when
    any of its four prices differs from its latest price (the one in force from then on)."""
    plan = ImportPlan(org=org, catalog=catalog, effective_from=effective_from)
    now = timezone.now()
    if effective_from is not None and effective_from < now:
        plan.errors.append(
            f"--effective: {effective_from.isoformat()} is in the past; "
            "prices cannot be back-dated (history is never rewritten)"
        )
    by_tail: dict[str, list[str]] = defaultdict(list)
    for key in catalog.entries:
        tail = _tail(key)
        if tail:
            by_tail[tail].append(key)
    models = LLMModel.objects.filter(org=org).select_related("provider").order_by("name")
    latest: dict[int, ModelPrice] = {}
    for price in ModelPrice.objects.filter(model__org=org).order_by("model_id", "effective_from"):
        latest[price.model_id] = price
    for model in models:
        entry, candidates = _match(model, catalog, by_tail)
        if entry is None:
            if candidates:
                plan.ambiguous[model.name] = candidates
            else:
                plan.unmatched.append(model.name)
            continue
        plan.matched[model.name] = entry.key
        if entry.not_modelled:
            plan.not_modelled[model.name] = entry.not_modelled
        fill = {
            name: value
            for name, value in (
                ("context_window", entry.context_window),
                ("max_output_tokens", entry.max_output_tokens),
            )
            if value and getattr(model, name) is None
        }
        if fill:
            plan.fills.append(LimitFill(model=model, entry=entry, values=fill))
        if not entry.token_priced:
            plan.unpriced[model.name] = entry.key
            continue
        old = latest.get(model.pk)
        change = PriceChange(model=model, entry=entry, old=old, new=dict(entry.prices))
        if not change.changed_fields():
            plan.unchanged.append(model.name)
            continue
        starts = effective_from or now
        if old is not None and starts <= old.effective_from:
            plan.errors.append(
                f"{model.name}: a price from {old.effective_from.isoformat()} is already "
                "recorded; the new one must start after it (--effective)"
            )
        plan.changes.append(change)
    return plan


# --- writing ------------------------------------------------------------------------------------


def price_import_apply(*, plan: ImportPlan, actor=None) -> ImportPlan:
    """Write the plan in one transaction: a price row (and audit entry) per change, and the
    context window / max output tokens where the model had none."""
    if plan.errors:
        raise PriceImportError(plan.errors)
    source = plan.catalog.format
    try:
        with transaction.atomic():
            for change in plan.changes:
                model_price_add(
                    model=change.model,
                    actor=actor,
                    effective_from=plan.effective_from,
                    source=source,
                    **change.new,
                )
            for fill in plan.fills:
                model_update(model=fill.model, actor=actor, **fill.values)
    except ValidationError as exc:
        raise PriceImportError([f"{plan.org.slug}: {m}" for m in exc.messages]) from exc
    return plan


def prices_import(
    *,
    org: Organization,
    fmt: str,
    text: str | bytes,
    effective_from: datetime | None = None,
    dry_run: bool = False,
    actor=None,
) -> ImportPlan:
    """Parse a catalog, plan against the org's models and, unless ``dry_run``, write the plan.
    Raises ``PriceImportError`` (nothing written) on any problem in the file or the plan."""
    catalog = price_catalog_parse(fmt=fmt, text=text)
    plan = price_import_plan(org=org, catalog=catalog, effective_from=effective_from)
    if plan.errors:
        raise PriceImportError(plan.errors)
    if not dry_run:
        price_import_apply(plan=plan, actor=actor)
    return plan
