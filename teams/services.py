"""Control-plane writes: keys, members, audit. Views, admin, API and commands call these."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from teams.models import (
    KEY_PREFIX,
    AuditEntry,
    Budget,
    BudgetAction,
    Feature,
    KeySecret,
    Membership,
    Organization,
    Role,
    Team,
    VirtualKey,
    default_thresholds,
)

_ALPHABET = string.ascii_letters + string.digits
LOOKUP_LEN = 12
BODY_LEN = 40


def key_secret_digest(*, secret: str) -> str:
    """HMAC-SHA256 of the whole secret, keyed by the server-side pepper."""
    return hmac.new(
        settings.FINOPS_KEY_PEPPER.encode(), secret.encode(), hashlib.sha256
    ).hexdigest()


def key_secret_split(*, secret: str) -> str | None:
    """The lookup part of a well-formed secret, or None."""
    if not secret.startswith(KEY_PREFIX) or len(secret) != len(KEY_PREFIX) + LOOKUP_LEN + BODY_LEN:
        return None
    lookup = secret[len(KEY_PREFIX) : len(KEY_PREFIX) + LOOKUP_LEN]
    return lookup if all(c in _ALPHABET for c in lookup) else None


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _new_secret(*, key: VirtualKey) -> str:
    lookup = _random(LOOKUP_LEN)
    while KeySecret.objects.filter(lookup=lookup).exists():
        lookup = _random(LOOKUP_LEN)
    secret = f"{KEY_PREFIX}{lookup}{_random(BODY_LEN)}"
    KeySecret.objects.create(key=key, lookup=lookup, digest=key_secret_digest(secret=secret))
    return secret


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "username", None) or str(actor)


def audit_record(
    *,
    actor,
    org: Organization | None,
    action: str,
    obj: Any,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    """Record one control-plane change. Callers pass snapshots that never contain a secret."""
    return AuditEntry.objects.create(
        org=org,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor),
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=str(getattr(obj, "pk", "") or ""),
        object_repr=str(obj)[:300],
        before=before,
        after=after,
    )


def key_snapshot(key: VirtualKey) -> dict:
    return {
        "name": key.name,
        "team": key.team.slug,
        "default_feature": key.default_feature.slug if key.default_feature_id else None,
        "allowed_models": list(key.allowed_models or []),
        "fallbacks": list(key.fallbacks or []),
        "default_model": key.default_model,
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "max_parallel": key.max_parallel,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@dataclass(frozen=True)
class MintedKey:
    key: VirtualKey
    secret: str


@transaction.atomic
def key_mint(
    *,
    team: Team,
    name: str,
    actor=None,
    default_feature: Feature | None = None,
    allowed_models: list[str] | None = None,
    fallbacks: list[str] | None = None,
    default_model: str = "",
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    max_parallel: int | None = None,
    expires_at: datetime | None = None,
) -> MintedKey:
    """Create a key and return its secret: the only time the secret exists outside the caller."""
    if default_feature is not None and default_feature.team_id != team.pk:
        raise ValueError("default feature belongs to another team")
    key = VirtualKey.objects.create(
        org=team.org,
        team=team,
        name=name,
        default_feature=default_feature,
        allowed_models=sorted(set(allowed_models or [])),
        fallbacks=key_fallbacks_clean(org=team.org, names=fallbacks or []),
        default_model=default_model,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        max_parallel=max_parallel,
        expires_at=expires_at,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    secret = _new_secret(key=key)
    audit_record(actor=actor, org=team.org, action="key.minted", obj=key, after=key_snapshot(key))
    return MintedKey(key=key, secret=secret)


def key_fallbacks_clean(*, org: Organization, names: list[str]) -> list[str]:
    """A key's default fallback chain: distinct chat models of its org, in the order given.

    Raises ``ValueError`` naming the first name that is not one. Groups and routers are not
    allowed here: a fallback is the last resort, so it is a concrete deployment.
    """
    from gateway.models import LLMModel, ModelMode

    chat = set(LLMModel.objects.filter(org=org, mode=ModelMode.CHAT).values_list("name", flat=True))
    seen: list[str] = []
    for name in names:
        if name not in chat:
            raise ValueError(f"{name!r} is not a chat model of organisation {org.slug!r}")
        if name in seen:
            raise ValueError(f"{name!r} is listed twice")
        seen.append(name)
    return seen


@transaction.atomic
def key_revoke(*, key: VirtualKey, actor=None) -> VirtualKey:
    if key.revoked_at is None:
        before = key_snapshot(key)
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            org=key.org,
            action="key.revoked",
            obj=key,
            before=before,
            after=key_snapshot(key),
        )
    return key


@transaction.atomic
def key_rotate(*, key: VirtualKey, actor=None, grace_seconds: int | None = None) -> MintedKey:
    """Issue a new secret; the previous ones keep working for the grace period."""
    if key.revoked_at is not None:
        raise ValueError("a revoked key cannot be rotated")
    grace = settings.FINOPS_KEY_ROTATION_GRACE_SECONDS if grace_seconds is None else grace_seconds
    now = timezone.now()
    for old in key.secrets.filter(superseded_at__isnull=True):
        old.superseded_at = now
        old.valid_until = now + timedelta(seconds=max(0, grace))
        old.save(update_fields=["superseded_at", "valid_until"])
    secret = _new_secret(key=key)
    audit_record(
        actor=actor,
        org=key.org,
        action="key.rotated",
        obj=key,
        after={"grace_seconds": grace},
    )
    return MintedKey(key=key, secret=secret)


def key_update(*, key: VirtualKey, actor=None, **fields) -> VirtualKey:
    before = key_snapshot(key)
    if "fallbacks" in fields:
        fields["fallbacks"] = key_fallbacks_clean(org=key.org, names=fields["fallbacks"] or [])
    for name, value in fields.items():
        setattr(key, name, value)
    key.full_clean()
    with transaction.atomic():
        key.save()
        audit_record(
            actor=actor,
            org=key.org,
            action="key.updated",
            obj=key,
            before=before,
            after=key_snapshot(key),
        )
    return key


def key_secret_resolve(*, secret: str) -> KeySecret | None:
    """The stored secret row matching a presented secret, or None.

    A wrong secret with a right lookup prefix is rejected by the constant-time digest compare.
    """
    lookup = key_secret_split(secret=secret)
    if lookup is None:
        return None
    row = (
        KeySecret.objects.select_related("key", "key__team", "key__org", "key__default_feature")
        .filter(lookup=lookup)
        .first()
    )
    if row is None or not hmac.compare_digest(row.digest, key_secret_digest(secret=secret)):
        return None
    return row


def key_authenticate(*, secret: str, now: datetime | None = None) -> tuple[VirtualKey | None, str]:
    """Resolve a presented secret. Returns (key, "") or (None, error_code).

    Error codes follow the gateway contract: invalid_api_key, key_expired, key_revoked.
    """
    now = now or timezone.now()
    row = key_secret_resolve(secret=secret)
    if row is None:
        return None, "invalid_api_key"
    key = row.key
    if key.revoked_at is not None:
        return None, "key_revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return None, "key_expired"
    if row.valid_until is not None and row.valid_until <= now:
        return None, "key_expired"
    return key, ""


def membership_add(
    *, actor, org: Organization, user, role: str, team: Team | None = None
) -> Membership:
    membership = Membership(org=org, user=user, role=role, team=team)
    membership.full_clean()
    with transaction.atomic():
        membership.save()
        audit_record(
            actor=actor,
            org=org,
            action="member.added",
            obj=membership,
            after={"user": user.username, "role": role, "team": team.slug if team else None},
        )
    return membership


def user_get_or_create(*, email_or_username: str):
    """Users keep Django's username; an e-mail address is a fine one. New users get no usable
    password (they set one through the password-reset flow)."""
    User = get_user_model()
    user = User.objects.filter(username__iexact=email_or_username).first()
    if user is None:
        user = User(
            username=email_or_username, email=email_or_username if "@" in email_or_username else ""
        )
        user.set_unusable_password()
        user.save()
    return user


ROLE_ORDER = [Role.ADMIN, Role.FINANCE, Role.LEAD, Role.MEMBER]


# --- Organisations, teams, members, features, budgets (the API and the admin call these) ---
# Every change records an audit entry with before/after snapshots; snapshots hold names and
# settings only, never a secret.

ORG_EDITABLE = ("name", "timezone")
TEAM_EDITABLE = ("name", "rpm_limit", "tpm_limit", "max_parallel")
FEATURE_EDITABLE = ("name", "claimed", "default_model")
BUDGET_EDITABLE = (
    "period",
    "limit_usd",
    "action",
    "downgrade_to",
    "fail_open",
    "alert_thresholds",
    "recipients",
)


def _apply_changes(obj: Any, changes: dict[str, Any], editable: tuple[str, ...]) -> None:
    unknown = set(changes) - set(editable)
    if unknown:
        raise ValidationError({name: "cannot be changed" for name in sorted(unknown)})
    for name, value in changes.items():
        setattr(obj, name, value)


def org_snapshot(org: Organization) -> dict:
    return {"slug": org.slug, "name": org.name, "timezone": org.timezone}


def org_update(*, org: Organization, actor, **changes) -> Organization:
    before = org_snapshot(org)
    _apply_changes(org, changes, ORG_EDITABLE)
    org.full_clean()
    with transaction.atomic():
        org.save()
        audit_record(
            actor=actor,
            org=org,
            action="org.updated",
            obj=org,
            before=before,
            after=org_snapshot(org),
        )
    return org


def team_snapshot(team: Team) -> dict:
    return {
        "slug": team.slug,
        "name": team.name,
        "rpm_limit": team.rpm_limit,
        "tpm_limit": team.tpm_limit,
        "max_parallel": team.max_parallel,
    }


def team_create(
    *,
    actor,
    org: Organization,
    slug: str,
    name: str = "",
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    max_parallel: int | None = None,
) -> Team:
    """Create a team; its limits (None: none) cap all of its keys together, in the gateway."""
    if Team.objects.filter(org=org, slug=slug).exists():
        raise ValidationError({"slug": f"{org.slug} already has a team {slug!r}"})
    team = Team(
        org=org,
        slug=slug,
        name=name or slug,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        max_parallel=max_parallel,
    )
    team.full_clean()
    with transaction.atomic():
        team.save()
        audit_record(
            actor=actor, org=org, action="team.created", obj=team, after=team_snapshot(team)
        )
    return team


def team_update(*, team: Team, actor, **changes) -> Team:
    before = team_snapshot(team)
    _apply_changes(team, changes, TEAM_EDITABLE)
    team.full_clean()
    with transaction.atomic():
        team.save()
        audit_record(
            actor=actor,
            org=team.org,
            action="team.updated",
            obj=team,
            before=before,
            after=team_snapshot(team),
        )
    return team


def team_delete(*, team: Team, actor) -> None:
    """Delete a team with its features, keys and budgets. Refused while it has usable keys, so
    that no running service loses its key by accident (revoke them first)."""
    if team.keys.filter(revoked_at__isnull=True).exists():
        raise ValidationError("revoke the team's keys before deleting it")
    with transaction.atomic():
        audit_record(
            actor=actor, org=team.org, action="team.deleted", obj=team, before=team_snapshot(team)
        )
        team.delete()


def membership_snapshot(membership: Membership) -> dict:
    return {
        "user": membership.user.username,
        "role": membership.role,
        "team": membership.team.slug if membership.team_id else None,
    }


def _last_admin(membership: Membership) -> bool:
    return (
        membership.role == Role.ADMIN
        and not Membership.objects.filter(org_id=membership.org_id, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .exists()
    )


def membership_update(
    *, membership: Membership, actor, role: str, team: Team | None = None
) -> Membership:
    """Change a member's role (and the team it applies to)."""
    if role != Role.ADMIN and _last_admin(membership):
        raise ValidationError({"role": "an organisation keeps at least one admin"})
    before = membership_snapshot(membership)
    membership.role = role
    membership.team = team
    membership.full_clean()
    with transaction.atomic():
        membership.save()
        audit_record(
            actor=actor,
            org=membership.org,
            action="member.updated",
            obj=membership,
            before=before,
            after=membership_snapshot(membership),
        )
    return membership


def membership_remove(*, membership: Membership, actor) -> None:
    if _last_admin(membership):
        raise ValidationError("an organisation keeps at least one admin")
    with transaction.atomic():
        audit_record(
            actor=actor,
            org=membership.org,
            action="member.removed",
            obj=membership,
            before=membership_snapshot(membership),
        )
        membership.delete()


def feature_snapshot(feature: Feature) -> dict:
    return {
        "team": feature.team.slug,
        "slug": feature.slug,
        "name": feature.name,
        "claimed": feature.claimed,
        "default_model": feature.default_model,
    }


def feature_create(
    *, actor, team: Team, slug: str, name: str = "", claimed: bool = True, default_model: str = ""
) -> Feature:
    if Feature.objects.filter(team=team, slug=slug).exists():
        raise ValidationError({"slug": f"team {team.slug} already has a feature {slug!r}"})
    feature = Feature(
        team=team, slug=slug, name=name or slug, claimed=claimed, default_model=default_model
    )
    feature.full_clean()
    with transaction.atomic():
        feature.save()
        audit_record(
            actor=actor,
            org=team.org,
            action="feature.created",
            obj=feature,
            after=feature_snapshot(feature),
        )
    return feature


def feature_update(*, feature: Feature, actor, **changes) -> Feature:
    """Rename or claim a feature; its slug stays, because the ledger attributes spend by it."""
    before = feature_snapshot(feature)
    _apply_changes(feature, changes, FEATURE_EDITABLE)
    feature.full_clean()
    with transaction.atomic():
        feature.save()
        audit_record(
            actor=actor,
            org=feature.team.org,
            action="feature.updated",
            obj=feature,
            before=before,
            after=feature_snapshot(feature),
        )
    return feature


def feature_delete(*, feature: Feature, actor) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            org=feature.team.org,
            action="feature.deleted",
            obj=feature,
            before=feature_snapshot(feature),
        )
        feature.delete()


def budget_snapshot(budget: Budget) -> dict:
    return {
        "scope": budget.scope,
        "team": budget.team.slug if budget.team_id else None,
        "feature": budget.feature.slug if budget.feature_id else None,
        "key": budget.key.name if budget.key_id else None,
        "period": budget.period,
        "limit_usd": str(budget.limit_usd),
        "action": budget.action,
        "downgrade_to": budget.downgrade_to.name if budget.downgrade_to_id else None,
        "fail_open": budget.fail_open,
        "alert_thresholds": list(budget.alert_thresholds or []),
        "recipients": list(budget.recipients or []),
    }


def budget_create(
    *,
    actor,
    org: Organization,
    scope: str,
    period: str,
    limit_usd: Decimal,
    team: Team | None = None,
    feature: Feature | None = None,
    key: VirtualKey | None = None,
    action: str = BudgetAction.BLOCK,
    downgrade_to=None,
    fail_open: bool = False,
    alert_thresholds: list[int] | None = None,
    recipients: list[str] | None = None,
) -> Budget:
    """Create a budget. Feature and key budgets also carry their team, so a team's readers
    find them."""
    if feature is not None and team is None:
        team = feature.team
    if key is not None and team is None:
        team = key.team
    owners = {
        "team": team.org_id if team else None,
        "feature": feature.team.org_id if feature else None,
        "key": key.org_id if key else None,
    }
    for name, owner in owners.items():
        if owner is not None and owner != org.pk:
            raise ValidationError({name: "belongs to another organisation"})
    if (feature is not None and feature.team_id != team.pk) or (
        key is not None and key.team_id != team.pk
    ):
        raise ValidationError({"team": "does not own this feature or key"})
    budget = Budget(
        org=org,
        scope=scope,
        team=team,
        feature=feature,
        key=key,
        period=period,
        limit_usd=limit_usd,
        action=action,
        downgrade_to=downgrade_to,
        fail_open=fail_open,
        alert_thresholds=(
            list(alert_thresholds) if alert_thresholds is not None else default_thresholds()
        ),
        recipients=list(recipients or []),
    )
    budget.full_clean()
    with transaction.atomic():
        budget.save()
        audit_record(
            actor=actor, org=org, action="budget.created", obj=budget, after=budget_snapshot(budget)
        )
    return budget


def budget_update(*, budget: Budget, actor, **changes) -> Budget:
    before = budget_snapshot(budget)
    _apply_changes(budget, changes, BUDGET_EDITABLE)
    if budget.action != BudgetAction.DOWNGRADE and "downgrade_to" not in changes:
        budget.downgrade_to = None  # switching away from downgrade drops its target
    budget.full_clean()
    after = budget_snapshot(budget)
    if after == before:
        return budget
    with transaction.atomic():
        budget.save()
        audit_record(
            actor=actor,
            org=budget.org,
            action="budget.updated",
            obj=budget,
            before=before,
            after=after,
        )
    return budget


def budget_delete(*, budget: Budget, actor) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            org=budget.org,
            action="budget.deleted",
            obj=budget,
            before=budget_snapshot(budget),
        )
        budget.delete()


def membership_invite(
    *, actor, org: Organization, username: str, role: str, team: Team | None = None
) -> Membership:
    """Add a person by username or e-mail address, creating the user (without a usable
    password) when new; nothing is created if the membership itself is invalid."""
    with transaction.atomic():
        user = user_get_or_create(email_or_username=username)
        return membership_add(actor=actor, org=org, user=user, role=role, team=team)
