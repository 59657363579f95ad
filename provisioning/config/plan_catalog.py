"""The planners of the catalogue: providers, models with their prices, groups and routers.

Each ``plan_*`` compares one section of the spec with the organisation's rows and adds a
create or update change per difference; the change calls a ``gateway.services.catalog``
service, which validates and records the audit entry. Prices are history: a changed price
adds a ``ModelPrice`` row effective now, it never rewrites an old one. A provider's own keys
are planned as "api_key: set / changed / not set" (and "admin_api_key: …"), never shown; a
file that leaves ``api_key_encrypted`` (``admin_api_key_encrypted``) out keeps the stored key.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.utils import timezone

from gateway.models import LLMModel, ModelGroup, Provider, Router
from gateway.services import catalog
from gateway.services.credentials import SecretDecryptError, provider_key_unseal, secret_decrypt
from provisioning.config.changes import Plan, changed, created, diff
from provisioning.config.spec import PRICE_FIELDS, GroupSpec, ModelSpec, ProviderSpec, RouterSpec

# --- providers ------------------------------------------------------------------------------


def plan_providers(p: Plan) -> None:
    existing = {pr.slug: pr for pr in p.existing(Provider.objects.all())}
    for ps in p.spec.providers:
        wanted = {k: getattr(ps, k) for k in catalog.PROVIDER_EDITABLE}
        keys = {key: _key_wanted(p, ps, key) for key in catalog.PROVIDER_KEYS}
        current = existing.get(ps.slug)
        label = f"provider {ps.slug}"
        if current is None:
            fields = created(wanted)
            fields.update({key: (None, "set") for key, value in keys.items() if value})
            p.add("create", label, fields, _create_provider, p, ps, wanted)
            continue
        fields = diff({k: getattr(current, k) for k in wanted}, wanted)
        for key, value in keys.items():
            key_field = _key_change(current, value, key)
            if key_field:
                fields[key] = key_field
        if fields:
            p.add("update", label, fields, _update_provider, p, current, ps, fields)


def _reference(ps: ProviderSpec, key: str) -> str | None:
    return getattr(ps, f"{key}_encrypted")


def _key_wanted(p: Plan, ps: ProviderSpec, key: str = "api_key") -> str | None:
    """The key the file gives the provider as ``key`` ("api_key", "admin_api_key"; None: left
    out, kept; "": removed). A reference made for another organisation is refused: it would
    hand that organisation's key to this one's provider (and so to wherever its admins point
    it)."""
    reference = _reference(ps, key)
    if not reference:
        return reference
    org_slug, value = provider_key_unseal(reference)
    if org_slug != p.spec.org_slug:
        p.errors.append(
            f"{ps.path}.{key}_encrypted: provider {ps.slug}: this reference was made for "
            f"organisation {org_slug!r}; make one with encrypt_secret --org {p.spec.org_slug}"
        )
        return None
    return value


def _key_change(current: Provider, value: str | None, key: str = "api_key"):
    """The plan's line for the key: "not set -> set", "set -> changed", "set -> not set"; None
    when unchanged. Keys are compared decrypted (``rotate_secrets`` changes the tokens)."""
    token = getattr(current, f"{key}_encrypted")
    before = "set" if token else "not set"
    if value is None or (value == "" and before == "not set"):
        return None
    if value == "":
        return (before, "not set")
    if before == "not set":
        return (before, "set")
    try:
        stored = secret_decrypt(token)
    except SecretDecryptError:
        stored = ""  # unreadable: the file's key replaces it
    return None if hmac.compare_digest(stored.encode(), value.encode()) else (before, "changed")


def _api_key(ps: ProviderSpec, key: str = "api_key") -> str | None:
    """The key to store, unsealed when the change runs (the plan keeps only the reference)."""
    reference = _reference(ps, key)
    if not reference:
        return reference
    return provider_key_unseal(reference)[1]


def _create_provider(p: Plan, ps: ProviderSpec, wanted: dict) -> None:
    keys = {key: _api_key(ps, key) or None for key in catalog.PROVIDER_KEYS}
    catalog.provider_create(actor=p.actor, org=p.org, slug=ps.slug, **keys, **wanted)


def _update_provider(p: Plan, provider: Provider, ps: ProviderSpec, fields: dict) -> None:
    changes = changed(fields)
    for key in catalog.PROVIDER_KEYS:
        changes[key] = _api_key(ps, key) if changes.pop(key, None) is not None else None
    catalog.provider_update(provider=provider, actor=p.actor, **changes)


# --- models and prices ----------------------------------------------------------------------


def plan_models(p: Plan) -> None:
    """A model's settings and its current price are two changes: an update and a new price."""
    existing = {m.name: m for m in p.existing(LLMModel.objects.select_related("provider"))}
    now = timezone.now()
    for ms in p.spec.models:
        current = existing.get(ms.name)
        _plan_model(p, ms, current)
        if current is not None:
            _plan_price(p, ms, current, now)


def _plan_model(p: Plan, ms: ModelSpec, current: LLMModel | None) -> None:
    wanted = {
        "provider": ms.provider,
        "upstream_model": ms.upstream_model,
        "mode": ms.mode,
        "context_window": ms.context_window,
        "max_output_tokens": ms.max_output_tokens,
    }
    label = f"model {ms.name}"
    if current is None:
        p.add("create", label, created({**wanted, **ms.prices}), _create_model, p, ms)
        return
    before = {k: getattr(current, k) for k in wanted if k != "provider"}
    before["provider"] = current.provider.slug
    fields = diff(before, wanted)
    if fields:
        p.add("update", label, fields, _update_model, p, current, fields)


def _plan_price(p: Plan, ms: ModelSpec, current: LLMModel, now) -> None:
    price = current.price_at(now)
    before_prices = {k: getattr(price, k) for k in PRICE_FIELDS} if price else {}
    fields = diff(before_prices, ms.prices)
    if fields:
        p.add(
            "create",
            f"price of {ms.name}",
            fields,
            _add_price,
            p,
            ms,
            note="effective now; earlier prices are kept",
        )


def _create_model(p: Plan, ms: ModelSpec) -> None:
    catalog.model_create(
        actor=p.actor,
        org=p.org,
        name=ms.name,
        provider=p.provider(ms.provider),
        upstream_model=ms.upstream_model,
        mode=ms.mode,
        context_window=ms.context_window,
        max_output_tokens=ms.max_output_tokens,
        **ms.prices,
    )


def _update_model(p: Plan, model: LLMModel, fields: dict) -> None:
    changes = changed(fields)
    if "provider" in changes:
        changes["provider"] = p.provider(changes["provider"])
    catalog.model_update(model=model, actor=p.actor, **changes)


def _add_price(p: Plan, ms: ModelSpec) -> None:
    catalog.model_price_add(model=p.model(ms.name), actor=p.actor, source="config", **ms.prices)


# --- groups ---------------------------------------------------------------------------------


def plan_groups(p: Plan) -> None:
    existing = {
        g.name: g
        for g in p.existing(
            ModelGroup.objects.prefetch_related("members__model", "fallback_links__model")
        )
    }
    for gs in p.spec.groups:
        wanted = {
            "strategy": gs.strategy,
            "members": sorted([m, w] for m, w in gs.members),
            "fallbacks": list(gs.fallbacks),
        }
        current = existing.get(gs.name)
        label = f"group {gs.name}"
        if current is None:
            p.add("create", label, created(wanted), _write_group, p, None, gs, wanted)
            continue
        before = {
            "strategy": current.strategy,
            "members": sorted([m.model.name, m.weight] for m in current.members.all()),
            "fallbacks": [f.model.name for f in current.fallback_links.all()],
        }
        fields = diff(before, wanted)
        if fields:
            p.add("update", label, fields, _write_group, p, current, gs, fields)


def _write_group(p: Plan, group: ModelGroup | None, gs: GroupSpec, fields: dict) -> None:
    """Create the group, or update it (members and fallbacks only if they changed)."""
    members = [(p.model(name), weight) for name, weight in gs.members]
    fallbacks = [p.model(name) for name in gs.fallbacks]
    if group is None:
        catalog.group_create(
            actor=p.actor,
            org=p.org,
            name=gs.name,
            members=members,
            fallbacks=fallbacks,
            strategy=gs.strategy,
        )
        return
    catalog.group_update(
        group=group,
        actor=p.actor,
        strategy=gs.strategy,
        members=members if "members" in fields else None,
        fallbacks=fallbacks if "fallbacks" in fields else None,
    )


# --- routers --------------------------------------------------------------------------------

# the settings a file may leave out, with the value a new router gets then
_ROUTER_DEFAULTS = {
    "threshold": 0.5,
    "store_prompts": True,
    "prompt_retention": 5000,
    "shadow_rate": 0.0,
    "pair_sample_rate": 1.0,
    "pair_retention_days": 30,
    "judge_model": "",
    "judge_rubric": "",
}


def _router_values(rs: RouterSpec, current: Router | None) -> dict[str, Any]:
    """What the file asks of a router; settings it leaves out keep their current value."""
    values: dict[str, Any] = {"strong": rs.strong, "weak": rs.weak, "scorer": rs.scorer}
    for name, default in _ROUTER_DEFAULTS.items():
        value = getattr(rs, name)
        if value is not None:
            values[name] = value
        elif current is None:
            values[name] = default
    return values


def _router_current(router: Router) -> dict[str, Any]:
    """The router as the file describes it: the catalog's snapshot without its name."""
    current = catalog.router_snapshot(router)
    current.pop("name")
    return current


def plan_routers(p: Plan) -> None:
    existing = {
        r.name: r
        for r in p.existing(Router.objects.select_related("strong", "weak", "judge_model"))
    }
    for rs in p.spec.routers:
        current = existing.get(rs.name)
        wanted = _router_values(rs, current)
        label = f"router {rs.name}"
        if current is None:
            p.add("create", label, created(wanted), _write_router, p, None, rs)
            continue
        fields = diff(_router_current(current), wanted)
        if fields:
            p.add("update", label, fields, _write_router, p, current, rs)


def _write_router(p: Plan, router: Router | None, rs: RouterSpec) -> None:
    values = _router_values(rs, router)
    values["strong"] = p.model(rs.strong)
    values["weak"] = p.model(rs.weak)
    if "judge_model" in values:
        judge = values["judge_model"]
        values["judge_model"] = p.model(judge) if judge else None
    if router is None:
        catalog.router_create(actor=p.actor, org=p.org, name=rs.name, **values)
    else:
        catalog.router_update(router=router, actor=p.actor, **values)
