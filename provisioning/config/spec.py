"""The shape of a config file: loading its YAML, the validated document, and ``ConfigError``.

``config_load`` turns YAML text into plain data (duplicate keys are errors); ``validate.py``
turns that data into the ``ConfigSpec`` defined here, which the planner compares with the
database. The limits below mirror the database columns the file's values end up in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

SLUG_MAX = 64
BUDGET_PLACES, BUDGET_DIGITS = 6, 18  # Budget.limit_usd
PRICE_PLACES, PRICE_DIGITS = 12, 24  # ModelPrice.*_usd_per_mtok
PRICE_FIELDS = (
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "cache_write_usd_per_mtok",
    "batch_input_usd_per_mtok",
    "batch_output_usd_per_mtok",
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
    responses_api: str = ""  # native | translate | "" (native for Azure and api.openai.com)
    publisher: str = ""
    invoice_issuer: str = ""
    # the admin API (usage and cost reports): its URL when not base_url's, an operator's variable
    admin_base_url: str = ""
    admin_api_key_env: str = ""
    # the organisation's own keys, as ``encrypt_secret --org`` references (Fernet tokens, never
    # the keys); None: left out, the stored key is kept; "": the stored key is removed
    api_key_encrypted: str | None = field(default=None, repr=False)
    admin_api_key_encrypted: str | None = field(default=None, repr=False)
    path: str = field(default="", compare=False)


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
class CacheSpec:
    """A response-cache policy: ``cache:`` at the top (org), on a model, a team, a feature or a
    team's key (named, never created: keys are minted)."""

    scope: str  # org | team | feature | key | model
    team: str | None
    feature: str | None
    key: str | None  # the key's name within its team
    model: str  # the model's name (model scope), else ""
    enabled: bool
    ttl_seconds: int
    max_entry_bytes: int
    tools: bool
    path: str = field(default="", compare=False)

    @property
    def ident(self) -> tuple[str, str | None, str | None, str | None, str]:
        return (self.scope, self.team, self.feature, self.key, self.model)


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
    cache_policies: list[CacheSpec] = field(default_factory=list)


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
