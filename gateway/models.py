"""Gateway configuration (providers, models, prices, groups, routers) and the usage ledger."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from finops.jsonfield import FastJSONField
from teams.models import Organization

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
MTOK = Decimal(1_000_000)


def validate_model_name(value: str) -> None:
    """Model names keep dots and slashes (``gpt-4.1``, ``meta/llama-3``), unlike slugs."""
    if not MODEL_NAME_RE.match(value or "") or value.startswith(("router:", "group:")):
        raise ValidationError(
            f"{value!r} is not a valid model name (letters, digits and . _ : / @ + -)"
        )


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    AZURE = "azure", "Azure OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"


class Provider(models.Model):
    """An upstream API and the credential the gateway sends it: one of two, never both.

    - ``api_key_env`` names a variable of the server's environment (the operators' to set:
      ``gateway/services/providers.py``); the value never enters the database.
    - ``api_key_encrypted`` holds the organisation's own key, entered by its admins, as a Fernet
      token under ``FINOPS_ENCRYPTION_KEY`` (``gateway/services/credentials.py``);
      ``api_key_last4`` is all that the API and the admin show of it. Neither field is editable
      through a generic form or serializer: the catalog services set them.
    """

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="providers")
    slug = models.SlugField(max_length=64)
    kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    base_url = models.URLField(max_length=500)
    api_key_env = models.CharField(max_length=128, blank=True)
    # db_default: a process still on the previous release can insert providers mid-deploy
    api_key_encrypted = models.TextField(blank=True, default="", db_default="", editable=False)
    api_key_last4 = models.CharField(
        max_length=4, blank=True, default="", db_default="", editable=False
    )
    api_version = models.CharField(max_length=32, blank=True)
    # How /v1/responses reaches this provider: natively, or translated onto Chat Completions
    # (Messages for Anthropic). Blank: native for Azure and OpenAI's own API, else translate.
    responses_api = models.CharField(
        max_length=16,
        blank=True,
        default="",
        db_default="",
        choices=[("", "auto"), ("native", "native"), ("translate", "translate")],
    )
    # The provider's admin API (usage and cost reports, for invoice reconciliation): its own
    # credential, held like the inference one (an operator's env name, or the org's key
    # encrypted), and its base URL when it is not ``base_url``'s (OpenAI and Anthropic serve
    # both from one host).
    admin_api_key_env = models.CharField(max_length=128, blank=True, default="", db_default="")
    admin_api_key_encrypted = models.TextField(
        blank=True, default="", db_default="", editable=False
    )
    admin_api_key_last4 = models.CharField(
        max_length=4, blank=True, default="", db_default="", editable=False
    )
    admin_base_url = models.URLField(max_length=500, blank=True, default="", db_default="")
    publisher = models.CharField(max_length=100, blank=True)
    invoice_issuer = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["org__slug", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["org", "slug"], name="provider_slug_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.org.slug}/{self.slug}"

    def clean(self) -> None:
        """The URLs inside FINOPS_PROVIDER_HOSTS; each credential (inference, admin API) an
        allowed variable name or an encrypted key, not both. Who may set what is the services'
        check (``provider_credential_guard``)."""
        from gateway.services.providers import provider_base_url_check, provider_key_env_check

        if self.base_url:
            provider_base_url_check(base_url=self.base_url)
        if self.admin_base_url:
            provider_base_url_check(base_url=self.admin_base_url, field="admin_base_url")
        for prefix, what in (("api_key", "credential"), ("admin_api_key", "admin credential")):
            env, token = getattr(self, f"{prefix}_env"), getattr(self, f"{prefix}_encrypted")
            if env and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env):
                raise ValidationError({f"{prefix}_env": "must be an environment variable name"})
            provider_key_env_check(name=env, field=f"{prefix}_env")
            if env and token:
                raise ValidationError(
                    {
                        f"{prefix}_env": f"a provider's {what} is {prefix}_env or an encrypted "
                        f"{prefix} ({prefix}_encrypted), not both: clear one first"
                    }
                )

    @property
    def api_key_set(self) -> bool:
        """Whether the provider holds a key of its own (encrypted); never the key."""
        return bool(self.api_key_encrypted)


class ModelMode(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"


class LLMModel(models.Model):
    """A model as the organisation names it, served by one provider under ``upstream_model``."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="models")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=128, validators=[validate_model_name])
    upstream_model = models.CharField(max_length=200)
    mode = models.CharField(max_length=16, choices=ModelMode.choices, default=ModelMode.CHAT)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["org__slug", "name"]
        verbose_name = "model"
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="model_name_per_org")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.provider_id and self.org_id and self.provider.org_id != self.org_id:
            raise ValidationError({"provider": "provider belongs to another organisation"})

    def price_at(self, when=None) -> ModelPrice | None:
        when = when or timezone.now()
        return self.prices.filter(effective_from__lte=when).order_by("-effective_from").first()


PRICE_FIELD = dict(max_digits=24, decimal_places=12, validators=[MinValueValidator(Decimal("0"))])


class ModelPrice(models.Model):
    """Prices in USD per million tokens, from ``effective_from`` on; history is never rewritten."""

    model = models.ForeignKey(LLMModel, on_delete=models.CASCADE, related_name="prices")
    effective_from = models.DateTimeField(default=timezone.now)
    input_usd_per_mtok = models.DecimalField(**PRICE_FIELD, default=Decimal("0"))
    output_usd_per_mtok = models.DecimalField(**PRICE_FIELD, default=Decimal("0"))
    cached_input_usd_per_mtok = models.DecimalField(**PRICE_FIELD, null=True, blank=True)
    cache_write_usd_per_mtok = models.DecimalField(**PRICE_FIELD, null=True, blank=True)
    # the Batch APIs' prices; blank: half the synchronous ones (both providers' discount)
    batch_input_usd_per_mtok = models.DecimalField(**PRICE_FIELD, null=True, blank=True)
    batch_output_usd_per_mtok = models.DecimalField(**PRICE_FIELD, null=True, blank=True)
    source = models.CharField(max_length=32, default="config")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["model__name", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "effective_from"], name="one_price_per_model_instant"
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.model.name} from {self.effective_from:%Y-%m-%d}: "
            f"in {self.input_usd_per_mtok} / out {self.output_usd_per_mtok} per Mtok"
        )


class GroupStrategy(models.TextChoices):
    WEIGHTED = "weighted", "Weighted random"
    ROUND_ROBIN = "round_robin", "Round robin"
    LEAST_BUSY = "least_busy", "Least busy"
    LATENCY = "latency", "Lowest latency"
    COST = "cost", "Lowest cost"


class ModelGroup(models.Model):
    """A load-balanced set of models with a fallback chain; clients call it by name."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=128, validators=[validate_model_name])
    strategy = models.CharField(
        max_length=16, choices=GroupStrategy.choices, default=GroupStrategy.WEIGHTED
    )
    fallbacks = models.ManyToManyField(
        LLMModel, through="GroupFallback", related_name="fallback_for", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["org__slug", "name"]
        verbose_name = "group"
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="group_name_per_org")]

    def __str__(self) -> str:
        return self.name


class GroupMember(models.Model):
    group = models.ForeignKey(ModelGroup, on_delete=models.CASCADE, related_name="members")
    model = models.ForeignKey(LLMModel, on_delete=models.PROTECT, related_name="+")
    weight = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["group", "model"], name="group_member_once")]

    def __str__(self) -> str:
        return f"{self.group.name} <- {self.model.name} x{self.weight}"


class GroupFallback(models.Model):
    group = models.ForeignKey(ModelGroup, on_delete=models.CASCADE, related_name="fallback_links")
    model = models.ForeignKey(LLMModel, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["group", "model"], name="group_fallback_once")
        ]

    def __str__(self) -> str:
        return f"{self.group.name} -> {self.model.name} #{self.position}"


class Scorer(models.TextChoices):
    RANDOM = "random", "Random (baseline)"
    HEURISTIC = "heuristic", "Heuristic"
    LEARNED = "learned", "Learned"
    EMBEDDING = "embedding", "Embedding kNN"


class Router(models.Model):
    """Per prompt, the strong model or the weak one: score >= threshold picks strong."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="routers")
    name = models.CharField(max_length=128, validators=[validate_model_name])
    strong = models.ForeignKey(LLMModel, on_delete=models.PROTECT, related_name="+")
    weak = models.ForeignKey(LLMModel, on_delete=models.PROTECT, related_name="+")
    scorer = models.CharField(max_length=16, choices=Scorer.choices, default=Scorer.HEURISTIC)
    threshold = models.FloatField(default=0.5)
    store_prompts = models.BooleanField(
        default=True,
        help_text="Keep a sample of recent prompts (for calibration and training).",
    )
    prompt_retention = models.PositiveIntegerField(
        default=5000, help_text="How many of the newest prompts are kept."
    )
    # shadow evaluation (the evaluation app): mirror a share of calls to the other model
    shadow_rate = models.FloatField(
        default=0.0,
        help_text="Share of calls (0..1) also sent to the model the router did not choose, in "
        "the background; metered as evaluation spend.",
    )
    pair_sample_rate = models.FloatField(
        default=1.0,
        help_text="Share of shadowed calls whose prompt and both answers are stored (redacted).",
    )
    pair_retention_days = models.PositiveIntegerField(
        default=30, help_text="Stored pairs are deleted after this many days."
    )
    judge_model = models.ForeignKey(
        LLMModel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Model that grades stored pairs (LLM-as-judge); metered as evaluation.",
    )
    judge_rubric = models.TextField(
        blank=True, help_text="What the judge is told a good answer is; empty: the default."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["org__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="router_name_per_org")]

    def __str__(self) -> str:
        return f"router:{self.name}"

    def clean(self) -> None:
        for name in ("threshold", "shadow_rate", "pair_sample_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValidationError({name: "between 0 and 1"})


class RouterModel(models.Model):
    """A trained scorer of a router (``learned``: logistic regression on hashed n-grams).

    ``weights`` holds only the non-zero weights (``LinearModel.to_bytes``), ``params`` what
    else describes the model; at most one per router is active, and gateways score with it.
    """

    router = models.ForeignKey(Router, on_delete=models.CASCADE, related_name="trained_models")
    kind = models.CharField(max_length=16, choices=Scorer.choices, default=Scorer.LEARNED)
    params = models.JSONField(default=dict)
    weights = models.BinaryField()
    evaluation = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["router"],
                condition=models.Q(active=True),
                name="one_active_model_per_router",
            )
        ]

    def __str__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"{self.router} {self.kind} model #{self.pk} ({state})"


class RouterPrompt(models.Model):
    """A recent prompt sent through a router, kept (up to ``Router.prompt_retention``) to
    calibrate its threshold and to train its scorer. Written by the ledger thread."""

    router = models.ForeignKey(Router, on_delete=models.CASCADE, related_name="prompts")
    created_at = models.DateTimeField(default=timezone.now)
    messages = models.JSONField()
    scorer = models.CharField(max_length=16, blank=True)
    score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["router", "-id"], name="router_prompt_newest")]

    def __str__(self) -> str:
        return f"{self.router} prompt #{self.pk}"


COST_FIELD = dict(max_digits=24, decimal_places=12, default=Decimal("0"))


class UsageEvent(models.Model):
    """One upstream attempt: the append-only ledger, the source of truth for spend.

    Attribution is stored as ids and names (not cascading foreign keys) so that deleting or
    renaming a control-plane object never rewrites or removes spend history.
    """

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    request_id = models.CharField(max_length=64, db_index=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    started_at = models.DateTimeField(db_index=True)
    first_byte_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField()
    org_id = models.BigIntegerField(db_index=True)
    team_id = models.BigIntegerField(null=True, blank=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    feature = models.CharField(max_length=64, blank=True)
    endpoint = models.CharField(max_length=200, blank=True)
    end_user = models.CharField(max_length=200, blank=True)
    api = models.CharField(max_length=32, default="chat.completions")
    requested_model = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=128, blank=True, help_text="Configured model name.")
    upstream_model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    # ok | error | client_abort | lost (its gateway died mid-call: cost = the upper bound)
    status = models.CharField(max_length=16)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    input_cost = models.DecimalField(**COST_FIELD)
    cached_input_cost = models.DecimalField(**COST_FIELD)
    cache_write_cost = models.DecimalField(**COST_FIELD)
    output_cost = models.DecimalField(**COST_FIELD)
    cost = models.DecimalField(**COST_FIELD)
    latency_ms = models.PositiveIntegerField(default=0)
    streamed = models.BooleanField(default=False)
    estimated = models.BooleanField(default=False)
    router = models.CharField(max_length=128, blank=True)
    router_scorer = models.CharField(max_length=16, blank=True)
    router_score = models.FloatField(null=True, blank=True)
    router_threshold = models.FloatField(null=True, blank=True)
    router_decision = models.CharField(max_length=16, blank=True)
    shadow = models.BooleanField(default=False)
    # Columns added to the ledger after its first release carry a database default, so that
    # writers that predate them (a gateway process during a rolling deploy, a raw-SQL loader)
    # keep inserting instead of failing on NOT NULL.
    experiment = models.CharField(
        max_length=128, blank=True, default="", db_default="", help_text="A/B experiment name."
    )
    experiment_arm = models.CharField(
        max_length=16, blank=True, default="", db_default="", help_text="control | candidate"
    )
    usage_exceeded_bound = models.BooleanField(
        default=False,
        db_default=False,
        help_text="The upstream billed more than the request allowed (the row keeps what it "
        "billed; the deployment was cooled down).",
    )
    budget_action = models.CharField(
        max_length=16, blank=True, help_text="'downgrade' when a budget sent the call elsewhere."
    )
    translated = models.BooleanField(
        default=False,
        db_default=False,
        help_text="The call reached its upstream in another wire format than the client's "
        "(e.g. /v1/messages onto an OpenAI-kind model); ``api`` is the client's format.",
    )
    # What a lever saved on this row against its counterfactual at the same instant's prices:
    # the cost router (the strong model), the response cache (the call not made), batch (the
    # synchronous price), a budget downgrade (the model asked for), a fallback that landed on a
    # cheaper model (the first choice). Negative when the lever cost more.
    saved_usd = models.DecimalField(**COST_FIELD, db_default=Decimal("0"))
    saving_lever = models.CharField(
        max_length=16,
        blank=True,
        default="",
        db_default="",
        help_text="router | cache | batch | downgrade | fallback (blank: none)",
    )
    cache_hit = models.BooleanField(default=False, db_default=False)
    batch_id = models.CharField(max_length=64, blank=True, default="", db_default="")
    inserted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["org_id", "started_at"], name="usage_org_started")]

    def __str__(self) -> str:
        return f"{self.request_id}#{self.attempt} {self.model} {self.status} {self.cost}"


class ConfigStamp(models.Model):
    """A version number per configuration area, bumped on every change.

    Gateway processes poll it (in Redis when ``REDIS_URL`` is set, here otherwise) to drop cached
    keys, prices and routes within a second of a change made by any process.
    """

    name = models.CharField(max_length=32, unique=True)
    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class CounterDrift(models.Model):
    """A correction the reconciliation made: a budget counter that disagreed with the ledger."""

    budget_id = models.BigIntegerField()
    window = models.CharField(max_length=32)
    counter_nano = models.BigIntegerField(help_text="Spent per the counter before correction.")
    ledger_nano = models.BigIntegerField(help_text="Spent per the ledger.")
    corrected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-corrected_at"]

    def __str__(self) -> str:
        return (
            f"budget {self.budget_id} {self.window}: {self.counter_nano - self.ledger_nano:+d} nUSD"
        )


class StoredResponse(models.Model):
    """A Responses API answer kept for ``previous_response_id`` and ``GET /v1/responses/{id}``.

    Scoped to the key that created it (another key, let alone another tenant, gets a 404),
    redacted like evaluation pairs (``finops.redact``), and kept until ``expires_at``
    (``FINOPS_RESPONSES_RETENTION_DAYS``; purged by a beat task). ``items`` is what this turn
    added (its new input items, then its output items); ``previous_id`` the turn before it.
    """

    response_id = models.CharField(max_length=80, unique=True)
    org_id = models.BigIntegerField()
    key_id = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    previous_id = models.CharField(max_length=80, blank=True, default="")
    # orjson: a turn may hold a coding agent's whole context, written by the ledger thread
    response = FastJSONField()
    items = FastJSONField(default=list)

    class Meta:
        indexes = [models.Index(fields=["key_id", "response_id"], name="stored_response_key")]

    def __str__(self) -> str:
        return self.response_id


class BatchFile(models.Model):
    """A file of the Batch APIs: a client's JSONL input (``purpose`` ``batch``) or the output
    the gateway built from the provider's (``batch_output``: ids and model names the client's).

    Kept in the database, not on a process's disk: any gateway process serves any request.
    Scoped to the key that uploaded it (``gateway.batches.files``): another key, let alone
    another tenant, gets a 404 as if the id did not exist.
    """

    file_id = models.CharField(max_length=64, unique=True)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key_id = models.BigIntegerField()
    purpose = models.CharField(max_length=16)  # batch | batch_output
    filename = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    content = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["key_id", "-created_at"], name="batch_file_key_newest")]

    def __str__(self) -> str:
        return self.file_id


class Batch(models.Model):
    """One batch as the client sees it (OpenAI's Batch API or Anthropic's Message Batches),
    mapped to one upstream batch of one provider.

    ``reservation`` is the budget hold taken at creation (its lease and counter keys), so that
    whichever gateway process meters the batch settles it; ``claim_until`` is that process's
    claim (a conditional ``UPDATE``), ``metered_at`` when its lines became ledger rows.
    ``lines`` holds, per input line, its ``custom_id``, the model the client asked for and the
    configured model that served it; ``served`` a snapshot of each one's upstream name and
    prices at creation (a batch is billed at the prices in force when it was sent).
    """

    batch_id = models.CharField(max_length=64, unique=True)
    api = models.CharField(max_length=16)  # openai | anthropic: the client's wire format
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key_id = models.BigIntegerField()
    team_id = models.BigIntegerField(null=True, blank=True)
    feature = models.CharField(max_length=64, blank=True)
    endpoint_label = models.CharField(max_length=200, blank=True)
    endpoint = models.CharField(max_length=64)  # /v1/chat/completions | /v1/embeddings | …
    provider = models.CharField(max_length=64, blank=True)  # the provider's slug
    upstream_id = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16)  # the provider's, as last seen
    metadata = models.JSONField(default=dict, blank=True)
    input_file_id = models.CharField(max_length=64, blank=True)
    output_file_id = models.CharField(max_length=64, blank=True)
    error_file_id = models.CharField(max_length=64, blank=True)
    upstream_files = models.JSONField(default=dict, blank=True)  # input / output / error ids
    lines = FastJSONField(default=list)
    served = models.JSONField(default=dict)  # configured model -> upstream name, prices
    request_counts = models.JSONField(default=dict, blank=True)
    upstream_times = models.JSONField(default=dict, blank=True)  # the provider's timestamps
    errors = models.JSONField(default=list, blank=True)
    reserved_usd = models.DecimalField(**COST_FIELD)
    reservation = models.JSONField(default=dict, blank=True)
    cost_usd = models.DecimalField(**COST_FIELD)
    saved_usd = models.DecimalField(**COST_FIELD)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    claim_until = models.DateTimeField(null=True, blank=True)
    metered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["key_id", "-created_at"], name="batch_key_newest"),
            models.Index(fields=["metered_at", "checked_at"], name="batch_open"),
        ]

    def __str__(self) -> str:
        return self.batch_id
