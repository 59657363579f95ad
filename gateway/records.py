"""What the gateway knows of a key and of an organisation's routing configuration, as plain
records: loaded from the database by ``gateway.cache``, read on the hot path and by the
provider adapters, which therefore need no tenant code and no ORM.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlsplit

from gateway.pricing import Price


@dataclass(slots=True)
class KeyRecord:
    key_id: int
    name: str
    org_id: int
    org_slug: str
    org_tz: zoneinfo.ZoneInfo
    team_id: int
    team_slug: str
    default_feature: str
    allowed_models: frozenset[str]
    fallbacks: tuple[str, ...]
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel: int | None
    valid_until: datetime | None  # the earliest of key expiry and a rotated secret's grace end
    revoked: bool
    features: set[str] = field(default_factory=set)  # the team's known feature slugs
    new_features_left: int = 0
    # for calls that name no model (or "default"): the feature's default, else the key's
    default_model: str = ""
    feature_models: dict[str, str] = field(default_factory=dict)

    def error_at(self, now: datetime) -> str:
        if self.revoked:
            return "key_revoked"
        if self.valid_until is not None and self.valid_until <= now:
            return "key_expired"
        return ""


@dataclass(slots=True)
class ProviderRecord:
    slug: str
    kind: str
    base_url: str
    api_key: str = field(repr=False)  # a secret: never in a repr, a log line or a traceback
    api_version: str = ""
    responses_native: bool = False  # /v1/responses goes upstream as is (else translated)


def responses_native(kind: str, base_url: str, setting: str) -> bool:
    """A provider's ``responses_api`` as configured, or by default: native for Azure and for
    OpenAI's own API, translated for every other OpenAI-compatible server (most lack it)."""
    if setting:
        return setting == "native"
    host = (urlsplit(base_url).hostname or "").lower()
    return kind == "azure" or (kind == "openai" and host == "api.openai.com")


@dataclass(slots=True)
class ModelRecord:
    name: str
    upstream_model: str
    mode: str
    max_output_tokens: int | None
    provider: ProviderRecord
    prices: tuple[Price, ...]  # newest first
    context_window: int | None = None
    uid: str = ""  # "<pk>.<created µs>": the routing state's key (see gateway.balancer)


@dataclass(slots=True)
class GroupRecord:
    name: str
    strategy: str
    members: list[tuple[ModelRecord, int]]
    fallbacks: list[ModelRecord]


@dataclass(slots=True)
class RouterRecord:
    name: str
    strong: ModelRecord
    weak: ModelRecord
    scorer: str  # as configured; ``impl.kind`` is the one that scores (see gateway.routing)
    threshold: float
    id: int = 0
    impl: object = None  # the scorer: ``score(messages) -> float``
    store_prompts: bool = False
    prompt_retention: int = 0
    # shadow evaluation (see gateway.shadow); the judge runs in Celery and reads the database
    shadow_rate: float = 0.0
    pair_sample_rate: float = 0.0
    pair_retention_days: int = 30
    judge_model: str = ""
    judge_rubric: str = ""


@dataclass(slots=True)
class ExperimentRecord:
    """An active A/B experiment: ``share`` of the calls to ``route`` by ``key_id`` (or for
    ``feature``) try ``candidate`` first (see ``gateway.asgi``)."""

    name: str
    route: str
    candidate: ModelRecord
    share: float
    key_id: int | None
    feature: str  # feature slug; "" when the experiment is per key
    team_id: int | None = None  # the feature's team (slugs are per team)


@dataclass(slots=True)
class BudgetRecord:
    id: int
    org_id: int
    created: int  # epoch microseconds: with the id, a key no other database's budget shares
    scope: str  # org | team | feature | key
    team_id: int | None
    feature: str  # feature slug (feature budgets)
    key_id: int | None
    period: str
    limit: Decimal
    action: str  # block | alert | downgrade
    downgrade_to: str
    fail_open: bool
    label: str

    @property
    def specificity(self) -> int:
        return {"key": 0, "feature": 1, "team": 2, "org": 3}[self.scope]


@dataclass(slots=True)
class TeamLimits:
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel: int | None


@dataclass(frozen=True, slots=True)
class CachePolicyRecord:
    """One response-cache policy (``teams.CachePolicy``); see ``gateway.response_cache``."""

    scope: str  # org | team | feature | key | model
    enabled: bool
    ttl_seconds: int
    max_entry_bytes: int
    tools: bool


@dataclass(slots=True)
class OrgConfig:
    org_id: int
    models: dict[str, ModelRecord]
    groups: dict[str, GroupRecord]
    routers: dict[str, RouterRecord]
    budgets: list[BudgetRecord] = field(default_factory=list)
    team_limits: dict[int, TeamLimits] = field(default_factory=dict)
    experiments: list[ExperimentRecord] = field(default_factory=list)
    # response-cache policies by target: ("org",), ("team", team id), ("feature", team id,
    # slug), ("key", key id), ("model", name without "router:"); see gateway.response_cache
    cache_policies: dict[tuple, CachePolicyRecord] = field(default_factory=dict)
    # "<org id>.<created µs>": the cache's namespace (ids repeat when a database is recreated;
    # a long-lived Redis must not serve a new organisation an old one's answers)
    cache_space: str = ""
