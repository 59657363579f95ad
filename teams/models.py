"""Control-plane models: organisations, teams, members, features, virtual keys, budgets, cache
policies, audit."""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone as dj_tz


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown timezone {value!r}") from exc


class Organization(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    currency = models.CharField(max_length=3, default="USD", editable=False)
    created_at = models.DateTimeField(default=dj_tz.now, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Team(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    rpm_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests/minute, all keys."
    )
    tpm_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens/minute, all keys."
    )
    max_parallel = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=dj_tz.now, editable=False)

    class Meta:
        ordering = ["org__slug", "slug"]
        constraints = [models.UniqueConstraint(fields=["org", "slug"], name="team_slug_per_org")]

    def __str__(self) -> str:
        return f"{self.org.slug}/{self.slug}"


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    FINANCE = "finance", "Finance"
    LEAD = "lead", "Team lead"
    MEMBER = "member", "Member"


ORG_ROLES = (Role.ADMIN, Role.FINANCE)
TEAM_ROLES = (Role.LEAD, Role.MEMBER)


class Membership(models.Model):
    """A user's role in an organisation (admin, finance) or in one of its teams (lead, member)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=dj_tz.now, editable=False)

    class Meta:
        ordering = ["org__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "org", "team"], name="membership_unique_per_team"
            ),
            models.UniqueConstraint(
                fields=["user", "org"],
                condition=models.Q(team__isnull=True),
                name="membership_unique_org_role",
            ),
        ]

    def __str__(self) -> str:
        where = self.team.slug if self.team_id else "*"
        return f"{self.user} {self.role} @ {self.org.slug}/{where}"

    def clean(self) -> None:
        if self.role in ORG_ROLES and self.team_id:
            raise ValidationError({"team": "admin and finance are organisation-wide roles"})
        if self.role in TEAM_ROLES and not self.team_id:
            raise ValidationError({"team": "lead and member roles need a team"})
        if self.team_id and self.team.org_id != self.org_id:
            raise ValidationError({"team": "team belongs to another organisation"})


class Feature(models.Model):
    """A product feature within a team; spend is attributed to it.

    Features named by traffic (an unknown ``X-FinOps-Feature``) are created unclaimed so no call
    is ever dropped; a lead claims (or renames) them later in the admin.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="features")
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=200, blank=True)
    claimed = models.BooleanField(default=True)
    default_model = models.CharField(
        max_length=200,
        blank=True,
        help_text="Model, group or router:NAME for calls of this feature that name no model "
        "(or the model 'default').",
    )
    created_by_key = models.ForeignKey(
        "VirtualKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=dj_tz.now, editable=False)

    class Meta:
        ordering = ["team__slug", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["team", "slug"], name="feature_slug_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.team}/{self.slug}"

    @property
    def org_id(self) -> int:
        return self.team.org_id


KEY_PREFIX = "sk-fo-"


class VirtualKey(models.Model):
    """A key a service uses against the gateway. The secret lives only in ``KeySecret`` hashes."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="keys")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=200)
    default_feature = models.ForeignKey(
        Feature, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    allowed_models = models.JSONField(default=list, blank=True, help_text="Empty means all.")
    default_model = models.CharField(
        max_length=200,
        blank=True,
        help_text="Model, group or router:NAME for calls that name no model (or 'default') and "
        "whose feature has no default model.",
    )
    fallbacks = models.JSONField(
        default=list,
        blank=True,
        help_text="Models tried, in order, after everything the requested name resolves to failed.",
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_parallel = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=dj_tz.now, editable=False)

    class Meta:
        ordering = ["org__slug", "team__slug", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_hint})"

    @property
    def display_hint(self) -> str:
        current = self.current_secret()
        return f"{KEY_PREFIX}{current.lookup}…" if current else "-"

    def current_secret(self) -> KeySecret | None:
        return self.secrets.filter(superseded_at__isnull=True).order_by("-created_at").first()

    def is_active(self, now=None) -> bool:
        now = now or dj_tz.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class KeySecret(models.Model):
    """One secret of a key: a lookup prefix and an HMAC-SHA256 of the whole secret.

    Rotation adds a new secret and gives the previous one ``valid_until`` = now + grace, so both
    work until then. The database never holds the secret itself.
    """

    key = models.ForeignKey(VirtualKey, on_delete=models.CASCADE, related_name="secrets")
    lookup = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=dj_tz.now, editable=False)
    superseded_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{KEY_PREFIX}{self.lookup}…"


class BudgetScope(models.TextChoices):
    ORG = "org", "Organisation"
    TEAM = "team", "Team"
    FEATURE = "feature", "Feature"
    KEY = "key", "Key"


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week (ISO)"
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"


class BudgetAction(models.TextChoices):
    BLOCK = "block", "Block"
    ALERT = "alert", "Alert only"
    DOWNGRADE = "downgrade", "Downgrade"


def default_thresholds() -> list[int]:
    return [50, 80, 100]


class Budget(models.Model):
    """A spend limit on one scope for one calendar period in the organisation's timezone."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="budgets")
    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets"
    )
    feature = models.ForeignKey(
        Feature, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets"
    )
    key = models.ForeignKey(
        VirtualKey, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets"
    )
    period = models.CharField(max_length=16, choices=BudgetPeriod.choices)
    limit_usd = models.DecimalField(
        max_digits=18, decimal_places=6, validators=[MinValueValidator(Decimal("0"))]
    )
    action = models.CharField(
        max_length=16, choices=BudgetAction.choices, default=BudgetAction.BLOCK
    )
    downgrade_to = models.ForeignKey(
        "gateway.LLMModel", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    fail_open = models.BooleanField(
        default=False,
        help_text="When the shared counters (Redis) are unreachable, let calls through instead of "
        "refusing them. Only block budgets refuse calls; alert and downgrade budgets never do.",
    )
    alert_thresholds = models.JSONField(default=default_thresholds, blank=True)
    recipients = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=dj_tz.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["org__slug", "scope", "period"]

    def __str__(self) -> str:
        return f"{self.scope_label} {self.period} {self.limit_usd} USD ({self.action})"

    @property
    def scope_label(self) -> str:
        if self.scope == BudgetScope.KEY and self.key_id:
            return f"key {self.key.name}"
        if self.scope == BudgetScope.FEATURE and self.feature_id:
            return f"feature {self.feature}"
        if self.scope == BudgetScope.TEAM and self.team_id:
            return f"team {self.team}"
        return f"org {self.org.slug}"

    def clean(self) -> None:
        """Who owns what first (the other rules read the owners), then the scope's fields, the
        downgrade target, the thresholds and one budget per scope and period."""
        self._team_fill()
        owners = self._owner_errors()
        if owners:
            raise ValidationError(owners)
        errors = self._scope_errors()
        if self.action == BudgetAction.DOWNGRADE and not self.downgrade_to_id:
            errors["downgrade_to"] = "required when the action is downgrade"
        if self.action != BudgetAction.DOWNGRADE and self.downgrade_to_id:
            errors["downgrade_to"] = "only used when the action is downgrade"
        if self.downgrade_to_id and self.downgrade_to.org_id != self.org_id:
            errors["downgrade_to"] = "model belongs to another organisation"
        thresholds = self.alert_thresholds or []
        if not isinstance(thresholds, list) or not all(
            isinstance(t, int) and 0 < t <= 1000 for t in thresholds
        ):
            errors["alert_thresholds"] = "a list of whole percentages between 1 and 1000"
        duplicate = Budget.objects.filter(
            org_id=self.org_id,
            scope=self.scope,
            team_id=self.team_id,
            feature_id=self.feature_id,
            key_id=self.key_id,
            period=self.period,
        ).exclude(pk=self.pk)
        if self.org_id and duplicate.exists():
            errors["period"] = f"this {self.scope} already has a {self.period} budget"
        if errors:
            raise ValidationError(errors)

    def _team_fill(self) -> None:
        """Feature and key budgets also carry their team, so a team's readers find them."""
        if self.team_id is None and self.feature_id is not None:
            self.team = self.feature.team
        elif self.team_id is None and self.key_id is not None:
            self.team = self.key.team

    def _owner_errors(self) -> dict[str, str]:
        """The team, feature and key are the budget's organisation's, and the feature and key
        its team's."""
        owners = {
            "team": self.team.org_id if self.team_id else None,
            "feature": self.feature.team.org_id if self.feature_id else None,
            "key": self.key.org_id if self.key_id else None,
        }
        errors = {
            name: "belongs to another organisation"
            for name, owner in owners.items()
            if self.org_id and owner is not None and owner != self.org_id
        }
        if not errors and (
            (self.feature_id and self.feature.team_id != self.team_id)
            or (self.key_id and self.key.team_id != self.team_id)
        ):
            errors["team"] = "does not own this feature or key"
        return errors

    def _scope_errors(self) -> dict[str, str]:
        """A scope's own field is required; a team may also be set on feature and key budgets."""
        errors: dict[str, str] = {}
        if self.scope not in BudgetScope.values:
            return errors  # an unknown scope is the field's own error (clean_fields)
        need = {
            BudgetScope.ORG: (),
            BudgetScope.TEAM: ("team",),
            BudgetScope.FEATURE: ("feature",),
            BudgetScope.KEY: ("key",),
        }[BudgetScope(self.scope)]
        for field in ("team", "feature", "key"):
            present = getattr(self, f"{field}_id") is not None
            if field in need and not present:
                errors[field] = f"required for a {self.scope} budget"
            if field not in need and present and not (field == "team" and self.scope != "org"):
                errors[field] = f"not allowed on a {self.scope} budget"
        return errors


class CacheScope(models.TextChoices):
    ORG = "org", "Organisation"
    TEAM = "team", "Team"
    FEATURE = "feature", "Feature"
    KEY = "key", "Key"
    MODEL = "model", "Model"


CACHE_TTL_DEFAULT = 3600  # seconds
CACHE_TTL_MAX = 30 * 86400
CACHE_ENTRY_DEFAULT = 1024 * 1024  # bytes of one stored answer
CACHE_ENTRY_MIN = 1024
CACHE_ENTRY_MAX = 16 * 1024 * 1024


class CachePolicy(models.Model):
    """The exact response cache, opted into for one scope: the organisation, a team, a feature,
    a key, or a model name (as clients call it: a model, group or router). The gateway applies
    the most specific policy of a call (key, feature, team, model, org) and only that one, so an
    ``enabled: false`` policy turns the cache off for its scope under a broader one."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="cache_policies")
    scope = models.CharField(max_length=16, choices=CacheScope.choices)
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="cache_policies"
    )
    feature = models.ForeignKey(
        Feature, on_delete=models.CASCADE, null=True, blank=True, related_name="cache_policies"
    )
    key = models.ForeignKey(
        VirtualKey, on_delete=models.CASCADE, null=True, blank=True, related_name="cache_policies"
    )
    # a name, not a foreign key: the gateway's catalog is not the control plane's to point at
    model_name = models.CharField(
        max_length=200, blank=True, help_text="Model, group or router name (model scope)."
    )
    enabled = models.BooleanField(default=True)
    ttl_seconds = models.PositiveIntegerField(
        default=CACHE_TTL_DEFAULT,
        validators=[MinValueValidator(1), MaxValueValidator(CACHE_TTL_MAX)],
        help_text="How long a stored answer is served.",
    )
    max_entry_bytes = models.PositiveIntegerField(
        default=CACHE_ENTRY_DEFAULT,
        validators=[MinValueValidator(CACHE_ENTRY_MIN), MaxValueValidator(CACHE_ENTRY_MAX)],
        help_text="Answers larger than this are not stored.",
    )
    tools = models.BooleanField(
        default=False, help_text="Also cache requests that offer tools (off: never cached)."
    )
    created_at = models.DateTimeField(default=dj_tz.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["org__slug", "scope", "id"]
        verbose_name_plural = "cache policies"
        constraints = [
            models.UniqueConstraint(
                fields=["org"], condition=models.Q(scope="org"), name="cache_policy_org"
            ),
            models.UniqueConstraint(
                fields=["team"], condition=models.Q(scope="team"), name="cache_policy_team"
            ),
            models.UniqueConstraint(
                fields=["feature"], condition=models.Q(scope="feature"), name="cache_policy_feature"
            ),
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(scope="key"), name="cache_policy_key"
            ),
            models.UniqueConstraint(
                fields=["org", "model_name"],
                condition=models.Q(scope="model"),
                name="cache_policy_model",
            ),
        ]

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"cache {self.scope_label} ({state}, {self.ttl_seconds} s)"

    @property
    def scope_label(self) -> str:
        if self.scope == CacheScope.KEY and self.key_id:
            return f"key {self.key.name}"
        if self.scope == CacheScope.FEATURE and self.feature_id:
            return f"feature {self.feature}"
        if self.scope == CacheScope.TEAM and self.team_id:
            return f"team {self.team}"
        if self.scope == CacheScope.MODEL:
            return f"model {self.model_name}"
        return f"org {self.org.slug}"

    def clean(self) -> None:
        """The scope's own target and nothing else, owned by the policy's organisation, and one
        policy per target."""
        if self.scope not in CacheScope.values:
            return  # the field's own error (clean_fields)
        need = {
            CacheScope.ORG: "",
            CacheScope.TEAM: "team",
            CacheScope.FEATURE: "feature",
            CacheScope.KEY: "key",
            CacheScope.MODEL: "model_name",
        }[CacheScope(self.scope)]
        errors: dict[str, str] = {}
        for name in ("team", "feature", "key", "model_name"):
            present = bool(getattr(self, name if name == "model_name" else f"{name}_id"))
            if name == need and not present:
                errors[name] = f"required for a {self.scope} policy"
            elif name != need and present:
                errors[name] = f"not allowed on a {self.scope} policy"
        owner = None
        if self.team_id and "team" not in errors:
            owner = self.team.org_id
        elif self.feature_id and "feature" not in errors:
            owner = self.feature.team.org_id
        elif self.key_id and "key" not in errors:
            owner = self.key.org_id
        if self.org_id and owner is not None and owner != self.org_id:
            errors[need] = "belongs to another organisation"
        if not errors and self.org_id:
            same = CachePolicy.objects.filter(
                org_id=self.org_id,
                scope=self.scope,
                team_id=self.team_id,
                feature_id=self.feature_id,
                key_id=self.key_id,
                model_name=self.model_name,
            ).exclude(pk=self.pk)
            if same.exists():
                errors[need or "scope"] = f"this {self.scope} already has a cache policy"
        if errors:
            raise ValidationError(errors)


class AuditEntry(models.Model):
    """Who changed what in the control plane, with before/after (never a secret)."""

    org = models.ForeignKey(
        Organization, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=dj_tz.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_repr}"
        )
