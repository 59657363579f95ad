"""Serializers of the reconciliation API: the query, its rows, imports, suggestions, policy.
Money leaves as fixed-point strings (``finops.money.money``), as in the spend API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rest_framework import serializers

from finops.money import money
from reports.invoices.reconcile import CLASSES, GROUPS, Row
from reports.models import ProviderReportPull, ReconciliationPolicy, TokenType
from reports.serializers import comma_choices

MAX_DAYS = 400
COVERAGE_QUANT = Decimal("0.0001")


def _today():
    return datetime.now(UTC).date()


class ReconciliationQuerySerializer(serializers.Serializer):
    org = serializers.SlugField(required=False, help_text="Only this organisation (slug).")
    provider = serializers.SlugField(required=False, help_text="Only this provider (slug).")
    start = serializers.DateField(
        required=False, help_text="First UTC day, inclusive (default: the 1st of this month)."
    )
    end = serializers.DateField(
        required=False, help_text="Last UTC day, inclusive (default: today)."
    )
    group_by = serializers.CharField(
        required=False,
        default="day,model",
        help_text="Comma-separated, of: day, model, token_type (the provider is always kept).",
    )

    def validate_group_by(self, value: str) -> tuple[str, ...]:
        return comma_choices(value, GROUPS, what="grouping")

    def validate(self, attrs: dict) -> dict:
        end = attrs.get("end") or _today()
        start = attrs.get("start") or end.replace(day=1)
        if start > end:
            raise serializers.ValidationError({"start": "must not be after end"})
        if (end - start).days + 1 > MAX_DAYS:
            raise serializers.ValidationError({"end": f"at most {MAX_DAYS} days per query"})
        attrs.update(start=start, end=end)
        attrs.setdefault("group_by", ("day", "model"))
        return attrs


def row_data(r: Row) -> dict:
    return {
        "provider": r.provider,
        "day": r.day.isoformat() if r.day else None,
        "model": r.model,
        "token_type": r.token_type,
        "provider_tokens": r.provider_tokens,
        "ledger_tokens": r.ledger_tokens,
        "provider_cost_usd": None if r.provider_cost is None else money(r.provider_cost),
        "ledger_cost_usd": money(r.ledger_cost),
        "difference_usd": money(r.difference),
        "unmetered_usd": money(r.unmetered),
        "over_metered_usd": money(r.over_metered),
        "price_drift_usd": money(r.price_drift),
        "matched_usd": money(r.matched),
        "class": r.klass,
        "accounts": [
            {"account": account, "api_key_id": key_id, "tokens": tokens, "cost_usd": money(cost)}
            for (account, key_id), (tokens, cost) in sorted(r.accounts.items())
        ],
    }


class ReconciliationRowSerializer(serializers.Serializer):
    """One row (documentation of ``row_data``)."""

    provider = serializers.CharField()
    day = serializers.DateField(allow_null=True)
    model = serializers.CharField()
    token_type = serializers.CharField()
    provider_tokens = serializers.IntegerField(allow_null=True)
    ledger_tokens = serializers.IntegerField()
    provider_cost_usd = serializers.CharField(allow_null=True)
    ledger_cost_usd = serializers.CharField()
    difference_usd = serializers.CharField()
    unmetered_usd = serializers.CharField()
    over_metered_usd = serializers.CharField()
    price_drift_usd = serializers.CharField()
    matched_usd = serializers.CharField()
    accounts = serializers.ListField(child=serializers.DictField())

    def get_fields(self):  # "class" is a keyword: added here, not as an attribute
        fields = super().get_fields()
        fields["class"] = serializers.ChoiceField(choices=list(CLASSES))
        return fields


class ReconciliationResponseSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    group_by = serializers.ListField(child=serializers.CharField())
    totals = serializers.DictField(child=serializers.CharField())
    coverage = serializers.CharField(allow_null=True)
    rows = ReconciliationRowSerializer(many=True)


class ReportPullSerializer(serializers.ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ProviderReportPull
        fields = [
            "id",
            "org",
            "provider",
            "source",
            "start",
            "end",
            "status",
            "rows",
            "error",
            "filename",
            "created_at",
        ]
        read_only_fields = fields


class ReportUploadSerializer(serializers.Serializer):
    provider = serializers.IntegerField(help_text="The provider's id.")
    file = serializers.FileField(help_text="A generic CSV or an Azure Cost Management export.")


class ReportPullRequestSerializer(serializers.Serializer):
    provider = serializers.IntegerField(help_text="The provider's id.")
    start = serializers.DateField(help_text="First UTC day, inclusive.")
    end = serializers.DateField(help_text="Last UTC day, inclusive.")

    def validate(self, attrs: dict) -> dict:
        if attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"start": "must not be after end"})
        if (attrs["end"] - attrs["start"]).days + 1 > MAX_DAYS:
            raise serializers.ValidationError({"end": f"at most {MAX_DAYS} days per pull"})
        if attrs["start"] > _today():
            raise serializers.ValidationError({"start": "must not be in the future"})
        attrs["end"] = attrs["end"] + timedelta(days=1)  # the services take [start, end)
        return attrs


class PriceAcceptSerializer(serializers.Serializer):
    model = serializers.IntegerField(help_text="The catalog model's id.")
    token_type = serializers.ChoiceField(choices=TokenType.values)
    usd_per_mtok = serializers.DecimalField(max_digits=18, decimal_places=6, min_value=0)
    since = serializers.DateField(help_text="The first UTC day the provider charged it.")

    def validate_since(self, value):
        if value >= _today() + timedelta(days=1):
            raise serializers.ValidationError("must be in the past")
        if (_today() - value).days > MAX_DAYS:
            raise serializers.ValidationError(f"at most {MAX_DAYS} days back")
        return value


class ReconciliationPolicySerializer(serializers.ModelSerializer):
    # null until the organisation first saves its own thresholds (the defaults apply)
    id = serializers.IntegerField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    unmetered_alert_usd = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=0, allow_null=True
    )
    price_drift_alert_usd = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=0, allow_null=True
    )

    class Meta:
        model = ReconciliationPolicy
        fields = ["id", "org", "unmetered_alert_usd", "price_drift_alert_usd", "updated_at"]
        read_only_fields = ["id", "org", "updated_at"]


class PriceSuggestionSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.IntegerField(help_text="The catalog model's id.")
    model_name = serializers.CharField()
    token_type = serializers.ChoiceField(choices=TokenType.values)
    since = serializers.DateField()
    implied_usd_per_mtok = serializers.CharField()
    catalog_usd_per_mtok = serializers.CharField(allow_null=True)
    price_drift_usd = serializers.CharField()


class PriceSuggestionListSerializer(serializers.Serializer):
    suggestions = PriceSuggestionSerializer(many=True)


class PriceAcceptedSerializer(serializers.Serializer):
    price = serializers.IntegerField(help_text="The new catalog price's id.")
    effective_from = serializers.DateTimeField()
    correction_rows = serializers.IntegerField()
