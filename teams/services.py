"""Control-plane writes: keys, members, audit. Views, admin, API and commands call these."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from teams.models import (
    KEY_PREFIX,
    AuditEntry,
    Feature,
    KeySecret,
    Membership,
    Organization,
    Role,
    Team,
    VirtualKey,
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
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        max_parallel=max_parallel,
        expires_at=expires_at,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    secret = _new_secret(key=key)
    audit_record(actor=actor, org=team.org, action="key.minted", obj=key, after=key_snapshot(key))
    return MintedKey(key=key, secret=secret)


@transaction.atomic
def key_revoke(*, key: VirtualKey, actor=None) -> VirtualKey:
    if key.revoked_at is None:
        before = key_snapshot(key)
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor, org=key.org, action="key.revoked", obj=key, before=before,
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
        actor=actor, org=key.org, action="key.rotated", obj=key,
        after={"grace_seconds": grace},
    )
    return MintedKey(key=key, secret=secret)


def key_update(*, key: VirtualKey, actor=None, **fields) -> VirtualKey:
    before = key_snapshot(key)
    for name, value in fields.items():
        setattr(key, name, value)
    key.full_clean()
    with transaction.atomic():
        key.save()
        audit_record(
            actor=actor, org=key.org, action="key.updated", obj=key, before=before,
            after=key_snapshot(key),
        )
    return key


def key_authenticate(*, secret: str, now: datetime | None = None) -> tuple[VirtualKey | None, str]:
    """Resolve a presented secret. Returns (key, "") or (None, error_code).

    Error codes follow the gateway contract: invalid_api_key, key_expired, key_revoked.
    A wrong secret with a right lookup prefix is rejected by the constant-time digest compare.
    """
    now = now or timezone.now()
    lookup = key_secret_split(secret=secret)
    if lookup is None:
        return None, "invalid_api_key"
    row = (
        KeySecret.objects.select_related("key", "key__team", "key__org")
        .filter(lookup=lookup)
        .first()
    )
    if row is None or not hmac.compare_digest(row.digest, key_secret_digest(secret=secret)):
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
            actor=actor, org=org, action="member.added", obj=membership,
            after={"user": user.username, "role": role, "team": team.slug if team else None},
        )
    return membership


def user_get_or_create(*, email_or_username: str):
    """Users keep Django's username; an e-mail address is a fine one. New users get no usable
    password (they set one through the password-reset flow)."""
    User = get_user_model()
    user = User.objects.filter(username__iexact=email_or_username).first()
    if user is None:
        user = User(username=email_or_username, email=email_or_username if "@" in email_or_username else "")
        user.set_unusable_password()
        user.save()
    return user


ROLE_ORDER = [Role.ADMIN, Role.FINANCE, Role.LEAD, Role.MEMBER]
