"""Control-plane writes: keys, members, organisations, teams, features, budgets. Views, admin, API
and commands call these.

Each write validates the model (``full_clean``: ``Budget.clean`` owns the budget's ownership
rules) and records one audit entry, through ``teams.audit`` (``audited_save``,
``audited_delete``); ``audit_record`` is re-exported here for callers that record their own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from teams.audit import audit_record, audited_delete, audited_save, changes_apply
from teams.models import (
    KEY_PREFIX,
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
    allowed_models = key_model_names_clean(org=team.org, names=allowed_models or [])
    if default_model:
        key_model_names_clean(org=team.org, names=[default_model])
    key = VirtualKey.objects.create(
        org=team.org,
        team=team,
        name=name,
        default_feature=default_feature,
        allowed_models=allowed_models,
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


def key_model_names_clean(*, org: Organization, names: list[str]) -> list[str]:
    """Names a key may call or default to: its org's models, groups and routers (a router as
    ``router:NAME`` or bare), sorted and distinct. Raises ``ValueError`` naming the unknown ones
    (another org's model is unknown here: a key cannot reach it)."""
    from gateway.models import LLMModel, ModelGroup, Router

    known = set(LLMModel.objects.filter(org=org).values_list("name", flat=True))
    known |= set(ModelGroup.objects.filter(org=org).values_list("name", flat=True))
    routers = set(Router.objects.filter(org=org).values_list("name", flat=True))
    known |= routers | {f"router:{r}" for r in routers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown model(s) in organisation {org.slug}: {', '.join(unknown)}")
    return sorted(set(names))


def key_model_fields_errors(*, org: Organization, fields: dict) -> dict[str, str]:
    """``key_model_names_clean`` for the ``allowed_models`` (a list) and ``default_model`` (one
    name) among ``fields``, as field errors for a form or a serializer."""
    errors = {}
    for field in ("allowed_models", "default_model"):
        value = fields.get(field)
        if value:
            try:
                key_model_names_clean(org=org, names=value if isinstance(value, list) else [value])
            except ValueError as exc:
                errors[field] = str(exc)
    return errors


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
    if "allowed_models" in fields:
        fields["allowed_models"] = key_model_names_clean(
            org=key.org, names=fields["allowed_models"] or []
        )
    if fields.get("default_model"):
        key_model_names_clean(org=key.org, names=[fields["default_model"]])
    for name, value in fields.items():
        setattr(key, name, value)
    return audited_save(
        key, actor=actor, org=key.org, action="key.updated", snapshot=key_snapshot, before=before
    )


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
    return audited_save(
        membership, actor=actor, org=org, action="member.added", snapshot=membership_snapshot
    )


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


def org_snapshot(org: Organization) -> dict:
    return {"slug": org.slug, "name": org.name, "timezone": org.timezone}


def org_update(*, org: Organization, actor, **changes) -> Organization:
    before = org_snapshot(org)
    changes_apply(org, changes, editable=ORG_EDITABLE)
    return audited_save(
        org, actor=actor, org=org, action="org.updated", snapshot=org_snapshot, before=before
    )


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
    return audited_save(team, actor=actor, org=org, action="team.created", snapshot=team_snapshot)


def team_update(*, team: Team, actor, **changes) -> Team:
    before = team_snapshot(team)
    changes_apply(team, changes, editable=TEAM_EDITABLE)
    return audited_save(
        team,
        actor=actor,
        org=team.org,
        action="team.updated",
        snapshot=team_snapshot,
        before=before,
    )


def team_delete(*, team: Team, actor) -> None:
    """Delete a team with its features, keys and budgets. Refused while it has usable keys, so
    that no running service loses its key by accident (revoke them first)."""
    if team.keys.filter(revoked_at__isnull=True).exists():
        raise ValidationError("revoke the team's keys before deleting it")
    audited_delete(team, actor=actor, org=team.org, action="team.deleted", snapshot=team_snapshot)


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
    return audited_save(
        membership,
        actor=actor,
        org=membership.org,
        action="member.updated",
        snapshot=membership_snapshot,
        before=before,
    )


def membership_remove(*, membership: Membership, actor) -> None:
    if _last_admin(membership):
        raise ValidationError("an organisation keeps at least one admin")
    audited_delete(
        membership,
        actor=actor,
        org=membership.org,
        action="member.removed",
        snapshot=membership_snapshot,
    )


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
    return audited_save(
        feature, actor=actor, org=team.org, action="feature.created", snapshot=feature_snapshot
    )


def feature_update(*, feature: Feature, actor, **changes) -> Feature:
    """Rename or claim a feature; its slug stays, because the ledger attributes spend by it."""
    before = feature_snapshot(feature)
    changes_apply(feature, changes, editable=FEATURE_EDITABLE)
    return audited_save(
        feature,
        actor=actor,
        org=feature.team.org,
        action="feature.updated",
        snapshot=feature_snapshot,
        before=before,
    )


def feature_delete(*, feature: Feature, actor) -> None:
    audited_delete(
        feature,
        actor=actor,
        org=feature.team.org,
        action="feature.deleted",
        snapshot=feature_snapshot,
    )


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
    """Create a budget. Feature and key budgets also carry their team (``Budget.clean`` fills it
    in), so a team's readers find them; ``Budget.clean`` also checks who owns what."""
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
    return audited_save(
        budget, actor=actor, org=org, action="budget.created", snapshot=budget_snapshot
    )


def budget_update(*, budget: Budget, actor, **changes) -> Budget:
    before = budget_snapshot(budget)
    changes_apply(budget, changes, editable=BUDGET_EDITABLE)
    if budget.action != BudgetAction.DOWNGRADE and "downgrade_to" not in changes:
        budget.downgrade_to = None  # switching away from downgrade drops its target
    return audited_save(
        budget,
        actor=actor,
        org=budget.org,
        action="budget.updated",
        snapshot=budget_snapshot,
        before=before,
        skip_unchanged=True,
    )


def budget_delete(*, budget: Budget, actor) -> None:
    audited_delete(
        budget, actor=actor, org=budget.org, action="budget.deleted", snapshot=budget_snapshot
    )


def membership_invite(
    *, actor, org: Organization, username: str, role: str, team: Team | None = None
) -> Membership:
    """Add a person by username or e-mail address, creating the user (without a usable
    password) when new; nothing is created if the membership itself is invalid."""
    with transaction.atomic():
        user = user_get_or_create(email_or_username=username)
        return membership_add(actor=actor, org=org, user=user, role=role, team=team)
