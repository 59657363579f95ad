"""API shapes of the gateway catalog: providers, models with prices, groups, routers.

No credential is ever part of a response: a provider names the environment variable its key is
read from (``api_key_env``), or takes the organisation's own key as the write-only ``api_key``
(stored encrypted; responses say ``api_key_set`` and ``api_key_last4``, never the key). Its
admin-API credential (invoice reconciliation) is the same under ``admin_api_key_env`` /
``admin_api_key`` / ``admin_api_key_set`` / ``admin_api_key_last4``, sent to ``admin_base_url``
(blank: ``base_url``). Prices are Decimal strings (USD per million tokens).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gateway import selectors
from gateway.models import (
    GroupStrategy,
    LLMModel,
    ModelGroup,
    ModelMode,
    ModelPrice,
    Provider,
    ProviderKind,
    Router,
    Scorer,
    validate_model_name,
)
from gateway.services.catalog import ROUTER_EDITABLE
from gateway.services.credentials import API_KEY_MAX, provider_key_problem
from gateway.services.providers import provider_base_url_check
from teams.models import Organization
from teams.serializers import ORG_HELP, ScopedInputSerializer

PRICE = dict(max_digits=24, decimal_places=12, min_value=Decimal("0"))


class _CatalogInput(ScopedInputSerializer):
    def resolve_provider(self, org: Organization, slug: str) -> Provider:
        provider = selectors.provider_list_for_user(self.user).filter(org=org, slug=slug).first()
        if provider is None:
            raise serializers.ValidationError({"provider": f"no provider {slug!r} in {org.slug}"})
        return provider

    def org_of(self, attrs: dict[str, Any]) -> Organization:
        """The target org: the instance's on update, resolved from ``org`` on create."""
        if self.instance is not None:
            return self.instance.org
        attrs["org"] = self.resolve_org(attrs.get("org"))
        return attrs["org"]


# --- providers ----------------------------------------------------------------------------------


class ProviderSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    api_key_set = serializers.BooleanField(
        read_only=True, help_text="Whether the provider holds a key of its own (never shown)."
    )
    admin_api_key_set = serializers.SerializerMethodField(
        help_text="Whether the provider holds an admin-API key of its own (never shown)."
    )
    # blank when the admin API is base_url's: a plain string (the "uri" format would refuse "")
    admin_base_url = serializers.CharField(read_only=True)

    class Meta:
        model = Provider
        fields = [
            "id",
            "org",
            "slug",
            "kind",
            "base_url",
            "api_key_env",
            "api_key_set",
            "api_key_last4",
            "api_version",
            "responses_api",
            "publisher",
            "invoice_issuer",
            "admin_base_url",
            "admin_api_key_env",
            "admin_api_key_set",
            "admin_api_key_last4",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField())
    def get_admin_api_key_set(self, provider: Provider) -> bool:
        return bool(provider.admin_api_key_encrypted)


def _url_checked(value: str, field: str) -> str:
    """``value`` through ``provider_base_url_check``, its refusal as this field's DRF error."""
    try:
        provider_base_url_check(base_url=value, field=field)
    except DjangoValidationError as exc:
        messages = exc.message_dict.get(field) if hasattr(exc, "error_dict") else None
        raise serializers.ValidationError(messages or exc.messages) from exc
    return value


def _key_checked(value: str) -> str:
    problem = provider_key_problem(value) if value else None
    if problem:
        raise serializers.ValidationError(problem)  # never quotes the key
    return value


class _ProviderFieldsSerializer(_CatalogInput):
    kind = serializers.ChoiceField(choices=ProviderKind.choices)
    base_url = serializers.URLField(
        max_length=500, help_text="As the official SDK takes it; bounded by FINOPS_PROVIDER_HOSTS."
    )
    api_key_env = serializers.RegexField(
        r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=128,
        required=False,
        allow_blank=True,
        help_text="Name of the environment variable holding the credential (never the key).",
    )
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        max_length=API_KEY_MAX,
        style={"input_type": "password"},
        help_text="The organisation's own API key for this provider, stored encrypted and never "
        'returned (responses show api_key_set and api_key_last4); "" removes it. Not together '
        "with api_key_env.",
    )
    api_version = serializers.CharField(max_length=32, required=False, allow_blank=True)
    responses_api = serializers.ChoiceField(
        choices=["native", "translate"],
        required=False,
        allow_blank=True,
        help_text="How /v1/responses reaches this provider: natively, or translated onto Chat "
        "Completions (Messages for Anthropic); blank: native for Azure and api.openai.com.",
    )
    publisher = serializers.CharField(max_length=100, required=False, allow_blank=True)
    invoice_issuer = serializers.CharField(max_length=100, required=False, allow_blank=True)
    # a CharField, checked as a URL in validate_admin_base_url: the schema's "uri" format would
    # call the blank default invalid
    admin_base_url = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="The provider's admin API (usage and cost reports) when it is not base_url's; "
        "blank: base_url. Bounded by FINOPS_PROVIDER_HOSTS.",
    )
    admin_api_key_env = serializers.RegexField(
        r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=128,
        required=False,
        allow_blank=True,
        help_text="Name of the environment variable holding the admin-API credential (never the "
        "key); set by the platform's operators only.",
    )
    admin_api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        max_length=API_KEY_MAX,
        style={"input_type": "password"},
        help_text="The organisation's own admin-API key (usage and cost reports), stored "
        "encrypted and never returned (responses show admin_api_key_set and "
        'admin_api_key_last4); "" removes it. Not together with admin_api_key_env.',
    )

    def validate_api_key(self, value: str) -> str:
        return _key_checked(value)

    def validate_admin_api_key(self, value: str) -> str:
        return _key_checked(value)

    def validate_base_url(self, value: str) -> str:
        return _url_checked(value, "base_url")

    def validate_admin_base_url(self, value: str) -> str:
        return _url_checked(value, "admin_base_url") if value else value


class ProviderCreateSerializer(_ProviderFieldsSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    slug = serializers.SlugField(max_length=64)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        self.org_of(attrs)
        return attrs


class ProviderUpdateSerializer(_ProviderFieldsSerializer):
    pass


# --- models and prices --------------------------------------------------------------------------


class PriceSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelPrice
        fields = [
            "effective_from",
            "input_usd_per_mtok",
            "output_usd_per_mtok",
            "cached_input_usd_per_mtok",
            "cache_write_usd_per_mtok",
            "batch_input_usd_per_mtok",
            "batch_output_usd_per_mtok",
            "source",
            "created_at",
        ]
        read_only_fields = fields


class PriceCreateSerializer(serializers.Serializer):
    effective_from = serializers.DateTimeField(
        required=False, help_text="Now when left out; never earlier than now or the latest price."
    )
    input_usd_per_mtok = serializers.DecimalField(**PRICE)
    output_usd_per_mtok = serializers.DecimalField(**PRICE)
    cached_input_usd_per_mtok = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    cache_write_usd_per_mtok = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    batch_input_usd_per_mtok = serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        help_text="The Batch API's input price; null: half input_usd_per_mtok.",
    )
    batch_output_usd_per_mtok = serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        help_text="The Batch API's output price; null: half output_usd_per_mtok.",
    )


def prices_newest_first(model: LLMModel) -> list[ModelPrice]:
    return sorted(model.prices.all(), key=lambda p: p.effective_from, reverse=True)


class LLMModelSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    provider = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    price = serializers.SerializerMethodField(help_text="The price in force now.")
    prices = serializers.SerializerMethodField(help_text="Price history, newest first.")

    class Meta:
        model = LLMModel
        fields = [
            "id",
            "org",
            "name",
            "provider",
            "upstream_model",
            "mode",
            "context_window",
            "max_output_tokens",
            "active",
            "price",
            "prices",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(PriceSerializer(allow_null=True))
    def get_price(self, model: LLMModel) -> dict | None:
        now = timezone.now()
        current = next((p for p in prices_newest_first(model) if p.effective_from <= now), None)
        return PriceSerializer(current).data if current else None

    @extend_schema_field(PriceSerializer(many=True))
    def get_prices(self, model: LLMModel) -> list[dict]:
        return PriceSerializer(prices_newest_first(model), many=True).data


class _ModelFieldsSerializer(_CatalogInput):
    provider = serializers.SlugField(help_text="Provider slug.")
    upstream_model = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="Defaults to the name."
    )
    mode = serializers.ChoiceField(choices=ModelMode.choices, default=ModelMode.CHAT)
    context_window = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_output_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    active = serializers.BooleanField(default=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        org = self.org_of(attrs)
        if "provider" in attrs:
            attrs["provider"] = self.resolve_provider(org, attrs["provider"])
        return attrs


class LLMModelCreateSerializer(_ModelFieldsSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    name = serializers.CharField(
        max_length=128,
        validators=[validate_model_name],
        help_text="What clients call it; dots are fine (gpt-4.1).",
    )
    input_usd_per_mtok = serializers.DecimalField(**PRICE)
    output_usd_per_mtok = serializers.DecimalField(**PRICE)
    cached_input_usd_per_mtok = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    cache_write_usd_per_mtok = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    batch_input_usd_per_mtok = serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        help_text="The Batch API's input price; null: half input_usd_per_mtok.",
    )
    batch_output_usd_per_mtok = serializers.DecimalField(
        **PRICE,
        required=False,
        allow_null=True,
        help_text="The Batch API's output price; null: half output_usd_per_mtok.",
    )


class LLMModelUpdateSerializer(_ModelFieldsSerializer):
    pass


# --- groups -------------------------------------------------------------------------------------


class GroupMemberSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=128)
    weight = serializers.IntegerField(min_value=1, default=1)


class GroupSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    members = serializers.SerializerMethodField()
    fallbacks = serializers.SerializerMethodField(help_text="Model names, in the order tried.")

    class Meta:
        model = ModelGroup
        fields = [
            "id",
            "org",
            "name",
            "strategy",
            "members",
            "fallbacks",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(GroupMemberSerializer(many=True))
    def get_members(self, group: ModelGroup) -> list[dict]:
        return [{"model": m.model.name, "weight": m.weight} for m in group.members.all()]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_fallbacks(self, group: ModelGroup) -> list[str]:
        return [link.model.name for link in group.fallback_links.all()]


class _GroupFieldsSerializer(_CatalogInput):
    strategy = serializers.ChoiceField(choices=GroupStrategy.choices, default="weighted")
    members = GroupMemberSerializer(many=True, allow_empty=False)
    fallbacks = serializers.ListField(
        child=serializers.CharField(max_length=128), required=False, help_text="Model names."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        org = self.org_of(attrs)
        if "members" in attrs:
            attrs["members"] = [
                (self.resolve_model(org, m["model"], field="members"), m["weight"])
                for m in attrs["members"]
            ]
        if "fallbacks" in attrs:
            attrs["fallbacks"] = [
                self.resolve_model(org, name, field="fallbacks") for name in attrs["fallbacks"]
            ]
        return attrs


class GroupCreateSerializer(_GroupFieldsSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    name = serializers.CharField(max_length=128, validators=[validate_model_name])


class GroupUpdateSerializer(_GroupFieldsSerializer):
    pass


# --- routers ------------------------------------------------------------------------------------


class RouterSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    strong = serializers.SlugRelatedField(slug_field="name", read_only=True)
    weak = serializers.SlugRelatedField(slug_field="name", read_only=True)
    judge_model = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Router
        fields = ["id", "org", "name", *ROUTER_EDITABLE, "created_at", "updated_at"]
        read_only_fields = fields


class _RouterFieldsSerializer(_CatalogInput):
    strong = serializers.CharField(max_length=128, help_text="Model name.")
    weak = serializers.CharField(max_length=128, help_text="Model name.")
    scorer = serializers.ChoiceField(choices=Scorer.choices, default=Scorer.HEURISTIC)
    threshold = serializers.FloatField(
        min_value=0.0, max_value=1.0, default=0.5, help_text="Score >= threshold picks strong."
    )
    store_prompts = serializers.BooleanField(
        default=True, help_text="Keep a sample of recent prompts for calibration and training."
    )
    prompt_retention = serializers.IntegerField(
        min_value=0, max_value=1_000_000, default=5000, help_text="Prompts kept (the newest)."
    )
    shadow_rate = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        default=0.0,
        help_text="Share of calls mirrored to the other model in the background (evaluation).",
    )
    pair_sample_rate = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        default=1.0,
        help_text="Share of shadowed calls stored as prompt/answer pairs (redacted).",
    )
    pair_retention_days = serializers.IntegerField(
        min_value=1, max_value=3650, default=30, help_text="Days stored pairs are kept."
    )
    judge_model = serializers.CharField(
        max_length=128,
        allow_blank=True,
        default="",
        help_text="Model name that grades stored pairs (LLM-as-judge); empty: none.",
    )
    judge_rubric = serializers.CharField(
        max_length=4000, allow_blank=True, default="", help_text="Empty: the default rubric."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        org = self.org_of(attrs)
        for field in ("strong", "weak"):
            if field in attrs:
                attrs[field] = self.resolve_model(org, attrs[field], field=field)
        if "judge_model" in attrs:
            name = attrs["judge_model"]
            attrs["judge_model"] = (
                self.resolve_model(org, name, field="judge_model") if name else None
            )
        return attrs


class RouterCreateSerializer(_RouterFieldsSerializer):
    org = serializers.SlugField(required=False, help_text=ORG_HELP)
    name = serializers.CharField(max_length=128, validators=[validate_model_name])


class RouterUpdateSerializer(_RouterFieldsSerializer):
    pass
