"""In-process caches of keys and routing configuration, so the hot path makes no DB query.

Both are filled lazily off the event loop and dropped whole when a config stamp changes (see
``gateway.services.stamps``); a poller checks the stamps every ``FINOPS_KEY_CACHE_POLL_SECONDS``.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import close_old_connections

from gateway.hooks import hooks
from gateway.pricing import Price
from gateway.records import (
    BudgetRecord,
    CachePolicyRecord,
    ExperimentRecord,
    GroupRecord,
    KeyRecord,
    ModelRecord,
    OrgConfig,
    ProviderRecord,
    RouterRecord,
    TeamLimits,
    responses_native,
)
from gateway.routing.scorers import scorer_build
from gateway.services.credentials import provider_key_from_token
from gateway.services.providers import provider_key_from_env
from teams.services import key_secret_digest


def key_record_load(secret: str) -> KeyRecord | None:
    """Blocking: look a presented secret up in the database (run in a worker thread)."""
    from teams.models import Feature
    from teams.services import key_secret_resolve

    close_old_connections()
    row = key_secret_resolve(secret=secret)
    if row is None:
        return None
    key = row.key
    ends = [t for t in (key.expires_at, row.valid_until) if t is not None]
    team_features = Feature.objects.filter(team_id=key.team_id).values_list("slug", "default_model")
    features = {slug for slug, _ in team_features}
    feature_models = {slug: model for slug, model in team_features if model}
    created = Feature.objects.filter(created_by_key_id=key.pk).count()
    return KeyRecord(
        key_id=key.pk,
        name=key.name,
        org_id=key.org_id,
        org_slug=key.org.slug,
        org_tz=key.org.tz,
        team_id=key.team_id,
        team_slug=key.team.slug,
        default_feature=key.default_feature.slug if key.default_feature_id else "",
        allowed_models=frozenset(key.allowed_models or ()),
        fallbacks=tuple(key.fallbacks or ()),
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        max_parallel=key.max_parallel,
        valid_until=min(ends) if ends else None,
        revoked=key.revoked_at is not None,
        features=features,
        new_features_left=max(0, settings.FINOPS_NEW_FEATURES_PER_KEY - created),
        default_model=key.default_model,
        feature_models=feature_models,
    )


class KeyCache:
    """secret digest -> KeyRecord; unknown secrets are cached as bad for a short time."""

    def __init__(self) -> None:
        self._good: dict[str, KeyRecord] = {}
        self._bad: dict[str, float] = {}

    def get(self, secret: str) -> tuple[str, KeyRecord | None, bool]:
        """(digest, record, known_bad). A miss is (digest, None, False)."""
        digest = key_secret_digest(secret=secret)
        record = self._good.get(digest)
        if record is not None:
            return digest, record, False
        until = self._bad.get(digest)
        if until is not None:
            if until > time.monotonic():
                return digest, None, True
            del self._bad[digest]
        return digest, None, False

    def put(self, digest: str, record: KeyRecord | None) -> None:
        if record is None:
            if len(self._bad) > 10_000:  # bounded: a flood of random keys cannot grow memory
                self._bad.clear()
            self._bad[digest] = time.monotonic() + settings.FINOPS_BAD_KEY_TTL_SECONDS
        else:
            self._good[digest] = record

    def clear(self) -> None:
        self._good.clear()
        self._bad.clear()


def router_models_load(org_id: int) -> dict:
    """Blocking: router id -> the active trained ``LinearModel`` of the org's routers."""
    import logging

    from gateway.models import RouterModel
    from gateway.routing.linear import LinearModel

    found = {}
    for row in RouterModel.objects.filter(router__org_id=org_id, active=True):
        try:
            found[row.router_id] = LinearModel.from_bytes(row.weights, row.params)
        except Exception:  # noqa: BLE001 - an unreadable model must not take the gateway down
            logging.getLogger(__name__).exception("router model %s cannot be loaded", row.pk)
    return found


def _provider_credential(provider) -> str:
    """The key the gateway sends: the organisation's own (decrypted) when it stored one, else
    the operator's variable. An undecryptable key leaves the provider without a credential
    (with a warning naming the provider only), so the rest of the org's routing still loads."""
    if provider.api_key_encrypted:
        label = f"{provider.slug} (org {provider.org_id})"  # no query for the org's slug
        return provider_key_from_token(provider.api_key_encrypted, provider=label)
    return provider_key_from_env(provider.api_key_env)


def org_config_load(org_id: int) -> OrgConfig:
    """Blocking: read one organisation's providers, models, prices, groups and routers."""
    from gateway.models import LLMModel, ModelGroup, Router

    close_old_connections()
    models: dict[str, ModelRecord] = {}
    providers: dict[int, ProviderRecord] = {}
    for m in (
        LLMModel.objects.filter(org_id=org_id, active=True)
        .select_related("provider")
        .prefetch_related("prices")
    ):
        p = m.provider
        if p.pk not in providers:
            providers[p.pk] = ProviderRecord(
                slug=p.slug,
                kind=p.kind,
                base_url=p.base_url.rstrip("/"),
                api_key=_provider_credential(p),
                api_version=p.api_version,
                responses_native=responses_native(p.kind, p.base_url, p.responses_api),
            )
        prices = sorted(m.prices.all(), key=lambda r: r.effective_from, reverse=True)
        models[m.name] = ModelRecord(
            name=m.name,
            upstream_model=m.upstream_model or m.name,
            mode=m.mode,
            max_output_tokens=m.max_output_tokens,
            context_window=m.context_window,
            uid=f"{m.pk}.{int(m.created_at.timestamp() * 1_000_000)}",
            provider=providers[p.pk],
            prices=tuple(
                Price.per_mtok(
                    effective_from=r.effective_from,
                    input_usd_per_mtok=r.input_usd_per_mtok,
                    output_usd_per_mtok=r.output_usd_per_mtok,
                    cached_input_usd_per_mtok=r.cached_input_usd_per_mtok,
                    cache_write_usd_per_mtok=r.cache_write_usd_per_mtok,
                    batch_input_usd_per_mtok=r.batch_input_usd_per_mtok,
                    batch_output_usd_per_mtok=r.batch_output_usd_per_mtok,
                )
                for r in prices
            ),
        )
    groups: dict[str, GroupRecord] = {}
    for g in ModelGroup.objects.filter(org_id=org_id).prefetch_related(
        "members__model", "fallback_links__model"
    ):
        members = [
            (models[gm.model.name], gm.weight)
            for gm in g.members.all()
            if gm.model.name in models and gm.weight > 0
        ]
        fallbacks = [models[f.model.name] for f in g.fallback_links.all() if f.model.name in models]
        groups[g.name] = GroupRecord(
            name=g.name, strategy=g.strategy, members=members, fallbacks=fallbacks
        )
    routers: dict[str, RouterRecord] = {}
    trained = router_models_load(org_id)
    for r in Router.objects.filter(org_id=org_id).select_related("strong", "weak", "judge_model"):
        if r.strong.name in models and r.weak.name in models:
            routers[r.name] = RouterRecord(
                name=r.name,
                strong=models[r.strong.name],
                weak=models[r.weak.name],
                scorer=r.scorer,
                threshold=r.threshold,
                id=r.pk,
                impl=scorer_build(r.scorer, model=trained.get(r.pk)),
                store_prompts=r.store_prompts,
                prompt_retention=r.prompt_retention,
                shadow_rate=r.shadow_rate,
                pair_sample_rate=r.pair_sample_rate,
                pair_retention_days=r.pair_retention_days,
                judge_model=r.judge_model.name if r.judge_model_id else "",
                judge_rubric=r.judge_rubric,
            )
    from teams.models import Budget, Team

    budgets = [
        BudgetRecord(
            id=b.pk,
            org_id=b.org_id,
            created=int(b.created_at.timestamp() * 1_000_000),
            scope=b.scope,
            team_id=b.team_id or (b.feature.team_id if b.feature_id else None),
            feature=b.feature.slug if b.feature_id else "",
            key_id=b.key_id,
            period=b.period,
            limit=b.limit_usd,
            action=b.action,
            downgrade_to=b.downgrade_to.name if b.downgrade_to_id else "",
            fail_open=b.fail_open,
            label=b.scope_label,
        )
        for b in Budget.objects.filter(org_id=org_id).select_related(
            "org",
            "team",
            "team__org",
            "feature",
            "feature__team",
            "feature__team__org",
            "key",
            "downgrade_to",
        )
    ]
    budgets.sort(key=lambda b: b.specificity)
    team_limits = {
        t.pk: TeamLimits(t.rpm_limit, t.tpm_limit, t.max_parallel)
        for t in Team.objects.filter(org_id=org_id)
        if t.rpm_limit or t.tpm_limit or t.max_parallel
    }
    cache_policies = _cache_policies_load(org_id)
    return OrgConfig(
        org_id=org_id,
        models=models,
        groups=groups,
        routers=routers,
        budgets=budgets,
        team_limits=team_limits,
        experiments=_experiments_load(org_id, models),
        cache_policies=cache_policies,
        cache_space=_cache_space(org_id) if cache_policies else "",
    )


def _cache_space(org_id: int) -> str:
    from teams.models import Organization

    created = Organization.objects.filter(pk=org_id).values_list("created_at", flat=True).first()
    return f"{org_id}.{int(created.timestamp() * 1_000_000)}" if created else str(org_id)


def _cache_policies_load(org_id: int) -> dict[tuple, CachePolicyRecord]:
    """The org's response-cache policies, indexed by what each targets (see ``OrgConfig``)."""
    from teams.models import CachePolicy

    out: dict[tuple, CachePolicyRecord] = {}
    for p in CachePolicy.objects.filter(org_id=org_id).select_related("feature"):
        if p.scope == "team":
            target: tuple = ("team", p.team_id)
        elif p.scope == "feature":
            target = ("feature", p.feature.team_id, p.feature.slug)
        elif p.scope == "key":
            target = ("key", p.key_id)
        elif p.scope == "model":
            target = ("model", p.model_name.removeprefix("router:"))
        else:
            target = ("org",)
        out[target] = CachePolicyRecord(
            scope=p.scope,
            enabled=p.enabled,
            ttl_seconds=p.ttl_seconds,
            max_entry_bytes=p.max_entry_bytes,
            tools=p.tools,
        )
    return out


def _experiments_load(org_id: int, models: dict[str, ModelRecord]) -> list[ExperimentRecord]:
    """The org's active experiments (evaluation's, through its ``experiments_load`` hook)."""
    if hooks.experiments_load is None:
        return []
    return hooks.experiments_load(org_id, models)
