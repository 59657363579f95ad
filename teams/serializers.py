"""API shapes of the control plane.

Output serializers render rows (every row carries its ``org`` slug); input serializers validate
a request body and resolve the names in it (org, team and feature slugs, key ids, model names)
through the requesting user's selectors, so a name the user cannot see is "not found" and never a
hint that it exists elsewhere. Writes happen in services, called by the views.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gateway import selectors as catalog_selectors
from gateway.models import MODEL_NAME_RE
from teams import selectors
from teams.models import (
    CACHE_ENTRY_DEFAULT,
    CACHE_ENTRY_MAX,
    CACHE_ENTRY_MIN,
    CACHE_TTL_DEFAULT,
    CACHE_TTL_MAX,
    ORG_ROLES,
    AuditEntry,
    Budget,
    BudgetAction,
    BudgetPeriod,
    BudgetScope,
    CachePolicy,
    CacheScope,
    Feature,
    Membership,
    Organization,
    Role,
    Team,
    VirtualKey,
    validate_timezone,
)
from teams.services import key_fallbacks_clean, key_model_fields_errors

ORG_HELP = "Organisation slug; may be left out by users who belong to exactly one organisation."
# PositiveIntegerField's range on every backend; a larger limit would fail in the database.
LIMIT_MAX = 2_147_483_647
FAIL_OPEN_HELP = (
    "When the shared counters (Redis) are unreachable, let calls through instead of refusing "
    "them. Only block budgets refuse calls; alert and downgrade budgets never do."
)


def _limit_field(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=LIMIT_MAX, required=False, allow_null=True, help_text=help_text
    )


def validate_model_ref(value: str) -> None:
    """A name a client may call: a model, a group, or ``router:<name>`` / ``group:<name>``."""
    if not MODEL_NAME_RE.match(value or ""):
        raise serializers.ValidationError(f"{value!r} is not a valid model name")


# --- input: reference resolution through the selectors ---------------------------------------


class ScopedInputSerializer(serializers.Serializer):
    """Base of every input serializer: resolves references within what the user can read."""

    @property
    def user(self):
        return self.context["request"].user

    def resolve_org(self, slug: str | None) -> Organization:
        orgs = selectors.org_list_for_user(self.user)
        if slug:
            org = orgs.filter(slug=slug).first()
            if org is None:
                raise serializers.ValidationError({"org": f"no organisation {slug!r}"})
            return org
        only = list(orgs[:2])
        if len(only) != 1:
            raise serializers.ValidationError(
                {"org": "required: you belong to several organisations (or none)"}
            )
        return only[0]

    def resolve_team(self, org: Organization, slug: str, field: str = "team") -> Team:
        team = selectors.team_list_for_user(self.user).filter(org=org, slug=slug).first()
        if team is None:
            raise serializers.ValidationError({field: f"no team {slug!r} in {org.slug}"})
        return team

    def resolve_feature(self, team: Team, slug: str, field: str = "feature") -> Feature:
        feature = selectors.feature_list_for_user(self.user).filter(team=team, slug=slug).first()
        if feature is None:
            raise serializers.ValidationError({field: f"no feature {slug!r} in team {team.slug}"})
        return feature

    def resolve_key(self, org: Organization, pk: int, field: str = "key") -> VirtualKey:
        key = selectors.key_list_for_user(self.user).filter(org=org, pk=pk).first()
        if key is None:
            raise serializers.ValidationError({field: f"no key {pk} in {org.slug}"})
        return key

    def resolve_model(self, org: Organization, name: str, field: str = "model"):
        model = catalog_selectors.model_list_for_user(self.user).filter(org=org, name=name).first()
        if model is None:
            raise serializers.ValidationError({field: f"no model {name!r} in {org.slug}"})
        return model


# --- organisations ------------------------------------------------------------------------------


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["slug", "name", "timezone", "currency", "created_at"]
        read_only_fields = fields


class OrganizationUpdateSerializer(ScopedInputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    timezone = serializers.CharField(max_length=64, required=False, validators=[validate_timezone])


# --- teams --------------------------------------------------------------------------------------


class TeamSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Team
        fields = [
            "id",
            "org",
            "slug",
            "name",
            "rpm_limit",
            "tpm_limit",
            "max_parallel",
            "created_at",
        ]
        read_only_fields = fields


class _TeamLimitsSerializer(ScopedInputSerializer):
    """Team-wide rate limits over all of the team's keys (null: no team limit)."""

    rpm_limit = _limit_field("Requests per minute, all of the team's keys together.")
    tpm_limit = _limit_field("Tokens per minute, all of the team's keys together.")
    max_parallel = _limit_field("Calls in flight at once, all of the team's keys together.")


class TeamCreateSerializer(_TeamLimitsSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["org"] = self.resolve_org(attrs.get("org"))
        return attrs


class TeamUpdateSerializer(_TeamLimitsSerializer):
    name = serializers.CharField(max_length=200)


# --- memberships --------------------------------------------------------------------------------


class MembershipSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    user = serializers.CharField(source="user.username", read_only=True)
    # a plain string: a user may have no email address ("")
    email = serializers.CharField(source="user.email", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Membership
        fields = ["id", "org", "user", "email", "role", "team", "created_at"]
        read_only_fields = fields


class _RoleTeamMixin:
    def resolve_role_team(self, org: Organization, role: str, team_slug: str | None) -> Team | None:
        if role in ORG_ROLES:
            if team_slug:
                raise serializers.ValidationError(
                    {"team": "admin and finance are organisation-wide roles"}
                )
            return None
        if not team_slug:
            raise serializers.ValidationError({"team": "lead and member roles need a team"})
        return self.resolve_team(org, team_slug)


class MembershipCreateSerializer(_RoleTeamMixin, ScopedInputSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    user = serializers.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Username or e-mail address; an unknown one becomes a user without a usable "
        "password (they set one through the password-reset flow).",
    )
    role = serializers.ChoiceField(choices=Role.choices)
    team = serializers.SlugField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["org"] = self.resolve_org(attrs.get("org"))
        attrs["team"] = self.resolve_role_team(attrs["org"], attrs["role"], attrs.get("team"))
        return attrs


class MembershipUpdateSerializer(_RoleTeamMixin, ScopedInputSerializer):
    role = serializers.ChoiceField(choices=Role.choices)
    team = serializers.SlugField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current = self.instance
        role = attrs.setdefault("role", current.role)
        if "team" in attrs:
            team_slug = attrs["team"]
        else:
            team_slug = current.team.slug if current.team_id and role not in ORG_ROLES else None
        attrs["team"] = self.resolve_role_team(current.org, role, team_slug)
        return attrs


# --- features -----------------------------------------------------------------------------------


DEFAULT_MODEL_HELP = (
    "Model, group or router:NAME used when a call of this feature names no model (or 'default')."
)


class FeatureSerializer(serializers.ModelSerializer):
    org = serializers.CharField(source="team.org.slug", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Feature
        fields = ["id", "org", "team", "slug", "name", "claimed", "default_model", "created_at"]
        read_only_fields = fields


class FeatureCreateSerializer(ScopedInputSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    team = serializers.SlugField()
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    claimed = serializers.BooleanField(default=True)
    default_model = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text=DEFAULT_MODEL_HELP
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["org"] = self.resolve_org(attrs.get("org"))
        attrs["team"] = self.resolve_team(attrs["org"], attrs["team"])
        return attrs


class FeatureUpdateSerializer(ScopedInputSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    claimed = serializers.BooleanField(required=False)
    default_model = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text=DEFAULT_MODEL_HELP
    )


# --- keys ---------------------------------------------------------------------------------------


class KeySerializer(serializers.ModelSerializer):
    """A virtual key without its secret: the hint shows only the public lookup prefix."""

    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    default_feature = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    hint = serializers.SerializerMethodField()
    active = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = VirtualKey
        fields = [
            "id",
            "org",
            "team",
            "name",
            "hint",
            "active",
            "default_feature",
            "allowed_models",
            "default_model",
            "fallbacks",
            "rpm_limit",
            "tpm_limit",
            "max_parallel",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_hint(self, key: VirtualKey) -> str:
        current = [s for s in key.secrets.all() if s.superseded_at is None]
        if not current:
            return "-"
        return str(max(current, key=lambda s: s.created_at))

    @extend_schema_field(serializers.BooleanField())
    def get_active(self, key: VirtualKey) -> bool:
        return key.is_active()


class KeyWithSecretSerializer(KeySerializer):
    """The mint and rotate responses: the only place a secret is ever returned."""

    secret = serializers.CharField(
        read_only=True, help_text="Shown once: store it now, it cannot be retrieved again."
    )

    class Meta(KeySerializer.Meta):
        fields = [*KeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class _KeyFieldsSerializer(ScopedInputSerializer):
    name = serializers.CharField(max_length=200)
    default_feature = serializers.SlugField(required=False, allow_null=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=128, validators=[validate_model_ref]),
        required=False,
        help_text="Model, group or router names this key may call; empty means all.",
    )
    default_model = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        validators=[validate_model_ref],
        help_text=DEFAULT_MODEL_HELP,
    )
    fallbacks = serializers.ListField(
        child=serializers.CharField(max_length=128, validators=[validate_model_ref]),
        required=False,
        help_text="Chat models tried in order when everything the requested name resolves to "
        "has failed (after the group's own fallbacks).",
    )
    rpm_limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    tpm_limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_parallel = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_expires_at(self, value: datetime | None) -> datetime | None:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value

    def validate_allowed_models(self, value: list[str]) -> list[str]:
        return sorted(set(value))

    def _clean_models(self, attrs: dict[str, Any], org) -> None:
        """The names must be the org's (the service checks again; here they become field
        errors)."""
        errors = key_model_fields_errors(org=org, fields=attrs)
        if errors:
            raise serializers.ValidationError({f: [m] for f, m in errors.items()})

    def _clean_fallbacks(self, attrs: dict[str, Any], org) -> None:
        if "fallbacks" in attrs:
            try:
                attrs["fallbacks"] = key_fallbacks_clean(org=org, names=attrs["fallbacks"])
            except ValueError as exc:
                raise serializers.ValidationError({"fallbacks": [str(exc)]}) from exc

    def _resolve_feature(self, attrs: dict[str, Any], team: Team) -> None:
        if attrs.get("default_feature"):
            attrs["default_feature"] = self.resolve_feature(
                team, attrs["default_feature"], field="default_feature"
            )


class KeyCreateSerializer(_KeyFieldsSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    team = serializers.SlugField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["org"] = self.resolve_org(attrs.get("org"))
        attrs["team"] = self.resolve_team(attrs["org"], attrs["team"])
        self._resolve_feature(attrs, attrs["team"])
        self._clean_models(attrs, attrs["org"])
        self._clean_fallbacks(attrs, attrs["org"])
        return attrs


class KeyUpdateSerializer(_KeyFieldsSerializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        self._resolve_feature(attrs, self.instance.team)
        self._clean_models(attrs, self.instance.org)
        self._clean_fallbacks(attrs, self.instance.org)
        return attrs


class KeyRotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        max_value=30 * 86400,
        required=False,
        help_text="How long the previous secret keeps working (default from settings).",
    )


# --- budgets ------------------------------------------------------------------------------------


class BudgetSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    feature = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    downgrade_to = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    alert_thresholds = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    recipients = serializers.ListField(child=serializers.EmailField(), read_only=True)

    class Meta:
        model = Budget
        fields = [
            "id",
            "org",
            "scope",
            "team",
            "feature",
            "key",
            "period",
            "limit_usd",
            "action",
            "downgrade_to",
            "fail_open",
            "alert_thresholds",
            "recipients",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class _BudgetFieldsSerializer(ScopedInputSerializer):
    period = serializers.ChoiceField(choices=BudgetPeriod.choices)
    limit_usd = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=Decimal("0"), help_text="USD, a decimal string."
    )
    action = serializers.ChoiceField(choices=BudgetAction.choices, default=BudgetAction.BLOCK)
    downgrade_to = serializers.CharField(
        max_length=128, required=False, allow_null=True, help_text="Model name, for downgrade."
    )
    fail_open = serializers.BooleanField(default=False, help_text=FAIL_OPEN_HELP)
    alert_thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000), required=False
    )
    recipients = serializers.ListField(child=serializers.EmailField(), required=False)

    def _resolve_downgrade(self, attrs: dict[str, Any], org: Organization) -> None:
        if attrs.get("downgrade_to"):
            attrs["downgrade_to"] = self.resolve_model(
                org, attrs["downgrade_to"], field="downgrade_to"
            )


class BudgetCreateSerializer(_BudgetFieldsSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    scope = serializers.ChoiceField(choices=BudgetScope.choices)
    team = serializers.SlugField(required=False, allow_null=True)
    feature = serializers.SlugField(required=False, allow_null=True)
    key = serializers.IntegerField(required=False, allow_null=True, help_text="Key id.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        org = attrs["org"] = self.resolve_org(attrs.get("org"))
        if attrs.get("team"):
            attrs["team"] = self.resolve_team(org, attrs["team"])
        if attrs.get("feature"):
            if not attrs.get("team"):
                raise serializers.ValidationError({"team": "needed to find the feature"})
            attrs["feature"] = self.resolve_feature(attrs["team"], attrs["feature"])
        if attrs.get("key") is not None:
            attrs["key"] = self.resolve_key(org, attrs["key"])
        self._resolve_downgrade(attrs, org)
        return attrs


class BudgetUpdateSerializer(_BudgetFieldsSerializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        self._resolve_downgrade(attrs, self.instance.org)
        return attrs


# --- response cache policies ---------------------------------------------------------------


# A scope field as a pattern, not an enum: drf-spectacular names enums by field name, and
# budgets already have a "scope" enum of other choices (the collision is a schema warning).
_CACHE_SCOPES = "|".join(CacheScope.values)


@extend_schema_field(
    {"type": "string", "pattern": f"^({_CACHE_SCOPES})$", "description": "; ".join(
        f"`{value}`: {label}" for value, label in CacheScope.choices
    )}
)  # fmt: skip
class CacheScopeField(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        super().__init__(choices=CacheScope.choices, **kwargs)


class CachePolicySerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    scope = CacheScopeField(read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    feature = serializers.SerializerMethodField()
    feature_team = serializers.SerializerMethodField()

    class Meta:
        model = CachePolicy
        fields = [
            "id",
            "org",
            "scope",
            "team",
            "feature",
            "feature_team",
            "key",
            "model_name",
            "enabled",
            "ttl_seconds",
            "max_entry_bytes",
            "tools",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_feature(self, policy: CachePolicy) -> str | None:
        return policy.feature.slug if policy.feature_id else None

    def get_feature_team(self, policy: CachePolicy) -> str | None:
        return policy.feature.team.slug if policy.feature_id else None


class _CachePolicyFieldsSerializer(ScopedInputSerializer):
    enabled = serializers.BooleanField(default=True)
    ttl_seconds = serializers.IntegerField(
        min_value=1, max_value=CACHE_TTL_MAX, default=CACHE_TTL_DEFAULT
    )
    max_entry_bytes = serializers.IntegerField(
        min_value=CACHE_ENTRY_MIN,
        max_value=CACHE_ENTRY_MAX,
        default=CACHE_ENTRY_DEFAULT,
        help_text="Answers larger than this are not stored.",
    )
    tools = serializers.BooleanField(
        default=False, help_text="Also cache requests that offer tools."
    )


class CachePolicyCreateSerializer(_CachePolicyFieldsSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    scope = CacheScopeField()
    team = serializers.SlugField(
        required=False, allow_null=True, help_text="Team slug (team scope; finds the feature)."
    )
    feature = serializers.SlugField(required=False, allow_null=True)
    key = serializers.IntegerField(required=False, allow_null=True, help_text="Key id.")
    model_name = serializers.CharField(
        max_length=200, required=False, allow_blank=True, validators=[validate_model_ref]
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        org = attrs["org"] = self.resolve_org(attrs.get("org"))
        team = attrs["team"] = self.resolve_team(org, attrs["team"]) if attrs.get("team") else None
        if attrs.get("feature"):
            if team is None:
                raise serializers.ValidationError({"team": "needed to find the feature"})
            attrs["feature"] = self.resolve_feature(team, attrs["feature"])
            attrs["team"] = None  # a feature policy names its feature (which has the team)
        if attrs.get("key") is not None:
            attrs["key"] = self.resolve_key(org, attrs["key"])
        return attrs


class CachePolicyUpdateSerializer(_CachePolicyFieldsSerializer):
    enabled = serializers.BooleanField(required=False)
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=CACHE_TTL_MAX, required=False)
    max_entry_bytes = serializers.IntegerField(
        min_value=CACHE_ENTRY_MIN, max_value=CACHE_ENTRY_MAX, required=False
    )
    tools = serializers.BooleanField(required=False)


# --- audit --------------------------------------------------------------------------------------


class AuditEntrySerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "org",
            "actor",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "before",
            "after",
            "created_at",
        ]
        read_only_fields = fields
