"""The planner of the response cache's policies (``cache:`` at the top, on models, teams,
features and keys; see ``validate_cache.py``).

A policy is matched by what it targets (its scope and the target's names); the file describes
the whole policy, so a left-out setting goes back to its default. A key policy names a key
that exists (keys are minted, never created by a file): a missing or ambiguous name refuses
the plan. With ``--prune``, policies the file no longer lists are deleted (``prune.py``),
key policies included: a file that describes the cache describes all of it.
"""

from __future__ import annotations

from typing import Any

from provisioning.config.changes import Plan, changed, created, diff
from provisioning.config.spec import CacheSpec
from teams import cache_services
from teams.models import CachePolicy, CacheScope, Feature, VirtualKey

PolicyIdent = tuple[str, str | None, str | None, str | None, str]  # CacheSpec.ident
SETTINGS = ("enabled", "ttl_seconds", "max_entry_bytes", "tools")


def policy_ident(policy: CachePolicy) -> PolicyIdent:
    """How the file names a policy: ``CacheSpec.ident`` of the same policy."""
    if policy.scope == CacheScope.TEAM:
        return (policy.scope, policy.team.slug, None, None, "")
    if policy.scope == CacheScope.FEATURE:
        return (policy.scope, policy.feature.team.slug, policy.feature.slug, None, "")
    if policy.scope == CacheScope.KEY:
        return (policy.scope, policy.key.team.slug, None, policy.key.name, "")
    if policy.scope == CacheScope.MODEL:
        return (policy.scope, None, None, None, policy.model_name)
    return (policy.scope, None, None, None, "")


def policy_label(ident: PolicyIdent) -> str:
    scope, team, feature, key, model = ident
    where = {
        "org": "org",
        "team": f"team {team}",
        "feature": f"feature {team}/{feature}",
        "key": f"key {team}/{key}",
        "model": f"model {model}",
    }
    return f"cache policy of {where[scope]}"


def managed_policies(p: Plan):
    return p.existing(
        CachePolicy.objects.select_related("team", "feature__team", "key__team")
    ).order_by("pk")


def _key(p: Plan, cs: CacheSpec) -> tuple[VirtualKey | None, str]:
    """The one key a key policy names (an unrevoked one first), or why there is none."""
    keys = (
        list(VirtualKey.objects.filter(org=p.org, team__slug=cs.team, name=cs.key))
        if p.org is not None
        else []
    )
    usable = [k for k in keys if k.revoked_at is None] or keys
    if not usable:
        return None, (
            f"team {cs.team!r} has no key {cs.key!r} (keys are minted with mint_key, the admin "
            "or the API, never created by a file)"
        )
    if len(usable) > 1:
        return None, f"team {cs.team!r} has {len(usable)} keys named {cs.key!r}: rename one"
    return usable[0], ""


def plan_cache_policies(p: Plan) -> None:
    existing = {policy_ident(policy): policy for policy in managed_policies(p)}
    for cs in p.spec.cache_policies:
        wanted: dict[str, Any] = {name: getattr(cs, name) for name in SETTINGS}
        label = policy_label(cs.ident)
        current = existing.get(cs.ident)
        if current is not None:
            fields = diff({name: getattr(current, name) for name in SETTINGS}, wanted)
            if fields:
                p.add(
                    "update",
                    label,
                    fields,
                    cache_services.cache_policy_update,
                    policy=current,
                    actor=p.actor,
                    **changed(fields),
                )
            continue
        if cs.scope == CacheScope.KEY:
            key, why = _key(p, cs)
            if key is None:
                p.errors.append(f"{cs.path}: {why}")
                continue
        p.add("create", label, created(wanted), _create_policy, p, cs)


def _create_policy(p: Plan, cs: CacheSpec) -> None:
    target: dict[str, Any] = {}
    if cs.scope == CacheScope.TEAM:
        target["team"] = p.team(cs.team)
    elif cs.scope == CacheScope.FEATURE:
        target["feature"] = Feature.objects.get(team=p.team(cs.team), slug=cs.feature)
    elif cs.scope == CacheScope.KEY:
        target["key"] = _key(p, cs)[0]
    elif cs.scope == CacheScope.MODEL:
        target["model_name"] = cs.model
    cache_services.cache_policy_create(
        actor=p.actor,
        org=p.org,
        scope=cs.scope,
        **target,
        **{name: getattr(cs, name) for name in SETTINGS},
    )
