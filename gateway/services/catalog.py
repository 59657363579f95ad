"""Writes to the gateway catalog: providers, models and their prices, groups, routers.

Each change is validated by the model (``full_clean``), recorded in the audit log with
before/after snapshots (names and settings only: a provider's own keys, the inference one and
the admin-API one, are encrypted here, and a snapshot says only whether each is set, with its
last four characters), and picked up by the gateways through the config stamp signal.
The validate-save-record tail is ``teams.audit`` (``audited_save``, ``audited_delete``), the same
as the control plane's.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from gateway.models import (
    GroupFallback,
    GroupMember,
    LLMModel,
    ModelGroup,
    ModelPrice,
    Provider,
    Router,
)
from gateway.services.credentials import (
    SecretDecryptError,
    provider_key_last4,
    provider_key_problem,
    secret_decrypt,
    secret_encrypt,
)
from gateway.services.providers import provider_credential_guard
from teams.audit import audit_record, audited_delete, audited_save, changes_apply
from teams.models import Organization

PROVIDER_EDITABLE = (
    "kind",
    "base_url",
    "api_key_env",
    "api_version",
    "responses_api",
    "publisher",
    "invoice_issuer",
    "admin_api_key_env",
    "admin_base_url",
)
# the provider's own keys: the write-only argument, which is also the audit snapshot's key, and
# the prefix of its fields (``<key>_env``, ``<key>_encrypted``, ``<key>_last4``)
PROVIDER_KEYS = ("api_key", "admin_api_key")
MODEL_EDITABLE = (
    "provider",
    "upstream_model",
    "mode",
    "context_window",
    "max_output_tokens",
    "active",
)
ROUTER_EDITABLE = (
    "strong",
    "weak",
    "scorer",
    "threshold",
    "store_prompts",
    "prompt_retention",
    "shadow_rate",
    "pair_sample_rate",
    "pair_retention_days",
    "judge_model",
    "judge_rubric",
)


def _same_org(org: Organization, field: str, models: Iterable[LLMModel]) -> None:
    if any(m.org_id != org.pk for m in models):
        raise ValidationError({field: "model belongs to another organisation"})


def _name_free(*, org: Organization, name: str, field: str = "name", exclude=None) -> None:
    """Clients call models, groups and routers by name: one name means one thing per org."""
    for model in (LLMModel, ModelGroup, Router):
        rows = model.objects.filter(org=org, name=name)
        if exclude is not None and isinstance(exclude, model):
            rows = rows.exclude(pk=exclude.pk)
        if rows.exists():
            kind = model._meta.verbose_name
            raise ValidationError({field: f"{org.slug} already has a {kind} named {name!r}"})


# --- providers ----------------------------------------------------------------------------------


def provider_key_label(provider: Provider, key: str = "api_key") -> str:
    """What the audit log says of one of the provider's own keys (``key``: "api_key" or
    "admin_api_key"): never the key nor its token."""
    if not getattr(provider, f"{key}_encrypted"):
        return "not set"
    last4 = getattr(provider, f"{key}_last4")
    return f"set (…{last4})" if last4 else "set"


def provider_snapshot(provider: Provider) -> dict:
    return {
        "slug": provider.slug,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "api_key_env": provider.api_key_env,
        "api_key": provider_key_label(provider),
        "api_version": provider.api_version,
        "responses_api": provider.responses_api,
        "publisher": provider.publisher,
        "invoice_issuer": provider.invoice_issuer,
        "admin_base_url": provider.admin_base_url,
        "admin_api_key_env": provider.admin_api_key_env,
        "admin_api_key": provider_key_label(provider, "admin_api_key"),
    }


def _same_key(token: str, value: str) -> bool:
    try:
        return hmac.compare_digest(secret_decrypt(token).encode(), value.encode())
    except SecretDecryptError:
        return False  # unreadable: whatever replaces it is a change


def _provider_key_set(provider: Provider, value: str | None, key: str = "api_key") -> str | None:
    """Store ``value`` encrypted as the provider's ``key`` ("api_key" or "admin_api_key"; ""
    clears it; None leaves it); returns what the audit entry says of it ("set (…abcd)",
    "changed" when a different key shows the same, "cleared"), or None when it was left.

    Any org admin may set their own organisation's keys: unlike ``api_key_env`` and
    ``admin_api_key_env`` they are nobody else's secret, so moving the provider's ``base_url``
    or ``admin_base_url`` afterwards only sends them where their owner chose. A provider
    reading an operator's variable takes no key of its own for that credential."""
    if value is None:
        return None
    encrypted, last4, env = f"{key}_encrypted", f"{key}_last4", f"{key}_env"
    old = getattr(provider, encrypted)
    if value == "":
        if not old:
            return None
        setattr(provider, encrypted, "")
        setattr(provider, last4, "")
        return "cleared"
    problem = provider_key_problem(value)
    if problem:
        raise ValidationError({key: problem})
    if getattr(provider, env):
        what = "admin credential" if key == "admin_api_key" else "credential"
        raise ValidationError(
            {
                key: f"this provider reads its {what} from {env} ({getattr(provider, env)}); a "
                f"provider has {env} or an encrypted {key}, not both"
            }
        )
    before = provider_key_label(provider, key)
    setattr(provider, encrypted, secret_encrypt(value))
    setattr(provider, last4, provider_key_last4(value))
    label = provider_key_label(provider, key)
    if old and label == before and not _same_key(old, value):
        return "changed"  # the label alone would not show that the key was replaced
    return label


def _snapshot_with_keys(notes: dict[str, str | None]):
    """The provider snapshot, saying what just happened to each key when something did."""
    said = {key: note for key, note in notes.items() if note is not None}
    if not said:
        return provider_snapshot
    return lambda provider: {**provider_snapshot(provider), **said}


def provider_create(
    *,
    actor,
    org: Organization,
    slug: str,
    kind: str,
    base_url: str,
    api_key_env: str = "",
    api_key: str | None = None,
    api_version: str = "",
    responses_api: str = "",
    publisher: str = "",
    invoice_issuer: str = "",
    admin_base_url: str = "",
    admin_api_key_env: str = "",
    admin_api_key: str | None = None,
) -> Provider:
    """Create a provider; ``Provider.clean`` bounds base_url and admin_base_url by
    FINOPS_PROVIDER_HOSTS and the credentials' names by FINOPS_PROVIDER_KEY_ENVS; only an
    operator names one. ``api_key`` and ``admin_api_key`` are the organisation's own keys
    (inference, admin API), stored encrypted (``_provider_key_set``)."""
    provider_credential_guard(
        actor=actor,
        provider=None,
        changes={"api_key_env": api_key_env, "admin_api_key_env": admin_api_key_env},
    )
    if Provider.objects.filter(org=org, slug=slug).exists():
        raise ValidationError({"slug": f"{org.slug} already has a provider {slug!r}"})
    provider = Provider(
        org=org,
        slug=slug,
        kind=kind,
        base_url=base_url,
        api_key_env=api_key_env,
        api_version=api_version,
        responses_api=responses_api,
        publisher=publisher,
        invoice_issuer=invoice_issuer,
        admin_base_url=admin_base_url,
        admin_api_key_env=admin_api_key_env,
    )
    _provider_key_set(provider, api_key or None)
    _provider_key_set(provider, admin_api_key or None, "admin_api_key")
    return audited_save(
        provider, actor=actor, org=org, action="provider.created", snapshot=provider_snapshot
    )


def provider_update(
    *,
    provider: Provider,
    actor,
    api_key: str | None = None,
    admin_api_key: str | None = None,
    **changes,
) -> Provider:
    """Change a provider's fields; ``api_key`` and ``admin_api_key`` set its own keys
    (encrypted), "" clears one, None leaves it."""
    provider_credential_guard(actor=actor, provider=provider, changes=changes)
    before = provider_snapshot(provider)
    changes_apply(provider, changes, editable=PROVIDER_EDITABLE)
    notes = {
        "api_key": _provider_key_set(provider, api_key),
        "admin_api_key": _provider_key_set(provider, admin_api_key, "admin_api_key"),
    }
    return audited_save(
        provider,
        actor=actor,
        org=provider.org,
        action="provider.updated",
        snapshot=_snapshot_with_keys(notes),
        before=before,
    )


def provider_delete(*, provider: Provider, actor) -> None:
    """Refused (ProtectedError) while models still use the provider."""
    audited_delete(
        provider,
        actor=actor,
        org=provider.org,
        action="provider.deleted",
        snapshot=provider_snapshot,
    )


# --- models and prices --------------------------------------------------------------------------


def price_snapshot(price: ModelPrice) -> dict:
    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "model": price.model.name,
        "effective_from": price.effective_from.isoformat(),
        "input_usd_per_mtok": text(price.input_usd_per_mtok),
        "output_usd_per_mtok": text(price.output_usd_per_mtok),
        "cached_input_usd_per_mtok": text(price.cached_input_usd_per_mtok),
        "cache_write_usd_per_mtok": text(price.cache_write_usd_per_mtok),
        "batch_input_usd_per_mtok": text(price.batch_input_usd_per_mtok),
        "batch_output_usd_per_mtok": text(price.batch_output_usd_per_mtok),
    }


def model_snapshot(model: LLMModel) -> dict:
    return {
        "name": model.name,
        "provider": model.provider.slug,
        "upstream_model": model.upstream_model,
        "mode": model.mode,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "active": model.active,
    }


def model_price_add(
    *,
    model: LLMModel,
    actor,
    input_usd_per_mtok: Decimal,
    output_usd_per_mtok: Decimal,
    cached_input_usd_per_mtok: Decimal | None = None,
    cache_write_usd_per_mtok: Decimal | None = None,
    batch_input_usd_per_mtok: Decimal | None = None,
    batch_output_usd_per_mtok: Decimal | None = None,
    effective_from: datetime | None = None,
    source: str = "api",
) -> ModelPrice:
    """Append a price to the model's history. History is never rewritten: a new price starts
    now or later, and after every price already recorded."""
    now = timezone.now()
    if effective_from is None:
        effective_from = now
    elif effective_from < now:
        raise ValidationError({"effective_from": "prices cannot be back-dated"})
    latest = model.prices.order_by("-effective_from").first()
    if latest is not None and effective_from <= latest.effective_from:
        raise ValidationError(
            {"effective_from": f"must be after the latest price ({latest.effective_from})"}
        )
    price = ModelPrice(
        model=model,
        effective_from=effective_from,
        input_usd_per_mtok=input_usd_per_mtok,
        output_usd_per_mtok=output_usd_per_mtok,
        cached_input_usd_per_mtok=cached_input_usd_per_mtok,
        cache_write_usd_per_mtok=cache_write_usd_per_mtok,
        batch_input_usd_per_mtok=batch_input_usd_per_mtok,
        batch_output_usd_per_mtok=batch_output_usd_per_mtok,
        source=source,
    )
    return audited_save(
        price,
        actor=actor,
        org=model.org,
        action="model.price_added",
        snapshot=price_snapshot,
        before=price_snapshot(latest) if latest else None,
    )


def model_create(
    *,
    actor,
    org: Organization,
    name: str,
    provider: Provider,
    input_usd_per_mtok: Decimal,
    output_usd_per_mtok: Decimal,
    cached_input_usd_per_mtok: Decimal | None = None,
    cache_write_usd_per_mtok: Decimal | None = None,
    batch_input_usd_per_mtok: Decimal | None = None,
    batch_output_usd_per_mtok: Decimal | None = None,
    upstream_model: str = "",
    mode: str = "chat",
    context_window: int | None = None,
    max_output_tokens: int | None = None,
    active: bool = True,
    effective_from: datetime | None = None,
    source: str = "api",
) -> LLMModel:
    """Create a model with its first price, effective now unless ``effective_from`` says later
    (``model_price_add``'s rules)."""
    _name_free(org=org, name=name)
    if provider.org_id != org.pk:
        raise ValidationError({"provider": "provider belongs to another organisation"})
    model = LLMModel(
        org=org,
        provider=provider,
        name=name,
        upstream_model=upstream_model or name,
        mode=mode,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        active=active,
    )
    with transaction.atomic():
        audited_save(model, actor=actor, org=org, action="model.created", snapshot=model_snapshot)
        model_price_add(
            model=model,
            actor=actor,
            input_usd_per_mtok=input_usd_per_mtok,
            output_usd_per_mtok=output_usd_per_mtok,
            cached_input_usd_per_mtok=cached_input_usd_per_mtok,
            cache_write_usd_per_mtok=cache_write_usd_per_mtok,
            batch_input_usd_per_mtok=batch_input_usd_per_mtok,
            batch_output_usd_per_mtok=batch_output_usd_per_mtok,
            effective_from=effective_from,
            source=source,
        )
    return model


def model_update(*, model: LLMModel, actor, **changes) -> LLMModel:
    """Change how a model is served. Its name stays: the ledger, keys and budgets refer to it."""
    before = model_snapshot(model)
    changes_apply(model, changes, editable=MODEL_EDITABLE)
    return audited_save(
        model,
        actor=actor,
        org=model.org,
        action="model.updated",
        snapshot=model_snapshot,
        before=before,
    )


# --- groups -------------------------------------------------------------------------------------


def group_snapshot(group: ModelGroup) -> dict:
    return {
        "name": group.name,
        "strategy": group.strategy,
        "members": [
            {"model": m.model.name, "weight": m.weight}
            for m in group.members.select_related("model").order_by("id")
        ],
        "fallbacks": [
            f.model.name for f in group.fallback_links.select_related("model").order_by("position")
        ],
    }


def _group_links_set(
    group: ModelGroup,
    members: list[tuple[LLMModel, int]] | None,
    fallbacks: list[LLMModel] | None,
) -> None:
    if members is not None:
        if not members:
            raise ValidationError({"members": "a group needs at least one model"})
        names = [m.name for m, _ in members]
        if len(set(names)) != len(names):
            raise ValidationError({"members": "each model may appear once"})
        _same_org(group.org, "members", (m for m, _ in members))
        group.members.all().delete()
        GroupMember.objects.bulk_create(
            GroupMember(group=group, model=m, weight=w) for m, w in members
        )
    if fallbacks is not None:
        names = [m.name for m in fallbacks]
        if len(set(names)) != len(names):
            raise ValidationError({"fallbacks": "each model may appear once"})
        _same_org(group.org, "fallbacks", fallbacks)
        group.fallback_links.all().delete()
        GroupFallback.objects.bulk_create(
            GroupFallback(group=group, model=m, position=i) for i, m in enumerate(fallbacks)
        )


@transaction.atomic
def group_create(
    *,
    actor,
    org: Organization,
    name: str,
    members: list[tuple[LLMModel, int]],
    fallbacks: list[LLMModel] | None = None,
    strategy: str = "weighted",
) -> ModelGroup:
    """Create a group from (model, weight) members and an ordered fallback chain."""
    _name_free(org=org, name=name)
    group = ModelGroup(org=org, name=name, strategy=strategy)
    group.full_clean()
    group.save()
    _group_links_set(group, members, fallbacks or [])
    audit_record(
        actor=actor, org=org, action="group.created", obj=group, after=group_snapshot(group)
    )
    return group


@transaction.atomic
def group_update(
    *,
    group: ModelGroup,
    actor,
    strategy: str | None = None,
    members: list[tuple[LLMModel, int]] | None = None,
    fallbacks: list[LLMModel] | None = None,
) -> ModelGroup:
    """Change the strategy, or replace the members or the fallback chain as a whole."""
    before = group_snapshot(group)
    if strategy is not None:
        group.strategy = strategy
    group.full_clean()
    group.save()
    _group_links_set(group, members, fallbacks)
    audit_record(
        actor=actor,
        org=group.org,
        action="group.updated",
        obj=group,
        before=before,
        after=group_snapshot(group),
    )
    return group


def group_delete(*, group: ModelGroup, actor) -> None:
    audited_delete(
        group, actor=actor, org=group.org, action="group.deleted", snapshot=group_snapshot
    )


# --- routers ------------------------------------------------------------------------------------


def router_snapshot(router: Router) -> dict:
    return {
        "name": router.name,
        "strong": router.strong.name,
        "weak": router.weak.name,
        "scorer": router.scorer,
        "threshold": router.threshold,
        "store_prompts": router.store_prompts,
        "prompt_retention": router.prompt_retention,
        "shadow_rate": router.shadow_rate,
        "pair_sample_rate": router.pair_sample_rate,
        "pair_retention_days": router.pair_retention_days,
        "judge_model": router.judge_model.name if router.judge_model_id else "",
        "judge_rubric": router.judge_rubric,
    }


def _router_check(router: Router) -> None:
    """The router's models are its organisation's, and two; ``audited_save`` runs full_clean."""
    _same_org(router.org, "strong", [router.strong])
    _same_org(router.org, "weak", [router.weak])
    if router.judge_model_id:
        _same_org(router.org, "judge_model", [router.judge_model])
    if router.strong_id == router.weak_id:
        raise ValidationError({"weak": "must differ from the strong model"})


def router_create(
    *,
    actor,
    org: Organization,
    name: str,
    strong: LLMModel,
    weak: LLMModel,
    scorer: str = "heuristic",
    threshold: float = 0.5,
    store_prompts: bool = True,
    prompt_retention: int = 5000,
    shadow_rate: float = 0.0,
    pair_sample_rate: float = 1.0,
    pair_retention_days: int = 30,
    judge_model: LLMModel | None = None,
    judge_rubric: str = "",
) -> Router:
    """A router sends each prompt to ``strong`` when its score >= threshold, else to ``weak``;
    ``shadow_rate`` of its calls are mirrored to the other model (evaluation spend)."""
    _name_free(org=org, name=name)
    router = Router(
        org=org,
        name=name,
        strong=strong,
        weak=weak,
        scorer=scorer,
        threshold=threshold,
        store_prompts=store_prompts,
        prompt_retention=prompt_retention,
        shadow_rate=shadow_rate,
        pair_sample_rate=pair_sample_rate,
        pair_retention_days=pair_retention_days,
        judge_model=judge_model,
        judge_rubric=judge_rubric,
    )
    _router_check(router)
    return audited_save(
        router, actor=actor, org=org, action="router.created", snapshot=router_snapshot
    )


def router_update(*, router: Router, actor, **changes) -> Router:
    before = router_snapshot(router)
    changes_apply(router, changes, editable=ROUTER_EDITABLE)
    _router_check(router)
    return audited_save(
        router,
        actor=actor,
        org=router.org,
        action="router.updated",
        snapshot=router_snapshot,
        before=before,
    )


def router_delete(*, router: Router, actor) -> None:
    audited_delete(
        router, actor=actor, org=router.org, action="router.deleted", snapshot=router_snapshot
    )
