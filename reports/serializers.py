"""API shapes of reporting: the spend query and its rows, the savings statement, and alerts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reports.models import BudgetAlert
from reports.selectors import DIMENSIONS, SAVINGS_DIMENSIONS, SavingsQuery, SpendQuery

MAX_DAYS = 400
MAX_HOUR_DAYS = 93


@extend_schema_field(OpenApiTypes.STR)
class MoneyField(serializers.Field):
    """USD as a fixed-point string at full precision (never an exponent, never a float)."""

    def to_representation(self, value) -> str | None:
        return None if value is None else format(Decimal(value), "f")


def comma_choices(value: str, allowed, *, what: str = "dimension") -> tuple[str, ...]:
    """A comma-separated ``group_by`` as a tuple of names from ``allowed``, each once, in the
    order given (case and blanks ignored); a DRF error naming the first unknown one."""
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in allowed:
            raise serializers.ValidationError(
                f"unknown {what} {name!r}; choose from {', '.join(allowed)}"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


class SpendQuerySerializer(serializers.Serializer):
    group_by = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Comma-separated: " + ", ".join(DIMENSIONS) + ". Rows always carry `org`.",
    )
    start = serializers.DateField(
        required=False, help_text="First local day, inclusive (default: 1st of this month)."
    )
    end = serializers.DateField(
        required=False, help_text="Last local day, inclusive (default: today)."
    )
    include_evaluation = serializers.BooleanField(
        required=False, default=False, help_text="Add evaluation (shadow) spend to `cost`."
    )
    org = serializers.SlugField(required=False, help_text="Only this organisation.")
    team = serializers.SlugField(required=False, help_text="Only this team (slug).")

    def validate_group_by(self, value: str) -> tuple[str, ...]:
        return comma_choices(value, DIMENSIONS)

    def validate(self, attrs: dict) -> dict:
        today = timezone.now().date()
        end = attrs.get("end") or today
        start = attrs.get("start") or end.replace(day=1)
        if start > end:
            raise serializers.ValidationError({"start": "must not be after end"})
        limit = MAX_HOUR_DAYS if "hour" in attrs["group_by"] else MAX_DAYS
        if end - start >= timedelta(days=limit):
            raise serializers.ValidationError(
                {"end": f"at most {limit} days per query with this grouping"}
            )
        attrs["start"], attrs["end"] = start, end
        return attrs

    def query(self) -> SpendQuery:
        data = self.validated_data
        return SpendQuery(
            group_by=data["group_by"],
            start=data["start"],
            end=data["end"],
            include_evaluation=data["include_evaluation"],
            org=data.get("org"),
            team=data.get("team"),
        )


class SpendRowSerializer(serializers.Serializer):
    """One row: the grouped dimensions (only those asked for, plus `org`), then the measures."""

    org = serializers.CharField()
    team = serializers.CharField(required=False, allow_null=True)
    feature = serializers.CharField(required=False, allow_null=True)
    endpoint = serializers.CharField(required=False, allow_null=True)
    key = serializers.CharField(required=False, allow_null=True)
    key_id = serializers.IntegerField(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_null=True)
    model = serializers.CharField(required=False, allow_null=True)
    provider = serializers.CharField(required=False, allow_null=True)
    day = serializers.DateField(required=False)
    hour = serializers.DateTimeField(required=False)
    requests = serializers.IntegerField()
    attempts = serializers.IntegerField()
    successes = serializers.IntegerField()
    failures = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    cost = serializers.CharField(help_text="USD, fixed-point, 12 decimal places.")
    input_cost = serializers.CharField()
    cached_input_cost = serializers.CharField()
    cache_write_cost = serializers.CharField()
    output_cost = serializers.CharField()
    failed_cost = serializers.CharField()
    evaluation_cost = serializers.CharField()
    evaluation_requests = serializers.IntegerField()
    latency_ms_avg = serializers.FloatField(allow_null=True)
    latency_ms_p50 = serializers.FloatField(allow_null=True)
    latency_ms_p95 = serializers.FloatField(allow_null=True)


class SpendResponseSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    group_by = serializers.ListField(child=serializers.CharField())
    include_evaluation = serializers.BooleanField()
    rows = SpendRowSerializer(many=True)


# --- savings -------------------------------------------------------------------------------------

LEVER_HELP = "router, cache, batch, downgrade, fallback; null: the spend no lever touched."


class SavingsQuerySerializer(serializers.Serializer):
    group_by = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Comma-separated: "
        + ", ".join(SAVINGS_DIMENSIONS)
        + ". Rows always carry `org` and are always split by `lever`.",
    )
    start = serializers.DateField(
        required=False, help_text="First local day, inclusive (default: 1st of this month)."
    )
    end = serializers.DateField(
        required=False, help_text="Last local day, inclusive (default: today)."
    )
    org = serializers.SlugField(required=False, help_text="Only this organisation.")
    team = serializers.SlugField(required=False, help_text="Only this team (slug).")

    def validate_group_by(self, value: str) -> tuple[str, ...]:
        return comma_choices(value, SAVINGS_DIMENSIONS)

    def validate(self, attrs: dict) -> dict:
        today = timezone.now().date()
        end = attrs.get("end") or today
        start = attrs.get("start") or end.replace(day=1)
        if start > end:
            raise serializers.ValidationError({"start": "must not be after end"})
        if end - start >= timedelta(days=MAX_DAYS):
            raise serializers.ValidationError({"end": f"at most {MAX_DAYS} days per query"})
        attrs["start"], attrs["end"] = start, end
        return attrs

    def query(self) -> SavingsQuery:
        data = self.validated_data
        return SavingsQuery(
            group_by=data["group_by"],
            start=data["start"],
            end=data["end"],
            org=data.get("org"),
            team=data.get("team"),
        )


class SavingsRowSerializer(serializers.Serializer):
    """One group and one lever: the grouped dimensions (only those asked for, plus `org`), the
    lever, what it saved and the spend of the calls it served."""

    org = serializers.CharField()
    team = serializers.CharField(required=False, allow_null=True)
    feature = serializers.CharField(required=False, allow_null=True)
    model = serializers.CharField(required=False, allow_null=True)
    day = serializers.DateField(required=False)
    lever = serializers.CharField(allow_null=True, help_text=LEVER_HELP)
    saved_usd = serializers.CharField(
        help_text="USD, fixed-point, 12 decimal places: the ledger's `saved_usd` (negative when "
        "the lever cost more)."
    )
    cost_usd = serializers.CharField(
        help_text="USD, fixed-point: production spend of these calls (after the lever)."
    )


class SavingsLeverSerializer(serializers.Serializer):
    lever = serializers.CharField(help_text=LEVER_HELP)
    method = serializers.CharField(help_text="How the saving is computed, in one sentence.")
    saved_usd = serializers.CharField()
    cost_usd = serializers.CharField()


class SavingsTotalsSerializer(serializers.Serializer):
    cost_usd = serializers.CharField(help_text="Production spend.")
    saved_usd = serializers.CharField(help_text="Saved by every lever.")
    without_levers_usd = serializers.CharField(help_text="`cost_usd` + `saved_usd`.")
    saved_percent = serializers.CharField(
        allow_null=True, help_text="`saved_usd` of `without_levers_usd`, in percent."
    )
    levers = SavingsLeverSerializer(many=True)
    shadow_cost_usd = serializers.CharField(help_text="Shadow traffic (evaluation spend).")
    judge_cost_usd = serializers.CharField(help_text="Judge calls (evaluation spend).")
    lever_cost_usd = serializers.CharField(help_text="What the levers cost: shadow + judge.")
    net_saved_usd = serializers.CharField(help_text="`saved_usd` - `lever_cost_usd`.")


class SavingsResponseSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    group_by = serializers.ListField(child=serializers.CharField())
    rows = SavingsRowSerializer(many=True)
    totals = SavingsTotalsSerializer()


class BudgetAlertSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    spent_usd = MoneyField(read_only=True)
    limit_usd = MoneyField(read_only=True)
    forecast_usd = MoneyField(read_only=True)
    baseline_usd = MoneyField(read_only=True)
    percent = serializers.DecimalField(
        max_digits=12, decimal_places=2, read_only=True, coerce_to_string=True
    )
    contributors = serializers.JSONField(read_only=True)
    details = serializers.JSONField(read_only=True)
    recipients = serializers.ListField(child=serializers.CharField(), read_only=True)
    # plain strings: an enum named "kind" would collide with the providers' in the schema
    kind = serializers.CharField(
        read_only=True, help_text="threshold, forecast, anomaly, chargeback"
    )
    status = serializers.CharField(read_only=True, help_text="pending, sent, superseded, failed")

    class Meta:
        model = BudgetAlert
        fields = [
            "id",
            "org",
            "kind",
            "budget",
            "team",
            "feature",
            "scope_label",
            "window_start",
            "window_end",
            "threshold",
            "spent_usd",
            "limit_usd",
            "percent",
            "forecast_usd",
            "exhausts_on",
            "baseline_usd",
            "contributors",
            "details",
            "subject",
            "recipients",
            "status",
            "created_at",
            "sent_at",
            "attempts",
            "webhook_status",
            "webhook_sent_at",
        ]
        read_only_fields = fields


# --- FOCUS export --------------------------------------------------------------------------------

MAX_FOCUS_DAYS = 366


class FocusQuerySerializer(serializers.Serializer):
    start = serializers.DateField(help_text="First UTC day, inclusive (YYYY-MM-DD).")
    end = serializers.DateField(help_text="Last UTC day, inclusive (YYYY-MM-DD).")
    include_evaluation = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Add evaluation (shadow) spend as rows marked `x_Evaluation=true`.",
    )
    org = serializers.SlugField(required=False, help_text="Only this organisation (slug).")

    def validate(self, attrs: dict) -> dict:
        if attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"start": "must not be after end"})
        if (attrs["end"] - attrs["start"]).days + 1 > MAX_FOCUS_DAYS:
            raise serializers.ValidationError({"end": f"at most {MAX_FOCUS_DAYS} days per export"})
        return attrs

    def query(self):
        from reports.exports.focus import FocusQuery

        data = self.validated_data
        return FocusQuery(
            start=data["start"], end=data["end"], include_evaluation=data["include_evaluation"]
        )
