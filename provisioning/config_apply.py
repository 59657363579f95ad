"""Declarative configuration: parse, validate, diff and apply one organisation's YAML file.

The file is the desired state of one organisation (its providers, models with prices, groups,
routers, teams with leads and features, and budgets). Applying it is idempotent: the plan is the
difference between the file and the database, and an empty plan writes nothing. The whole apply
runs in one transaction, so an invalid file (or a failure half-way) changes nothing.

Three phases, each usable on its own:

- ``config_load`` turns YAML text into plain data (duplicate keys are errors);
- ``config_validate`` checks that data against the schema and returns a ``ConfigSpec``,
  collecting every error with its path (``teams[1].budgets[0].limit_usd: not a decimal``);
- ``config_apply`` plans the changes against the database and, unless ``dry_run``, applies them,
  recording one audit entry per change.

Objects the file does not list are kept unless ``prune`` is set. Prices are history: a changed
price adds a ``ModelPrice`` row effective now, it never rewrites an old one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.text import slugify

from gateway.models import (
    GroupStrategy,
    LLMModel,
    ModelGroup,
    ModelMode,
    Provider,
    ProviderKind,
    Router,
    Scorer,
    validate_model_name,
)
from gateway.services import catalog
from gateway.services.providers import provider_base_url_check
from teams import services
from teams.models import (
    Budget,
    BudgetAction,
    BudgetPeriod,
    BudgetScope,
    Feature,
    Membership,
    Organization,
    Role,
    Team,
    default_thresholds,
    validate_timezone,
)

SLUG_MAX = 64
BUDGET_PLACES, BUDGET_DIGITS = 6, 18  # Budget.limit_usd
PRICE_PLACES, PRICE_DIGITS = 12, 24  # ModelPrice.*_usd_per_mtok
PRICE_FIELDS = (
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "cache_write_usd_per_mtok",
)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LIMIT_MAX = 2_147_483_647  # Team.*_limit / max_parallel (PositiveIntegerField)
TEAM_LIMITS = ("rpm_limit", "tpm_limit", "max_parallel")


class ConfigError(Exception):
    """The file is invalid or cannot be applied; ``errors`` holds one ``path: message`` each."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# --- the validated file ---------------------------------------------------------------------


@dataclass
class ProviderSpec:
    slug: str
    kind: str
    base_url: str
    api_key_env: str = ""
    api_version: str = ""
    publisher: str = ""
    invoice_issuer: str = ""


@dataclass
class ModelSpec:
    name: str
    provider: str
    upstream_model: str
    mode: str
    context_window: int | None
    max_output_tokens: int | None
    prices: dict[str, Decimal | None]
    path: str = field(default="", compare=False)


@dataclass
class GroupSpec:
    name: str
    strategy: str
    members: list[tuple[str, int]]
    fallbacks: list[str]
    path: str = field(default="", compare=False)


@dataclass
class RouterSpec:
    name: str
    strong: str
    weak: str
    scorer: str
    # left out: kept as it is (calibrate_router may have set it); 0.5 for a new router
    threshold: float | None
    store_prompts: bool | None = None
    prompt_retention: int | None = None
    # shadow evaluation; each left out: kept as it is (the model's default for a new router)
    shadow_rate: float | None = None
    pair_sample_rate: float | None = None
    pair_retention_days: int | None = None
    judge_model: str | None = None  # "" clears it
    judge_rubric: str | None = None
    path: str = field(default="", compare=False)


@dataclass
class FeatureSpec:
    slug: str
    label: str
    default_model: str | None = None  # left out: kept as it is


@dataclass
class TeamSpec:
    slug: str
    label: str
    leads: list[str]
    features: list[FeatureSpec]
    # only the limits the file names: a left-out limit is kept, ``null`` removes it
    limits: dict[str, int | None] = field(default_factory=dict)


@dataclass
class BudgetSpec:
    scope: str
    team: str | None
    feature: str | None
    period: str
    limit_usd: Decimal
    action: str
    downgrade_to: str | None
    alert_thresholds: list[int]
    recipients: list[str]
    fail_open: bool = False
    path: str = field(default="", compare=False)

    @property
    def ident(self) -> tuple[str, str | None, str | None, str]:
        return (self.scope, self.team, self.feature, self.period)


@dataclass
class ConfigSpec:
    org_slug: str
    org_label: str
    timezone: str | None
    providers: list[ProviderSpec] = field(default_factory=list)
    models: list[ModelSpec] = field(default_factory=list)
    groups: list[GroupSpec] = field(default_factory=list)
    routers: list[RouterSpec] = field(default_factory=list)
    teams: list[TeamSpec] = field(default_factory=list)
    budgets: list[BudgetSpec] = field(default_factory=list)


# --- loading --------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys instead of silently keeping the last one."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable keys are reported by the constructor below
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def config_load(*, text: str) -> Any:
    """Parse YAML text into plain data; a syntax error becomes a ``ConfigError``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # a reader error (a control character, bad encoding) has no mark: say it is the file
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else "(file): "
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}invalid YAML ({problem})"]) from exc


# --- validation -----------------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(m for msgs in exc.message_dict.values() for m in msgs)
    return "; ".join(exc.messages)


class _Checker:
    """Structural checks that record ``path: message`` and keep going, so one run reports all."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def mapping(
        self, value: Any, path: str, *, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict | None:
        if not isinstance(value, dict):
            self.err(path or "(file)", "expected a mapping")
            return None
        for key in value:
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                self.err(_join(path, str(key)), f"unknown key (allowed: {allowed})")
        for key in required:
            if key not in value:
                self.err(_join(path, key), "required")
        return value

    def items(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, "expected a list")
            return []
        return value

    def text(self, value: Any, path: str, *, default: str | None = None, max_len: int = 500):
        if value is None and default is not None:
            return default
        if isinstance(value, dt.date):  # an unquoted 2024-10-21 is a date to YAML
            value = value.isoformat()
        if not isinstance(value, str) or not value.strip():
            self.err(path, "expected a non-empty string")
            return None
        if len(value) > max_len:
            self.err(path, f"longer than {max_len} characters")
            return None
        return value.strip()

    def slug(self, value: Any, path: str) -> str | None:
        raw = self.text(value, path)
        if raw is None:
            return None
        slug = slugify(raw)
        if not slug:
            self.err(path, f"{raw!r} has no letters or digits to make an identifier from")
            return None
        if len(slug) > SLUG_MAX:
            self.err(path, f"identifier longer than {SLUG_MAX} characters")
            return None
        return slug

    def model_name(self, value: Any, path: str) -> str | None:
        raw = self.text(value, path, max_len=128)
        if raw is None:
            return None
        try:
            validate_model_name(raw)
        except ValidationError as exc:
            self.err(path, _messages(exc))
            return None
        return raw

    def choice(self, value: Any, path: str, choices: type, *, default: str | None = None):
        if value is None and default is not None:
            return default
        allowed = [c.value for c in choices]
        if value not in allowed:
            self.err(path, f"{value!r} is not one of {', '.join(allowed)}")
            return None
        return value

    def integer(self, value: Any, path: str, *, minimum: int = 0, maximum: int | None = None):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, "expected a whole number")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and {maximum}" if maximum is not None else ""
            self.err(
                path, f"must be between {minimum}{upper}" if upper else f"must be >= {minimum}"
            )
            return None
        return value

    def positive_integer(self, value: Any, path: str) -> int | None:
        """A limit: a whole number from 1 (0 would read as "no limit" in the gateway)."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.err(path, "must be a positive integer")
            return None
        if value > LIMIT_MAX:
            self.err(path, f"must be at most {LIMIT_MAX}")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):  # "yes" / 1 are not guessed at
            self.err(path, "must be true or false")
            return None
        return value

    def money(self, value: Any, path: str, *, places: int, digits: int) -> Decimal | None:
        """Money is a quoted decimal string: a YAML float has already lost exactness."""
        if isinstance(value, bool) or value is None:
            self.err(path, "not a decimal")
            return None
        if isinstance(value, int | float):
            self.err(path, f'not a decimal string: quote money as a string ("{value}")')
            return None
        if not isinstance(value, str):
            self.err(path, "not a decimal")
            return None
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            self.err(path, "not a decimal")
            return None
        if not amount.is_finite():
            self.err(path, "not a decimal")
            return None
        if amount < 0:
            self.err(path, "must not be negative")
            return None
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            self.err(path, f"at most {places} decimal places")
            return None
        if amount.adjusted() >= digits - places:
            self.err(path, "too large")
            return None
        return amount


_PROVIDER_KEYS = ("api_key_env", "api_version", "publisher", "invoice_issuer")
_MODEL_OPTIONAL = (
    "upstream_model",
    "mode",
    "context_window",
    "max_output_tokens",
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "cache_write_usd_per_mtok",
)
_BUDGET_OPTIONAL = ("action", "alert_at", "notify", "downgrade_to", "fail_open")
_TOP_OPTIONAL = ("timezone", "providers", "models", "budgets", "groups", "routers", "teams")


def _check_provider(c: _Checker, raw: Any, path: str) -> ProviderSpec | None:
    data = c.mapping(raw, path, required=("name", "kind", "base_url"), optional=_PROVIDER_KEYS)
    if data is None:
        return None
    slug = c.slug(data.get("name"), _join(path, "name"))
    kind = c.choice(data.get("kind"), _join(path, "kind"), ProviderKind)
    base_url = c.text(data.get("base_url"), _join(path, "base_url"))
    if base_url is not None:
        try:
            URLValidator(schemes=["http", "https"])(base_url)
            provider_base_url_check(base_url=base_url)
        except ValidationError as exc:
            c.err(_join(path, "base_url"), _messages(exc))
            base_url = None
    extra = {}
    for key in _PROVIDER_KEYS:
        value = data.get(key)
        extra[key] = "" if value is None else c.text(value, _join(path, key), max_len=128)
    env_name = extra["api_key_env"]
    if env_name and not ENV_NAME_RE.match(env_name):
        c.err(_join(path, "api_key_env"), "must be an environment variable name")
    if kind == ProviderKind.AZURE and data.get("api_version") is None:
        c.err(_join(path, "api_version"), "required for an azure provider")
    if None in (slug, kind, base_url) or None in extra.values():
        return None
    return ProviderSpec(slug=slug, kind=kind, base_url=base_url, **extra)


def _check_model(c: _Checker, raw: Any, path: str) -> ModelSpec | None:
    data = c.mapping(raw, path, required=("name", "provider"), optional=_MODEL_OPTIONAL)
    if data is None:
        return None
    name = c.model_name(data.get("name"), _join(path, "name"))
    provider = c.slug(data.get("provider"), _join(path, "provider"))
    upstream = c.text(data.get("upstream_model"), _join(path, "upstream_model"), default=name or "")
    mode = c.choice(data.get("mode"), _join(path, "mode"), ModelMode, default=ModelMode.CHAT)
    context = c.integer(data.get("context_window"), _join(path, "context_window"), minimum=1)
    max_out = c.integer(data.get("max_output_tokens"), _join(path, "max_output_tokens"), minimum=1)
    prices: dict[str, Decimal | None] = {}
    ok = True
    for key in PRICE_FIELDS:
        value = data.get(key)
        if value is None:
            needed = key == "input_usd_per_mtok" or (
                key == "output_usd_per_mtok" and mode != ModelMode.EMBEDDING
            )
            if needed:
                c.err(_join(path, key), 'required (a quoted decimal string, e.g. "0.15")')
                ok = False
            prices[key] = Decimal("0") if key == "output_usd_per_mtok" else None
            continue
        prices[key] = c.money(value, _join(path, key), places=PRICE_PLACES, digits=PRICE_DIGITS)
        ok = ok and prices[key] is not None
    if not ok or None in (name, provider, upstream, mode):
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


def _check_budget(
    c: _Checker, raw: Any, path: str, *, scope: str, team: str | None, feature: str | None
) -> BudgetSpec | None:
    data = c.mapping(raw, path, required=("period", "limit_usd"), optional=_BUDGET_OPTIONAL)
    if data is None:
        return None
    period = c.choice(data.get("period"), _join(path, "period"), BudgetPeriod)
    limit = c.money(
        data.get("limit_usd"), _join(path, "limit_usd"), places=BUDGET_PLACES, digits=BUDGET_DIGITS
    )
    action = c.choice(
        data.get("action"), _join(path, "action"), BudgetAction, default=BudgetAction.BLOCK
    )
    downgrade_to = None
    if data.get("downgrade_to") is not None:
        downgrade_to = c.model_name(data["downgrade_to"], _join(path, "downgrade_to"))
    if action == BudgetAction.DOWNGRADE and data.get("downgrade_to") is None:
        c.err(_join(path, "downgrade_to"), "required when the action is downgrade")
    if action not in (None, BudgetAction.DOWNGRADE) and data.get("downgrade_to") is not None:
        c.err(_join(path, "downgrade_to"), "only used when the action is downgrade")
    fail_open = False  # fail closed, unless the file says otherwise
    if data.get("fail_open") is not None:
        fail_open = c.boolean(data["fail_open"], _join(path, "fail_open"))
    thresholds: list[int] | None = default_thresholds()
    if "alert_at" in data:
        thresholds = []
        for i, value in enumerate(c.items(data["alert_at"], _join(path, "alert_at"))):
            pct = c.integer(value, _join(_join(path, "alert_at"), i), minimum=1, maximum=1000)
            if pct is None:
                thresholds = None
            elif thresholds is not None:
                thresholds.append(pct)
    recipients: list[str] | None = []
    for i, value in enumerate(c.items(data.get("notify"), _join(path, "notify"))):
        where = _join(_join(path, "notify"), i)
        address = c.text(value, where, max_len=254)
        try:
            if address is not None:
                validate_email(address)
        except ValidationError:
            c.err(where, f"{address!r} is not an e-mail address")
            address = None
        if address is None:
            recipients = None
        elif recipients is not None and address not in recipients:
            recipients.append(address)
    if None in (period, limit, action, thresholds, recipients, fail_open):
        return None
    return BudgetSpec(
        scope=scope,
        team=team,
        feature=feature,
        period=period,
        limit_usd=limit,
        action=action,
        downgrade_to=downgrade_to,
        alert_thresholds=sorted(set(thresholds)),
        recipients=recipients,
        fail_open=fail_open,
        path=path,
    )


def _check_budgets(
    c: _Checker,
    raw: Any,
    path: str,
    *,
    scope: str,
    team: str | None = None,
    feature: str | None = None,
) -> list[BudgetSpec]:
    budgets: list[BudgetSpec] = []
    periods: set[str] = set()
    for i, item in enumerate(c.items(raw, path)):
        budget = _check_budget(c, item, _join(path, i), scope=scope, team=team, feature=feature)
        if budget is None:
            continue
        if budget.period in periods:
            c.err(_join(_join(path, i), "period"), f"a {budget.period} budget is already listed")
            continue
        periods.add(budget.period)
        budgets.append(budget)
    return budgets


def _check_group(c: _Checker, raw: Any, path: str) -> GroupSpec | None:
    data = c.mapping(raw, path, required=("name", "members"), optional=("strategy", "fallbacks"))
    if data is None:
        return None
    name = c.model_name(data.get("name"), _join(path, "name"))
    strategy = c.choice(
        data.get("strategy"), _join(path, "strategy"), GroupStrategy, default=GroupStrategy.WEIGHTED
    )
    members: list[tuple[str, int]] = []
    ok = True
    members_path = _join(path, "members")
    raw_members = c.items(data.get("members"), members_path)
    if "members" in data and not raw_members:
        c.err(members_path, "a group needs at least one member")
        ok = False
    for i, item in enumerate(raw_members):
        where = _join(members_path, i)
        if isinstance(item, str):
            item = {"model": item}
        entry = c.mapping(item, where, required=("model",), optional=("weight",))
        if entry is None:
            ok = False
            continue
        model = c.model_name(entry.get("model"), _join(where, "model"))
        weight = c.integer(entry.get("weight", 1), _join(where, "weight"), minimum=0)
        if model is None or weight is None:
            ok = False
        elif model in {m for m, _ in members}:
            c.err(_join(where, "model"), f"{model} is listed twice")
            ok = False
        else:
            members.append((model, weight))
    fallbacks: list[str] = []
    for i, item in enumerate(c.items(data.get("fallbacks"), _join(path, "fallbacks"))):
        where = _join(_join(path, "fallbacks"), i)
        model = c.model_name(item, where)
        if model is None:
            ok = False
        elif model in fallbacks:
            c.err(where, f"{model} is listed twice")
            ok = False
        else:
            fallbacks.append(model)
    if not ok or None in (name, strategy):
        return None
    return GroupSpec(name=name, strategy=strategy, members=members, fallbacks=fallbacks, path=path)


def _check_router(c: _Checker, raw: Any, path: str) -> RouterSpec | None:
    data = c.mapping(
        raw,
        path,
        required=("name", "strong", "weak"),
        optional=tuple(f for f in catalog.ROUTER_EDITABLE if f not in ("strong", "weak")),
    )
    if data is None:
        return None
    errors = len(c.errors)
    name = c.model_name(data.get("name"), _join(path, "name"))
    strong = c.model_name(data.get("strong"), _join(path, "strong"))
    weak = c.model_name(data.get("weak"), _join(path, "weak"))
    scorer = c.choice(data.get("scorer"), _join(path, "scorer"), Scorer, default=Scorer.HEURISTIC)
    rates = {}
    for key in ("threshold", "shadow_rate", "pair_sample_rate"):
        value = data.get(key)
        if value is None:
            pass
        elif isinstance(value, bool) or not isinstance(value, int | float):
            c.err(_join(path, key), "expected a number between 0 and 1")
        elif not 0 <= value <= 1:
            c.err(_join(path, key), "must be between 0 and 1")
        else:
            rates[key] = float(value)
    threshold = rates.get("threshold")
    pair_days = c.integer(
        data.get("pair_retention_days"),
        _join(path, "pair_retention_days"),
        minimum=1,
        maximum=3650,
    )
    judge = data.get("judge_model")
    if judge is not None and judge != "":
        judge = c.model_name(judge, _join(path, "judge_model"))
    rubric = data.get("judge_rubric")
    if rubric is not None and rubric != "":
        rubric = c.text(rubric, _join(path, "judge_rubric"), max_len=4000)
    store = data.get("store_prompts")
    if store is not None:
        store = c.boolean(store, _join(path, "store_prompts"))
    retention = c.integer(
        data.get("prompt_retention"), _join(path, "prompt_retention"), maximum=1_000_000
    )
    if strong is not None and strong == weak:
        c.err(_join(path, "weak"), "the weak model must differ from the strong one")
        return None
    if None in (name, strong, weak, scorer) or len(c.errors) > errors:
        return None
    return RouterSpec(
        name=name,
        strong=strong,
        weak=weak,
        scorer=scorer,
        threshold=threshold,
        store_prompts=store,
        prompt_retention=retention,
        shadow_rate=rates.get("shadow_rate"),
        pair_sample_rate=rates.get("pair_sample_rate"),
        pair_retention_days=pair_days,
        judge_model=judge,
        judge_rubric=rubric,
        path=path,
    )


def _check_team(c: _Checker, raw: Any, path: str, budgets: list[BudgetSpec]) -> TeamSpec | None:
    data = c.mapping(
        raw, path, required=("name",), optional=("leads", "features", "budgets", *TEAM_LIMITS)
    )
    if data is None:
        return None
    slug = c.slug(data.get("name"), _join(path, "name"))
    label = data["name"].strip() if slug else ""
    limits: dict[str, int | None] = {}
    for key in TEAM_LIMITS:
        if key not in data:
            continue
        value = data[key]
        if value is not None:
            value = c.positive_integer(value, _join(path, key))
            if value is None:
                continue
        limits[key] = value
    leads: list[str] = []
    for i, item in enumerate(c.items(data.get("leads"), _join(path, "leads"))):
        where = _join(_join(path, "leads"), i)
        username = c.text(item, where, max_len=150)
        if username is None:
            continue
        try:
            UnicodeUsernameValidator()(username)
        except ValidationError:
            c.err(where, f"{username!r} is not a valid username (an e-mail address is fine)")
            continue
        if username.lower() not in {u.lower() for u in leads}:
            leads.append(username)
    features: list[FeatureSpec] = []
    for i, item in enumerate(c.items(data.get("features"), _join(path, "features"))):
        where = _join(_join(path, "features"), i)
        if isinstance(item, str):
            item = {"name": item}
        entry = c.mapping(item, where, required=("name",), optional=("budgets", "default_model"))
        if entry is None:
            continue
        feature_slug = c.slug(entry.get("name"), _join(where, "name"))
        if feature_slug is None:
            continue
        if feature_slug in {f.slug for f in features}:
            c.err(_join(where, "name"), f"feature {feature_slug!r} is listed twice")
            continue
        default_model = entry.get("default_model")
        if default_model is not None:
            default_model = c.text(default_model, _join(where, "default_model"), max_len=200)
        features.append(
            FeatureSpec(slug=feature_slug, label=entry["name"].strip(), default_model=default_model)
        )
        budgets += _check_budgets(
            c,
            entry.get("budgets"),
            _join(where, "budgets"),
            scope=BudgetScope.FEATURE,
            team=slug,
            feature=feature_slug,
        )
    budgets += _check_budgets(
        c, data.get("budgets"), _join(path, "budgets"), scope=BudgetScope.TEAM, team=slug
    )
    if slug is None:
        return None
    return TeamSpec(slug=slug, label=label, leads=leads, features=features, limits=limits)


def _unique(c: _Checker, items: list, attr: str, section: str, what: str) -> list:
    seen: set[str] = set()
    kept = []
    for i, item in enumerate(items):
        if item is None:
            continue
        ident = getattr(item, attr)
        if ident in seen:
            c.err(_join(_join(section, i), "name"), f"{what} {ident!r} is listed twice")
            continue
        seen.add(ident)
        kept.append(item)
    return kept


def config_validate(*, data: Any, prune: bool = False) -> ConfigSpec:
    """Check the whole file, then its references; raise ``ConfigError`` with every problem.

    References (a model's provider, a group's members, a budget's ``downgrade_to``) may name
    objects already in the database, except with ``prune``, where only the file counts.
    """
    c = _Checker()
    top = c.mapping(data, "", required=("organization",), optional=_TOP_OPTIONAL)
    if top is None:
        raise ConfigError(c.errors)
    org_slug = c.slug(top.get("organization"), "organization")
    tz = None
    if top.get("timezone") is not None:
        tz = c.text(top["timezone"], "timezone", max_len=64)
        if tz is not None:
            try:
                validate_timezone(tz)
            except ValidationError as exc:
                c.err("timezone", _messages(exc))
    providers = [
        _check_provider(c, raw, _join("providers", i))
        for i, raw in enumerate(c.items(top.get("providers"), "providers"))
    ]
    models = [
        _check_model(c, raw, _join("models", i))
        for i, raw in enumerate(c.items(top.get("models"), "models"))
    ]
    groups = [
        _check_group(c, raw, _join("groups", i))
        for i, raw in enumerate(c.items(top.get("groups"), "groups"))
    ]
    routers = [
        _check_router(c, raw, _join("routers", i))
        for i, raw in enumerate(c.items(top.get("routers"), "routers"))
    ]
    budgets = _check_budgets(c, top.get("budgets"), "budgets", scope=BudgetScope.ORG)
    teams = [
        _check_team(c, raw, _join("teams", i), budgets)
        for i, raw in enumerate(c.items(top.get("teams"), "teams"))
    ]
    spec = ConfigSpec(
        org_slug=org_slug or "",
        org_label=str(top.get("organization", "")).strip(),
        timezone=tz,
        providers=_unique(c, providers, "slug", "providers", "provider"),
        models=_unique(c, models, "name", "models", "model"),
        groups=_unique(c, groups, "name", "groups", "group"),
        routers=_unique(c, routers, "name", "routers", "router"),
        teams=_unique(c, teams, "slug", "teams", "team"),
        budgets=budgets,
    )
    if org_slug:
        _check_references(c, spec, prune=prune)
    if c.errors:
        raise ConfigError(c.errors)
    return spec


def _check_references(c: _Checker, spec: ConfigSpec, *, prune: bool) -> None:
    org = Organization.objects.filter(slug=spec.org_slug).first()
    providers = {p.slug for p in spec.providers}
    models = {m.name for m in spec.models}
    if org is not None and not prune:
        providers |= set(Provider.objects.filter(org=org).values_list("slug", flat=True))
        models |= set(LLMModel.objects.filter(org=org).values_list("name", flat=True))
    hint = " (with --prune, references must be in the file)" if prune else ""
    for m in spec.models:
        if m.provider not in providers:
            c.err(_join(m.path, "provider"), f"unknown provider {m.provider!r}{hint}")
    for g in spec.groups:
        for i, (model, _weight) in enumerate(g.members):
            if model not in models:
                where = _join(_join(_join(g.path, "members"), i), "model")
                c.err(where, f"unknown model {model!r}{hint}")
        for i, model in enumerate(g.fallbacks):
            if model not in models:
                c.err(_join(_join(g.path, "fallbacks"), i), f"unknown model {model!r}{hint}")
        if g.name in models:
            c.err(_join(g.path, "name"), f"{g.name!r} is already a model name")
    for r in spec.routers:
        for attr in ("strong", "weak"):
            if getattr(r, attr) not in models:
                c.err(_join(r.path, attr), f"unknown model {getattr(r, attr)!r}{hint}")
        if r.judge_model and r.judge_model not in models:
            c.err(_join(r.path, "judge_model"), f"unknown model {r.judge_model!r}{hint}")
        if r.name in models or r.name in {g.name for g in spec.groups}:
            c.err(_join(r.path, "name"), f"{r.name!r} is already a model or group name")
    for b in spec.budgets:
        if b.downgrade_to and b.downgrade_to not in models:
            c.err(_join(b.path, "downgrade_to"), f"unknown model {b.downgrade_to!r}{hint}")


# --- planning -------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return _fmt_decimal(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _fmt_decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    if "." not in text:
        return f"{text}.00"
    whole, frac = text.split(".")
    return f"{whole}.{frac.ljust(2, '0')}"


@dataclass
class Change:
    """One line of the plan. ``apply`` performs it and records its audit entry."""

    op: str  # create | update | delete
    label: str  # e.g. "model gpt-4o", "month budget of team search"
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    note: str = ""
    apply: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        if self.op == "create" and all(before is None for before, _a in self.fields.values()):
            detail = ", ".join(f"{k}={_fmt(after)}" for k, (_b, after) in self.fields.items())
            text = f"create {self.label}" + (f" ({detail})" if detail else "")
        elif self.op in ("create", "update"):
            detail = ", ".join(
                f"{k}: {_fmt(before)} -> {_fmt(after)}"
                for k, (before, after) in self.fields.items()
            )
            text = f"{self.op} {self.label}: {detail}"
        else:
            text = f"delete {self.label}"
        return text + (f" [{self.note}]" if self.note else "")


@dataclass
class ConfigResult:
    org_slug: str
    changes: list[Change]
    dry_run: bool

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _diff(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (current.get(k), v) for k, v in wanted.items() if current.get(k) != v}


def _router_values(rs: RouterSpec, current: Router | None) -> dict[str, Any]:
    """What the file asks of a router; settings it leaves out keep their current value."""
    values: dict[str, Any] = {"strong": rs.strong, "weak": rs.weak, "scorer": rs.scorer}
    optional = {
        "threshold": (rs.threshold, 0.5),
        "store_prompts": (rs.store_prompts, True),
        "prompt_retention": (rs.prompt_retention, 5000),
        "shadow_rate": (rs.shadow_rate, 0.0),
        "pair_sample_rate": (rs.pair_sample_rate, 1.0),
        "pair_retention_days": (rs.pair_retention_days, 30),
        "judge_model": (rs.judge_model, ""),
        "judge_rubric": (rs.judge_rubric, ""),
    }
    for name, (value, default) in optional.items():
        if value is not None:
            values[name] = value
        elif current is None:
            values[name] = default
    return values


def _created(wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (None, v) for k, v in wanted.items() if v not in (None, "", [])}


class _Planner:
    """Builds the ordered list of changes from the spec and the database; reads only.

    Each change's ``apply`` calls a service (which validates and records the audit entry) and
    looks objects up by identifier when it runs, so a change may rely on an earlier one in the
    same plan (a model on the provider created just before it).
    """

    def __init__(self, spec: ConfigSpec, *, prune: bool, actor) -> None:
        self.spec = spec
        self.prune = prune
        self.actor = actor
        self.org = Organization.objects.filter(slug=spec.org_slug).first()
        self.changes: list[Change] = []
        self.errors: list[str] = []

    def plan(self) -> list[Change]:
        self._plan_org()
        self._plan_providers()
        self._plan_models()
        self._plan_groups()
        self._plan_routers()
        self._plan_teams()
        self._plan_budgets()
        if self.prune:
            self._plan_prune()
        if self.errors:
            raise ConfigError(self.errors)
        return self.changes

    # --- helpers --------------------------------------------------------------------------
    def _add(self, op: str, label: str, fields, fn, /, *args, note: str = "", **kwargs) -> None:
        change = Change(
            op=op, label=label, fields=fields, note=note, apply=partial(fn, *args, **kwargs)
        )
        self.changes.append(change)

    def _existing(self, queryset):
        return queryset.filter(org=self.org) if self.org is not None else queryset.none()

    def _provider(self, slug: str) -> Provider:
        return Provider.objects.get(org=self.org, slug=slug)

    def _model(self, name: str | None) -> LLMModel | None:
        return LLMModel.objects.get(org=self.org, name=name) if name else None

    def _team(self, slug: str) -> Team:
        return Team.objects.get(org=self.org, slug=slug)

    @staticmethod
    def _changed(fields: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        return {k: after for k, (_before, after) in fields.items()}

    # --- organisation ---------------------------------------------------------------------
    def _plan_org(self) -> None:
        spec = self.spec
        label = f"organization {spec.org_slug}"
        if self.org is None:
            wanted = {"name": spec.org_label, "timezone": spec.timezone or "UTC"}
            self._add("create", label, _created(wanted), self._create_org, wanted)
            return
        wanted = {"timezone": spec.timezone} if spec.timezone else {}
        if spec.org_label != spec.org_slug:  # a display name was written, not just the slug
            wanted["name"] = spec.org_label
        fields = _diff({"name": self.org.name, "timezone": self.org.timezone}, wanted)
        if fields:
            self._add(
                "update",
                label,
                fields,
                services.org_update,
                org=self.org,
                actor=self.actor,
                **self._changed(fields),
            )

    def _create_org(self, wanted: dict) -> None:
        self.org = Organization(slug=self.spec.org_slug, **wanted)
        self.org.full_clean()
        self.org.save()
        services.audit_record(
            actor=self.actor,
            org=self.org,
            action="org.created",
            obj=self.org,
            after={"slug": self.org.slug, **wanted},
        )

    # --- providers ------------------------------------------------------------------------
    def _plan_providers(self) -> None:
        existing = {p.slug: p for p in self._existing(Provider.objects.all())}
        for ps in self.spec.providers:
            wanted = {k: getattr(ps, k) for k in catalog.PROVIDER_EDITABLE}
            current = existing.get(ps.slug)
            label = f"provider {ps.slug}"
            if current is None:
                self._add("create", label, _created(wanted), self._create_provider, ps.slug, wanted)
                continue
            fields = _diff({k: getattr(current, k) for k in wanted}, wanted)
            if fields:
                self._add(
                    "update",
                    label,
                    fields,
                    catalog.provider_update,
                    provider=current,
                    actor=self.actor,
                    **self._changed(fields),
                )

    def _create_provider(self, slug: str, wanted: dict) -> None:
        catalog.provider_create(actor=self.actor, org=self.org, slug=slug, **wanted)

    # --- models and prices ----------------------------------------------------------------
    def _plan_models(self) -> None:
        existing = {m.name: m for m in self._existing(LLMModel.objects.select_related("provider"))}
        now = timezone.now()
        for ms in self.spec.models:
            wanted = {
                "provider": ms.provider,
                "upstream_model": ms.upstream_model,
                "mode": ms.mode,
                "context_window": ms.context_window,
                "max_output_tokens": ms.max_output_tokens,
            }
            current = existing.get(ms.name)
            label = f"model {ms.name}"
            if current is None:
                fields = _created({**wanted, **ms.prices})
                self._add("create", label, fields, self._create_model, ms)
                continue
            before = {k: getattr(current, k) for k in wanted if k != "provider"}
            before["provider"] = current.provider.slug
            fields = _diff(before, wanted)
            if fields:
                self._add("update", label, fields, self._update_model, current, fields)
            price = current.price_at(now)
            before_prices = {k: getattr(price, k) for k in PRICE_FIELDS} if price else {}
            fields = _diff(before_prices, ms.prices)
            if fields:
                self._add(
                    "create",
                    f"price of {ms.name}",
                    fields,
                    self._add_price,
                    ms,
                    note="effective now; earlier prices are kept",
                )

    def _create_model(self, ms: ModelSpec) -> None:
        catalog.model_create(
            actor=self.actor,
            org=self.org,
            name=ms.name,
            provider=self._provider(ms.provider),
            upstream_model=ms.upstream_model,
            mode=ms.mode,
            context_window=ms.context_window,
            max_output_tokens=ms.max_output_tokens,
            **ms.prices,
        )

    def _update_model(self, model: LLMModel, fields: dict) -> None:
        changes = self._changed(fields)
        if "provider" in changes:
            changes["provider"] = self._provider(changes["provider"])
        catalog.model_update(model=model, actor=self.actor, **changes)

    def _add_price(self, ms: ModelSpec) -> None:
        catalog.model_price_add(
            model=self._model(ms.name), actor=self.actor, source="config", **ms.prices
        )

    # --- groups and routers ---------------------------------------------------------------
    def _plan_groups(self) -> None:
        existing = {
            g.name: g
            for g in self._existing(
                ModelGroup.objects.prefetch_related("members__model", "fallback_links__model")
            )
        }
        for gs in self.spec.groups:
            wanted = {
                "strategy": gs.strategy,
                "members": sorted([m, w] for m, w in gs.members),
                "fallbacks": list(gs.fallbacks),
            }
            current = existing.get(gs.name)
            label = f"group {gs.name}"
            if current is None:
                self._add("create", label, _created(wanted), self._write_group, None, gs, wanted)
                continue
            before = {
                "strategy": current.strategy,
                "members": sorted([m.model.name, m.weight] for m in current.members.all()),
                "fallbacks": [f.model.name for f in current.fallback_links.all()],
            }
            fields = _diff(before, wanted)
            if fields:
                self._add("update", label, fields, self._write_group, current, gs, fields)

    def _write_group(self, group: ModelGroup | None, gs: GroupSpec, fields: dict) -> None:
        members = [(self._model(name), weight) for name, weight in gs.members]
        fallbacks = [self._model(name) for name in gs.fallbacks]
        if group is None:
            catalog.group_create(
                actor=self.actor,
                org=self.org,
                name=gs.name,
                members=members,
                fallbacks=fallbacks,
                strategy=gs.strategy,
            )
            return
        catalog.group_update(
            group=group,
            actor=self.actor,
            strategy=gs.strategy,
            members=members if "members" in fields else None,
            fallbacks=fallbacks if "fallbacks" in fields else None,
        )

    def _plan_routers(self) -> None:
        existing = {
            r.name: r
            for r in self._existing(Router.objects.select_related("strong", "weak", "judge_model"))
        }
        for rs in self.spec.routers:
            current = existing.get(rs.name)
            wanted = _router_values(rs, current)
            label = f"router {rs.name}"
            if current is None:
                self._add("create", label, _created(wanted), self._write_router, None, rs)
                continue
            before = {
                "strong": current.strong.name,
                "weak": current.weak.name,
                "scorer": current.scorer,
                "threshold": current.threshold,
                "store_prompts": current.store_prompts,
                "prompt_retention": current.prompt_retention,
                "shadow_rate": current.shadow_rate,
                "pair_sample_rate": current.pair_sample_rate,
                "pair_retention_days": current.pair_retention_days,
                "judge_model": current.judge_model.name if current.judge_model_id else "",
                "judge_rubric": current.judge_rubric,
            }
            fields = _diff(before, wanted)
            if fields:
                self._add("update", label, fields, self._write_router, current, rs)

    def _write_router(self, router: Router | None, rs: RouterSpec) -> None:
        values = _router_values(rs, router)
        values["strong"] = self._model(rs.strong)
        values["weak"] = self._model(rs.weak)
        if "judge_model" in values:
            judge = values["judge_model"]
            values["judge_model"] = self._model(judge) if judge else None
        if router is None:
            catalog.router_create(actor=self.actor, org=self.org, name=rs.name, **values)
        else:
            catalog.router_update(router=router, actor=self.actor, **values)

    # --- teams, leads, features -----------------------------------------------------------
    def _plan_teams(self) -> None:
        existing = {t.slug: t for t in self._existing(Team.objects.all())}
        features = (
            {
                (f.team.slug, f.slug): f
                for f in Feature.objects.filter(team__org=self.org).select_related("team")
            }
            if self.org
            else {}
        )
        for ts in self.spec.teams:
            current = existing.get(ts.slug)
            label = f"team {ts.slug}"
            if current is None:
                wanted = {"name": ts.label, **ts.limits}
                self._add("create", label, _created(wanted), self._create_team, ts)
            else:
                wanted = dict(ts.limits)
                if ts.label != ts.slug:  # a display name was written, not just the slug
                    wanted["name"] = ts.label
                before = {k: getattr(current, k) for k in ("name", *TEAM_LIMITS)}
                fields = _diff(before, wanted)
                if fields:
                    self._add(
                        "update",
                        label,
                        fields,
                        services.team_update,
                        team=current,
                        actor=self.actor,
                        **self._changed(fields),
                    )
            self._plan_leads(ts, current)
            for fs in ts.features:
                self._plan_feature(ts, fs, features.get((ts.slug, fs.slug)))

    def _create_team(self, ts: TeamSpec) -> None:
        services.team_create(
            actor=self.actor, org=self.org, slug=ts.slug, name=ts.label, **ts.limits
        )

    def _plan_leads(self, ts: TeamSpec, team: Team | None) -> None:
        User = get_user_model()
        for username in ts.leads:
            user = User.objects.filter(username__iexact=username).first()
            membership = None
            if user is not None and team is not None:
                membership = Membership.objects.filter(user=user, org=self.org, team=team).first()
            label = f"lead {username} of team {ts.slug}"
            if membership is None:
                note = "" if user is not None else "new user without a password"
                fields = {"role": (None, Role.LEAD)}
                self._add("create", label, fields, self._add_lead, username, ts.slug, note=note)
            elif membership.role != Role.LEAD:
                self._add(
                    "update",
                    label,
                    {"role": (membership.role, Role.LEAD)},
                    services.membership_update,
                    membership=membership,
                    actor=self.actor,
                    role=Role.LEAD,
                    team=team,
                )

    def _add_lead(self, username: str, team_slug: str) -> None:
        services.membership_add(
            actor=self.actor,
            org=self.org,
            user=services.user_get_or_create(email_or_username=username),
            role=Role.LEAD,
            team=self._team(team_slug),
        )

    def _plan_feature(self, ts: TeamSpec, fs: FeatureSpec, current: Feature | None) -> None:
        label = f"feature {ts.slug}/{fs.slug}"
        if current is None:
            wanted = {"name": fs.label, "default_model": fs.default_model}
            self._add("create", label, _created(wanted), self._create_feature, ts, fs)
            return
        wanted: dict[str, Any] = {"claimed": True}  # listing a feature claims it
        if fs.label != fs.slug:
            wanted["name"] = fs.label
        if fs.default_model is not None:
            wanted["default_model"] = fs.default_model
        fields = _diff(
            {
                "claimed": current.claimed,
                "name": current.name,
                "default_model": current.default_model,
            },
            wanted,
        )
        if fields:
            self._add(
                "update",
                label,
                fields,
                services.feature_update,
                feature=current,
                actor=self.actor,
                **self._changed(fields),
            )

    def _create_feature(self, ts: TeamSpec, fs: FeatureSpec) -> None:
        services.feature_create(
            actor=self.actor,
            team=self._team(ts.slug),
            slug=fs.slug,
            name=fs.label,
            default_model=fs.default_model or "",
        )

    # --- budgets --------------------------------------------------------------------------
    @staticmethod
    def _budget_ident(b: Budget) -> tuple[str, str | None, str | None, str]:
        if b.scope == BudgetScope.FEATURE:
            return (b.scope, b.feature.team.slug, b.feature.slug, b.period)
        if b.scope == BudgetScope.TEAM:
            return (b.scope, b.team.slug, None, b.period)
        return (b.scope, None, None, b.period)

    @staticmethod
    def _budget_label(ident: tuple[str, str | None, str | None, str]) -> str:
        scope, team, feature, period = ident
        where = {"org": "org", "team": f"team {team}", "feature": f"feature {team}/{feature}"}
        return f"{period} budget of {where[scope]}"

    def _managed_budgets(self):
        """The budgets a file describes (org, team and feature scopes; key budgets are not)."""
        return self._existing(
            Budget.objects.filter(
                scope__in=[BudgetScope.ORG, BudgetScope.TEAM, BudgetScope.FEATURE]
            ).select_related("team", "feature", "feature__team", "downgrade_to")
        )

    def _plan_budgets(self) -> None:
        existing = {self._budget_ident(b): b for b in self._managed_budgets()}
        for bs in self.spec.budgets:
            wanted = {
                "limit_usd": bs.limit_usd,
                "action": bs.action,
                "downgrade_to": bs.downgrade_to,
                "fail_open": bs.fail_open,
                "alert_thresholds": bs.alert_thresholds,
                "recipients": bs.recipients,
            }
            current = existing.get(bs.ident)
            label = self._budget_label(bs.ident)
            if current is None:
                fields = _created(wanted)
                if not bs.fail_open:
                    del fields["fail_open"]  # the default; only a fail-open budget says so
                self._add("create", label, fields, self._create_budget, bs)
                continue
            before = {
                "limit_usd": current.limit_usd,
                "action": current.action,
                "downgrade_to": current.downgrade_to.name if current.downgrade_to_id else None,
                "fail_open": current.fail_open,
                "alert_thresholds": sorted(current.alert_thresholds or []),
                "recipients": list(current.recipients or []),
            }
            fields = _diff(before, wanted)
            if fields:
                self._add("update", label, fields, self._update_budget, current, bs)

    def _budget_values(self, bs: BudgetSpec) -> dict[str, Any]:
        return {
            "limit_usd": bs.limit_usd,
            "action": bs.action,
            "downgrade_to": self._model(bs.downgrade_to),
            "fail_open": bs.fail_open,
            "alert_thresholds": bs.alert_thresholds,
            "recipients": bs.recipients,
        }

    def _create_budget(self, bs: BudgetSpec) -> None:
        team = self._team(bs.team) if bs.team else None
        feature = Feature.objects.get(team=team, slug=bs.feature) if bs.feature else None
        services.budget_create(
            actor=self.actor,
            org=self.org,
            scope=bs.scope,
            period=bs.period,
            team=team,
            feature=feature,
            **self._budget_values(bs),
        )

    def _update_budget(self, budget: Budget, bs: BudgetSpec) -> None:
        services.budget_update(budget=budget, actor=self.actor, **self._budget_values(bs))

    # --- prune ----------------------------------------------------------------------------
    def _plan_prune(self) -> None:
        """Delete what the file no longer lists, dependants first: budgets before the models
        they downgrade to, routers and groups before their models, models before providers."""
        if self.org is None:
            return
        spec = self.spec
        wanted_budgets = {b.ident for b in spec.budgets}
        for budget in self._managed_budgets():
            ident = self._budget_ident(budget)
            if ident not in wanted_budgets:
                self._add(
                    "delete",
                    self._budget_label(ident),
                    {},
                    services.budget_delete,
                    budget=budget,
                    actor=self.actor,
                )
        for ts in spec.teams:
            self._prune_team_parts(ts)
        team_slugs = {t.slug for t in spec.teams}
        pruned_teams = []
        for team in Team.objects.filter(org=self.org).exclude(slug__in=team_slugs):
            usable = team.keys.filter(revoked_at__isnull=True).count()
            if usable:
                self.errors.append(
                    f"teams: team {team.slug!r} is not in the file but has {usable} usable "
                    "key(s); revoke them before pruning it"
                )
                continue
            pruned_teams.append(team.pk)
            self._add(
                "delete",
                f"team {team.slug}",
                {},
                services.team_delete,
                team=team,
                actor=self.actor,
                note="with its features, revoked keys, members and budgets",
            )
        keep = {r.name for r in spec.routers}
        for router in Router.objects.filter(org=self.org).exclude(name__in=keep):
            self._add(
                "delete",
                f"router {router.name}",
                {},
                catalog.router_delete,
                router=router,
                actor=self.actor,
            )
        keep = {g.name for g in spec.groups}
        for group in ModelGroup.objects.filter(org=self.org).exclude(name__in=keep):
            self._add(
                "delete",
                f"group {group.name}",
                {},
                catalog.group_delete,
                group=group,
                actor=self.actor,
            )
        keep = {m.name for m in spec.models}
        for model in LLMModel.objects.filter(org=self.org).exclude(name__in=keep):
            # Key budgets are not in files; one that downgrades to this model must change first.
            blockers = Budget.objects.filter(downgrade_to=model, scope=BudgetScope.KEY).exclude(
                key__team_id__in=pruned_teams
            )
            if blockers.exists():
                names = ", ".join(sorted(str(b) for b in blockers[:5]))
                self.errors.append(
                    f"models: model {model.name!r} is not in the file but key budgets downgrade "
                    f"to it ({names}); change them first"
                )
                continue
            self._add(
                "delete",
                f"model {model.name}",
                {},
                self._delete_model,
                model,
                note="with its price history; the ledger keeps its name",
            )
        keep = {p.slug for p in spec.providers}
        for provider in Provider.objects.filter(org=self.org).exclude(slug__in=keep):
            self._add(
                "delete",
                f"provider {provider.slug}",
                {},
                catalog.provider_delete,
                provider=provider,
                actor=self.actor,
            )

    def _prune_team_parts(self, ts: TeamSpec) -> None:
        leads = {u.lower() for u in ts.leads}
        memberships = Membership.objects.filter(org=self.org, team__slug=ts.slug, role=Role.LEAD)
        for m in memberships.select_related("user"):
            if m.user.username.lower() not in leads:
                self._add(
                    "delete",
                    f"lead {m.user.username} of team {ts.slug}",
                    {},
                    services.membership_remove,
                    membership=m,
                    actor=self.actor,
                )
        # Unclaimed features were named by traffic, not by a file: prune leaves them to the
        # lead who claims them.
        listed = {f.slug for f in ts.features}
        features = Feature.objects.filter(team__org=self.org, team__slug=ts.slug, claimed=True)
        for feature in features.exclude(slug__in=listed):
            self._add(
                "delete",
                f"feature {ts.slug}/{feature.slug}",
                {},
                services.feature_delete,
                feature=feature,
                actor=self.actor,
            )

    def _delete_model(self, model: LLMModel) -> None:
        services.audit_record(
            actor=self.actor,
            org=self.org,
            action="model.deleted",
            obj=model,
            before=catalog.model_snapshot(model),
        )
        model.delete()


def config_plan(*, spec: ConfigSpec, prune: bool = False, actor=None) -> list[Change]:
    """The changes that applying ``spec`` would make, in order; reads only."""
    return _Planner(spec, prune=prune, actor=actor).plan()


def config_apply(
    *, data: Any, dry_run: bool = False, prune: bool = False, actor=None
) -> ConfigResult:
    """Validate ``data`` (parsed YAML), plan, and unless ``dry_run`` apply, in one transaction.

    ``actor`` is the user recorded in the audit log (None records "system"). Raises
    ``ConfigError`` listing every problem; nothing is written then.
    """
    spec = config_validate(data=data, prune=prune)
    with transaction.atomic():
        changes = config_plan(spec=spec, prune=prune, actor=actor)
        if not dry_run:
            for change in changes:
                try:
                    change.apply()
                except ValidationError as exc:
                    raise ConfigError([f"{change.label}: {_messages(exc)}"]) from exc
                except ProtectedError as exc:
                    used_by = ", ".join(sorted({str(o) for o in exc.protected_objects})[:5])
                    raise ConfigError([f"{change.label}: still used by {used_by}"]) from exc
    return ConfigResult(org_slug=spec.org_slug, changes=changes, dry_run=dry_run)
