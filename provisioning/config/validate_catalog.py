"""Validation of the file's catalogue sections: ``providers``, ``models``, ``groups``, ``routers``.

Each ``check_*`` takes one raw list item and its path, records every problem on the
``Checker`` and returns the spec, or ``None`` if the item had an error. References between
sections (a model's provider, a group's members) are checked later, in ``validate.py``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import URLValidator

from gateway.models import GroupStrategy, ModelMode, ProviderKind, Scorer
from gateway.services import catalog
from gateway.services.credentials import SecretDecryptError, provider_key_unseal
from gateway.services.providers import provider_base_url_check
from provisioning.config.checker import Checker, join, messages
from provisioning.config.spec import (
    ENV_NAME_RE,
    PRICE_DIGITS,
    PRICE_FIELDS,
    PRICE_PLACES,
    GroupSpec,
    ModelSpec,
    ProviderSpec,
    RouterSpec,
)

_PROVIDER_KEYS = (
    "api_key_env",
    "api_version",
    "responses_api",
    "publisher",
    "invoice_issuer",
    "admin_api_key_env",
)
_KEY_REFERENCES = tuple(f"{key}_encrypted" for key in catalog.PROVIDER_KEYS)
_MODEL_OPTIONAL = (
    "upstream_model",
    "mode",
    "context_window",
    "max_output_tokens",
    *PRICE_FIELDS,
    "cache",  # the model's response-cache policy (validate_cache)
)
_ROUTER_RATES = ("threshold", "shadow_rate", "pair_sample_rate")


# --- providers ------------------------------------------------------------------------------


def _base_url(c: Checker, value: Any, path: str, field: str = "base_url") -> str | None:
    base_url = c.text(value, path)
    if base_url is None:
        return None
    try:
        URLValidator(schemes=["http", "https"])(base_url)
        provider_base_url_check(base_url=base_url, field=field)
    except ValidationError as exc:
        c.err(path, messages(exc))
        return None
    return base_url


def _api_key_reference(
    c: Checker, data: dict, path: str, slug: str | None, key: str = "api_key"
) -> str | None:
    """The ``<key>_encrypted`` reference as written ("" clears the stored key), checked to
    decrypt under FINOPS_ENCRYPTION_KEY; None when left out or invalid. No message quotes it.
    ``key`` is "api_key" or "admin_api_key"; whose organisation it is for, the planner checks."""
    value = data.get(f"{key}_encrypted")
    where = join(path, f"{key}_encrypted")
    if value is None or value == "":
        return value
    name = f"provider {slug}" if slug else "this provider"
    if not isinstance(value, str):
        c.err(where, f"{name}: expected the token printed by manage.py encrypt_secret")
        return None
    if data.get(f"{key}_env"):
        c.err(where, f"{name}: {key}_env and {key}_encrypted: one credential, not both")
        return None
    try:
        provider_key_unseal(value)
    except SecretDecryptError as exc:
        c.err(where, f"{name}: {exc}")
        return None
    except ImproperlyConfigured as exc:
        c.err(where, f"{name}: {exc}")
        return None
    return value.strip()


def check_provider(c: Checker, raw: Any, path: str) -> ProviderSpec | None:
    data = c.mapping(
        raw,
        path,
        required=("name", "kind", "base_url"),
        optional=(*_PROVIDER_KEYS, "admin_base_url", *_KEY_REFERENCES),
    )
    if data is None:
        return None
    slug = c.slug(data.get("name"), join(path, "name"))
    kind = c.choice(data.get("kind"), join(path, "kind"), ProviderKind)
    base_url = _base_url(c, data.get("base_url"), join(path, "base_url"))
    extra = {}
    for key in _PROVIDER_KEYS:
        value = data.get(key)
        extra[key] = "" if value is None else c.text(value, join(path, key), max_len=128)
    admin_url = data.get("admin_base_url")
    if admin_url in (None, ""):
        extra["admin_base_url"] = ""  # the admin API is base_url's
    else:
        where = join(path, "admin_base_url")
        extra["admin_base_url"] = _base_url(c, admin_url, where, "admin_base_url")
    for key in ("api_key_env", "admin_api_key_env"):
        if extra[key] and not ENV_NAME_RE.match(extra[key]):
            c.err(join(path, key), "must be an environment variable name")
    if extra["responses_api"] not in ("", "native", "translate", None):
        c.err(join(path, "responses_api"), "must be native or translate")
    if kind == ProviderKind.AZURE and data.get("api_version") is None:
        c.err(join(path, "api_version"), "required for an azure provider")
    errors = len(c.errors)
    tokens = {
        f"{key}_encrypted": _api_key_reference(c, data, path, slug, key)
        for key in catalog.PROVIDER_KEYS
    }
    if None in (slug, kind, base_url) or None in extra.values() or len(c.errors) > errors:
        return None
    return ProviderSpec(slug=slug, kind=kind, base_url=base_url, **extra, **tokens, path=path)


# --- models and their prices ----------------------------------------------------------------


def _prices(c: Checker, data: dict, path: str, mode: str | None) -> dict | None:
    """The model's four prices; ``None`` if one is missing or invalid. Input and (but for an
    embedding model) output are required; output defaults to 0, the others to no price."""
    prices: dict[str, Decimal | None] = {}
    ok = True
    for key in PRICE_FIELDS:
        value = data.get(key)
        if value is None:
            needed = key == "input_usd_per_mtok" or (
                key == "output_usd_per_mtok" and mode != ModelMode.EMBEDDING
            )
            if needed:
                c.err(join(path, key), 'required (a quoted decimal string, e.g. "0.15")')
                ok = False
            prices[key] = Decimal("0") if key == "output_usd_per_mtok" else None
            continue
        prices[key] = c.money(value, join(path, key), places=PRICE_PLACES, digits=PRICE_DIGITS)
        ok = ok and prices[key] is not None
    return prices if ok else None


def check_model(c: Checker, raw: Any, path: str) -> ModelSpec | None:
    data = c.mapping(raw, path, required=("name", "provider"), optional=_MODEL_OPTIONAL)
    if data is None:
        return None
    name = c.model_name(data.get("name"), join(path, "name"))
    provider = c.slug(data.get("provider"), join(path, "provider"))
    upstream = c.text(data.get("upstream_model"), join(path, "upstream_model"), default=name or "")
    mode = c.choice(data.get("mode"), join(path, "mode"), ModelMode, default=ModelMode.CHAT)
    context = c.integer(data.get("context_window"), join(path, "context_window"), minimum=1)
    max_out = c.integer(data.get("max_output_tokens"), join(path, "max_output_tokens"), minimum=1)
    prices = _prices(c, data, path, mode)
    if prices is None or None in (name, provider, upstream, mode):
        return None
    return ModelSpec(
        name=name,
        provider=provider,
        upstream_model=upstream,
        mode=mode,
        context_window=context,
        max_output_tokens=max_out,
        prices=prices,
        path=path,
    )


# --- groups ---------------------------------------------------------------------------------


def _group_members(c: Checker, data: dict, path: str) -> list[tuple[str, int]] | None:
    """``[(model, weight)]``; a member may be written as just the model's name."""
    members: list[tuple[str, int]] = []
    ok = True
    members_path = join(path, "members")
    raw_members = c.items(data.get("members"), members_path)
    if "members" in data and not raw_members:
        c.err(members_path, "a group needs at least one member")
        ok = False
    for i, item in enumerate(raw_members):
        where = join(members_path, i)
        if isinstance(item, str):
            item = {"model": item}
        entry = c.mapping(item, where, required=("model",), optional=("weight",))
        if entry is None:
            ok = False
            continue
        model = c.model_name(entry.get("model"), join(where, "model"))
        weight = c.integer(entry.get("weight", 1), join(where, "weight"), minimum=0)
        if model is None or weight is None:
            ok = False
        elif model in {m for m, _ in members}:
            c.err(join(where, "model"), f"{model} is listed twice")
            ok = False
        else:
            members.append((model, weight))
    return members if ok else None


def _group_fallbacks(c: Checker, data: dict, path: str) -> list[str] | None:
    fallbacks: list[str] = []
    ok = True
    for i, item in enumerate(c.items(data.get("fallbacks"), join(path, "fallbacks"))):
        where = join(path, "fallbacks", i)
        model = c.model_name(item, where)
        if model is None:
            ok = False
        elif model in fallbacks:
            c.err(where, f"{model} is listed twice")
            ok = False
        else:
            fallbacks.append(model)
    return fallbacks if ok else None


def check_group(c: Checker, raw: Any, path: str) -> GroupSpec | None:
    data = c.mapping(raw, path, required=("name", "members"), optional=("strategy", "fallbacks"))
    if data is None:
        return None
    name = c.model_name(data.get("name"), join(path, "name"))
    strategy = c.choice(
        data.get("strategy"), join(path, "strategy"), GroupStrategy, default=GroupStrategy.WEIGHTED
    )
    members = _group_members(c, data, path)
    fallbacks = _group_fallbacks(c, data, path)
    if None in (members, fallbacks, name, strategy):
        return None
    return GroupSpec(name=name, strategy=strategy, members=members, fallbacks=fallbacks, path=path)


# --- routers --------------------------------------------------------------------------------


def _router_rates(c: Checker, data: dict, path: str) -> dict[str, float]:
    """The rates the file gives, each a number from 0 to 1 (a left-out one is absent)."""
    rates = {}
    for key in _ROUTER_RATES:
        value = data.get(key)
        if value is None:
            pass
        elif isinstance(value, bool) or not isinstance(value, int | float):
            c.err(join(path, key), "expected a number between 0 and 1")
        elif not 0 <= value <= 1:
            c.err(join(path, key), "must be between 0 and 1")
        else:
            rates[key] = float(value)
    return rates


def _router_judge(c: Checker, data: dict, path: str) -> tuple[Any, Any]:
    """The judge model and rubric as written; "" is kept as is (it clears the setting)."""
    judge = data.get("judge_model")
    if judge is not None and judge != "":
        judge = c.model_name(judge, join(path, "judge_model"))
    rubric = data.get("judge_rubric")
    if rubric is not None and rubric != "":
        rubric = c.text(rubric, join(path, "judge_rubric"), max_len=4000)
    return judge, rubric


def check_router(c: Checker, raw: Any, path: str) -> RouterSpec | None:
    data = c.mapping(
        raw,
        path,
        required=("name", "strong", "weak"),
        optional=tuple(f for f in catalog.ROUTER_EDITABLE if f not in ("strong", "weak")),
    )
    if data is None:
        return None
    errors = len(c.errors)
    name = c.model_name(data.get("name"), join(path, "name"))
    strong = c.model_name(data.get("strong"), join(path, "strong"))
    weak = c.model_name(data.get("weak"), join(path, "weak"))
    scorer = c.choice(data.get("scorer"), join(path, "scorer"), Scorer, default=Scorer.HEURISTIC)
    rates = _router_rates(c, data, path)
    pair_days = c.integer(
        data.get("pair_retention_days"),
        join(path, "pair_retention_days"),
        minimum=1,
        maximum=3650,
    )
    judge, rubric = _router_judge(c, data, path)
    store = data.get("store_prompts")
    if store is not None:
        store = c.boolean(store, join(path, "store_prompts"))
    retention = c.integer(
        data.get("prompt_retention"), join(path, "prompt_retention"), maximum=1_000_000
    )
    if strong is not None and strong == weak:
        c.err(join(path, "weak"), "the weak model must differ from the strong one")
        return None
    if None in (name, strong, weak, scorer) or len(c.errors) > errors:
        return None
    return RouterSpec(
        name=name,
        strong=strong,
        weak=weak,
        scorer=scorer,
        threshold=rates.get("threshold"),
        store_prompts=store,
        prompt_retention=retention,
        shadow_rate=rates.get("shadow_rate"),
        pair_sample_rate=rates.get("pair_sample_rate"),
        pair_retention_days=pair_days,
        judge_model=judge,
        judge_rubric=rubric,
        path=path,
    )
