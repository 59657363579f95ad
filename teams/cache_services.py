"""Writes of the response cache's policies (``CachePolicy``): create, update, delete, each
validated (``CachePolicy.clean`` owns the scope and ownership rules) and audited.

Saving or deleting a policy bumps the gateway's config stamp (``gateway.signals``), so every
gateway process reloads the organisation's policies within a poll interval.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from teams.audit import audited_delete, audited_save, changes_apply
from teams.models import (
    CACHE_ENTRY_DEFAULT,
    CACHE_TTL_DEFAULT,
    CachePolicy,
    CacheScope,
    Feature,
    Organization,
    Team,
    VirtualKey,
)
from teams.services import key_model_names_clean

EDITABLE = ("enabled", "ttl_seconds", "max_entry_bytes", "tools")


def cache_policy_snapshot(policy: CachePolicy) -> dict:
    return {
        "scope": policy.scope,
        "team": policy.team.slug if policy.team_id else None,
        "feature": str(policy.feature) if policy.feature_id else None,
        "key": policy.key.name if policy.key_id else None,
        "model_name": policy.model_name or None,
        "enabled": policy.enabled,
        "ttl_seconds": policy.ttl_seconds,
        "max_entry_bytes": policy.max_entry_bytes,
        "tools": policy.tools,
    }


def _model_name_check(*, org: Organization, scope: str, model_name: str) -> None:
    """A model policy names something clients of the org may call (a model, group or router,
    ``router:NAME`` or bare); ``ValueError`` becomes the field's error."""
    if scope != CacheScope.MODEL or not model_name:
        return
    try:
        key_model_names_clean(org=org, names=[model_name])
    except ValueError as exc:
        raise ValidationError({"model_name": str(exc)}) from exc


def cache_policy_create(
    *,
    actor,
    org: Organization,
    scope: str,
    team: Team | None = None,
    feature: Feature | None = None,
    key: VirtualKey | None = None,
    model_name: str = "",
    enabled: bool = True,
    ttl_seconds: int = CACHE_TTL_DEFAULT,
    max_entry_bytes: int = CACHE_ENTRY_DEFAULT,
    tools: bool = False,
) -> CachePolicy:
    """Turn the response cache on (or, with ``enabled=False``, off) for one scope."""
    model_name = (model_name or "").strip()
    _model_name_check(org=org, scope=scope, model_name=model_name)
    policy = CachePolicy(
        org=org,
        scope=scope,
        team=team,
        feature=feature,
        key=key,
        model_name=model_name,
        enabled=enabled,
        ttl_seconds=ttl_seconds,
        max_entry_bytes=max_entry_bytes,
        tools=tools,
    )
    return audited_save(
        policy,
        actor=actor,
        org=org,
        action="cache_policy.created",
        snapshot=cache_policy_snapshot,
    )


def cache_policy_update(*, policy: CachePolicy, actor, **changes) -> CachePolicy:
    """Change what a policy allows; its scope and target stay (delete and create to move it)."""
    before = cache_policy_snapshot(policy)
    changes_apply(policy, changes, editable=EDITABLE)
    return audited_save(
        policy,
        actor=actor,
        org=policy.org,
        action="cache_policy.updated",
        snapshot=cache_policy_snapshot,
        before=before,
        skip_unchanged=True,
    )


def cache_policy_delete(*, policy: CachePolicy, actor) -> None:
    audited_delete(
        policy,
        actor=actor,
        org=policy.org,
        action="cache_policy.deleted",
        snapshot=cache_policy_snapshot,
    )
