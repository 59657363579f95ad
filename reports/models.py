"""Reporting tables derived from the ledger (``gateway.UsageEvent``): spend rollups per hour and
per day, the rollup watermark, and the alerts sent about budgets and spend.

Rollups can always be rebuilt from the ledger (``python manage.py rollup --since DATE``); nothing
here is a source of truth except ``BudgetAlert``, the record of what was sent to whom.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from gateway.savings import LEVERS

# Upper bounds (inclusive, milliseconds) of the latency histogram's buckets; one more bucket
# (``lat_11``) counts everything slower than the last bound. Fixed, so histograms add up.
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    20000,
    40000,
    80000,
)
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
LATENCY_FIELDS = tuple(f"lat_{i}" for i in range(LATENCY_BUCKETS))

SUM_FIELD = dict(max_digits=24, decimal_places=12, default=Decimal("0"))
NO_ID = 0  # sentinel for a missing team or key: NULL never equals NULL in a bucket's key
NO_NAME = ""  # sentinel for a missing feature, endpoint, end user, model or provider

DIMENSION_FIELDS = (
    "org_id",
    "team_id",
    "key_id",
    "feature",
    "endpoint",
    "end_user",
    "model",
    "provider",
)
COUNT_FIELDS = (
    "requests",
    "attempts",
    "successes",
    "failures",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "eval_requests",
    "eval_attempts",
    "latency_sum_ms",
    "latency_count",
    *LATENCY_FIELDS,
)
# Per saving lever (``gateway.savings.LEVERS``): what it saved (the ledger's ``saved_usd``) and
# the production spend of the rows it served (its calls' actual cost).
SAVED_FIELDS = tuple(f"saved_{lever}" for lever in LEVERS)
LEVER_SPEND_FIELDS = tuple(f"spend_{lever}" for lever in LEVERS)
COST_FIELDS = (
    "input_cost",
    "cached_input_cost",
    "cache_write_cost",
    "output_cost",
    "cost",
    "failed_cost",
    "eval_cost",
    "judge_cost",
    *SAVED_FIELDS,
    *LEVER_SPEND_FIELDS,
)
MEASURE_FIELDS = COUNT_FIELDS + COST_FIELDS


class SpendMeasures(models.Model):
    """The measures of a rollup row (``MEASURE_FIELDS``; see ``SpendRollup``)."""

    requests = models.IntegerField(default=0)
    attempts = models.IntegerField(default=0)
    successes = models.IntegerField(default=0)
    failures = models.IntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    input_cost = models.DecimalField(**SUM_FIELD)
    cached_input_cost = models.DecimalField(**SUM_FIELD)
    cache_write_cost = models.DecimalField(**SUM_FIELD)
    output_cost = models.DecimalField(**SUM_FIELD)
    cost = models.DecimalField(**SUM_FIELD)
    failed_cost = models.DecimalField(**SUM_FIELD)
    eval_requests = models.IntegerField(default=0)
    eval_attempts = models.IntegerField(default=0)
    eval_cost = models.DecimalField(**SUM_FIELD)
    judge_cost = models.DecimalField(**SUM_FIELD)  # the judge's part of eval_cost
    saved_router = models.DecimalField(**SUM_FIELD)
    saved_cache = models.DecimalField(**SUM_FIELD)
    saved_batch = models.DecimalField(**SUM_FIELD)
    saved_downgrade = models.DecimalField(**SUM_FIELD)
    saved_fallback = models.DecimalField(**SUM_FIELD)
    spend_router = models.DecimalField(**SUM_FIELD)
    spend_cache = models.DecimalField(**SUM_FIELD)
    spend_batch = models.DecimalField(**SUM_FIELD)
    spend_downgrade = models.DecimalField(**SUM_FIELD)
    spend_fallback = models.DecimalField(**SUM_FIELD)
    latency_sum_ms = models.BigIntegerField(default=0)
    latency_count = models.IntegerField(default=0)
    lat_0 = models.IntegerField(default=0)
    lat_1 = models.IntegerField(default=0)
    lat_2 = models.IntegerField(default=0)
    lat_3 = models.IntegerField(default=0)
    lat_4 = models.IntegerField(default=0)
    lat_5 = models.IntegerField(default=0)
    lat_6 = models.IntegerField(default=0)
    lat_7 = models.IntegerField(default=0)
    lat_8 = models.IntegerField(default=0)
    lat_9 = models.IntegerField(default=0)
    lat_10 = models.IntegerField(default=0)
    lat_11 = models.IntegerField(default=0)

    class Meta:
        abstract = True


class SpendRollup(SpendMeasures):
    """Spend of one time bucket and one combination of dimensions.

    Production traffic and evaluation (shadow) traffic are kept apart: every production column
    counts non-shadow attempts only, the ``eval_*`` columns count shadow attempts.

    - ``requests``: first attempts (``attempt == 1``), so a retried or fallen-back call counts
      once, under the model of its first attempt; ``attempts`` counts every upstream attempt.
    - ``successes`` / ``failures``: attempts with status ``ok`` / anything else.
    - ``cost``: every production attempt's cost (failed ones included, as the provider bills
      them); ``failed_cost`` is the part of it spent on attempts that did not succeed.
    - ``judge_cost``: the part of ``eval_cost`` spent on judge calls (``router_decision``
      ``judge``); the rest of ``eval_cost`` is shadow traffic.
    - ``saved_<lever>``: the ledger's ``saved_usd`` of production rows with that
      ``saving_lever``; ``spend_<lever>``: those rows' ``cost`` (see ``gateway.savings``).
    - latency: over successful production attempts; ``lat_i`` counts those whose latency is at
      most ``LATENCY_BOUNDS_MS[i]`` (and above the previous bound).

    One row per bucket and combination of dimensions: the rollup rebuilds a bucket with a single
    ``GROUP BY`` under the watermark's lock, so no unique index is needed to keep it so (a
    nine-column one doubled the time of a million-row rollup on PostgreSQL).
    """

    org_id = models.BigIntegerField()
    team_id = models.BigIntegerField(default=NO_ID)
    key_id = models.BigIntegerField(default=NO_ID)
    feature = models.CharField(max_length=64, default=NO_NAME, blank=True)
    endpoint = models.CharField(max_length=200, default=NO_NAME, blank=True)
    end_user = models.CharField(max_length=200, default=NO_NAME, blank=True)
    model = models.CharField(max_length=128, default=NO_NAME, blank=True)
    provider = models.CharField(max_length=64, default=NO_NAME, blank=True)

    class Meta:
        abstract = True


class HourlySpend(SpendRollup):
    """One UTC hour (``hour`` is its start) by every dimension."""

    hour = models.DateTimeField()

    class Meta:
        ordering = ["hour"]
        verbose_name = "hourly spend"
        verbose_name_plural = "hourly spend"
        indexes = [models.Index(fields=["org_id", "hour"], name="hourly_spend_org_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h org {self.org_id} {self.cost}"


class DailySpend(SpendRollup):
    """One calendar day in the organisation's timezone, computed from the ledger (not from the
    hours: an hour of a zone offset by a half hour belongs to two local days)."""

    day = models.DateField()

    class Meta:
        ordering = ["day"]
        verbose_name = "daily spend"
        verbose_name_plural = "daily spend"
        indexes = [models.Index(fields=["org_id", "day"], name="daily_spend_org_day")]

    def __str__(self) -> str:
        return f"{self.day} org {self.org_id} {self.cost}"


class Dimension(models.TextChoices):
    """What a ``DailyDimensionSpend`` row sums over: the team's whole day, or one value of one
    dimension within the team."""

    TEAM = "team", "Team total"
    FEATURE = "feature", "Feature"
    ENDPOINT = "endpoint", "Endpoint"
    MODEL = "model", "Model"
    KEY = "key", "Key"


class DailyDimensionSpend(SpendMeasures):
    """One local day of one team (``NO_ID``: org-level spend without a team), summed over every
    value of one dimension: the team's total (``dimension`` ``team``, ``value`` ``''``), or one
    feature / endpoint / model / key id (as text) of the team.

    The marginals of ``DailySpend``, which the dashboards read: a team's day is a few dozen
    rows here instead of the cross product of its dimensions. The rollup rebuilds them from the
    ``DailySpend`` rows of the same org and days, in the same transaction, so both always agree.
    """

    org_id = models.BigIntegerField()
    team_id = models.BigIntegerField(default=NO_ID)
    day = models.DateField()
    dimension = models.CharField(max_length=16, choices=Dimension.choices)
    value = models.CharField(max_length=200, default=NO_NAME, blank=True)

    class Meta:
        ordering = ["day"]
        verbose_name = "daily spend by dimension"
        verbose_name_plural = "daily spend by dimension"
        indexes = [
            models.Index(fields=["org_id", "day"], name="daily_dim_org_day"),
            models.Index(fields=["org_id", "team_id", "day"], name="daily_dim_org_team_day"),
            # the team totals by day (charts, anomalies, budget burn) without the other rows
            models.Index(fields=["org_id", "dimension", "day"], name="daily_dim_org_dim_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} org {self.org_id} team {self.team_id} {self.dimension}={self.value}"


class RollupState(models.Model):
    """The rollup's watermark: every ledger row with ``id <= last_event_id`` has been rolled up.

    Its row is also the rollup's lock: a run holds it ``FOR UPDATE`` (PostgreSQL), so two
    workers never process the same rows at once.
    """

    name = models.CharField(max_length=32, unique=True)
    last_event_id = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_events = models.BigIntegerField(default=0)
    last_duration_ms = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_event_id}"


class AlertKind(models.TextChoices):
    THRESHOLD = "threshold", "Budget threshold"
    FORECAST = "forecast", "Budget forecast"
    ANOMALY = "anomaly", "Spend anomaly"
    CHARGEBACK = "chargeback", "Monthly chargeback statement"
    OVER_BOUND = "over_bound", "Upstream billed past the request"
    UNMETERED = "unmetered", "Provider billed spend the gateway did not meter"
    PRICE_DRIFT = "price_drift", "Catalog price differs from the provider's"


class AlertStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    SUPERSEDED = "superseded", "Superseded by a higher threshold"
    FAILED = "failed", "Failed"


class WebhookStatus(models.TextChoices):
    NONE = "", "No webhook"
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


MONEY_FIELD = dict(max_digits=24, decimal_places=12)


class BudgetAlert(models.Model):
    """One alert (threshold, forecast, anomaly, chargeback statement) and its delivery.

    ``dedupe_key`` names the event (e.g. threshold 80 of budget 7 in the window starting on
    2026-11-01), so evaluating twice, or in two workers, records it once; sending is claimed
    with a conditional ``UPDATE … WHERE sent_at IS NULL``, so it is emailed once.
    """

    org = models.ForeignKey(
        "teams.Organization", on_delete=models.CASCADE, related_name="budget_alerts"
    )
    budget = models.ForeignKey(
        "teams.Budget", on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    team = models.ForeignKey(
        "teams.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    feature = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    dedupe_key = models.CharField(max_length=200, unique=True)
    scope_label = models.CharField(max_length=300, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    threshold = models.PositiveSmallIntegerField(default=0)
    spent_usd = models.DecimalField(**MONEY_FIELD, default=Decimal("0"))
    limit_usd = models.DecimalField(**MONEY_FIELD, null=True, blank=True)
    percent = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    forecast_usd = models.DecimalField(**MONEY_FIELD, null=True, blank=True)
    exhausts_on = models.DateField(null=True, blank=True)
    baseline_usd = models.DecimalField(**MONEY_FIELD, null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    contributors = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    recipients = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=16, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    webhook_status = models.CharField(
        max_length=16, choices=WebhookStatus.choices, default=WebhookStatus.NONE, blank=True
    )
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_next_at = models.DateTimeField(null=True, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "sent_at"], name="alert_pending")]

    def __str__(self) -> str:
        return self.subject or self.dedupe_key


class AlertWebhook(models.Model):
    """A Slack-compatible incoming-webhook URL that receives the alerts of one budget, of one
    team (every alert about the team or its budgets), or of a whole organisation."""

    org = models.ForeignKey(
        "teams.Organization", on_delete=models.CASCADE, related_name="alert_webhooks"
    )
    team = models.ForeignKey(
        "teams.Team",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_webhooks",
    )
    budget = models.ForeignKey(
        "teams.Budget",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_webhooks",
    )
    url = models.URLField(max_length=500)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["org_id", "id"]

    def __str__(self) -> str:
        target = (
            f"budget {self.budget_id}"
            if self.budget_id
            else (f"team {self.team_id}" if self.team_id else "org")
        )
        return f"webhook for {target}"

    def clean(self) -> None:
        from urllib.parse import urlsplit

        from django.core.exceptions import ValidationError

        errors = {}
        if self.url and urlsplit(self.url).scheme not in ("http", "https"):
            errors["url"] = "an http(s) URL"
        if self.team_id and self.org_id and self.team.org_id != self.org_id:
            errors["team"] = "team belongs to another organisation"
        if self.budget_id and self.org_id and self.budget.org_id != self.org_id:
            errors["budget"] = "budget belongs to another organisation"
        if errors:
            raise ValidationError(errors)


# --- what the providers report (invoice reconciliation) -----------------------------------------


class ReportSource(models.TextChoices):
    OPENAI_API = "openai_api", "OpenAI Usage and Costs API"
    ANTHROPIC_API = "anthropic_api", "Anthropic Admin API usage and cost reports"
    AZURE_EXPORT = "azure_export", "Azure Cost Management export (CSV)"
    CSV = "csv", "CSV upload"


class TokenType(models.TextChoices):
    INPUT = "input", "Input"
    CACHED_INPUT = "cached_input", "Cached input"
    CACHE_WRITE = "cache_write", "Cache write"
    OUTPUT = "output", "Output"


class ProviderReportPull(models.Model):
    """One import of a provider's own usage and cost report for ``[start, end)`` (UTC days): a
    pull from its admin API or an uploaded file. Its rows replaced every earlier row of those
    days from the same source, so a re-pull never counts a day twice."""

    org = models.ForeignKey(
        "teams.Organization", on_delete=models.CASCADE, related_name="report_pulls"
    )
    provider = models.ForeignKey(
        "gateway.Provider", on_delete=models.CASCADE, related_name="report_pulls"
    )
    source = models.CharField(max_length=16, choices=ReportSource.choices)
    start = models.DateField()
    end = models.DateField(help_text="Exclusive.")
    status = models.CharField(max_length=16, default="ok")  # ok | failed
    rows = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    filename = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.source} {self.start}..{self.end} {self.status}"


class ProviderUsage(models.Model):
    """One figure of a provider's report: a UTC day, the model as the provider names it, a
    token type, and the provider's project / workspace / API key where the report has them.

    ``tokens`` or ``cost_usd`` may be missing: OpenAI reports tokens (Usage API) and dollars
    (Costs API) in separate rows; a cost export may carry dollars only. Reconciliation sums
    each over the grain it compares, so the two halves meet there."""

    org = models.ForeignKey("teams.Organization", on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey("gateway.Provider", on_delete=models.CASCADE, related_name="+")
    pull = models.ForeignKey(ProviderReportPull, on_delete=models.CASCADE, related_name="usage")
    source = models.CharField(max_length=16, choices=ReportSource.choices)
    day = models.DateField()
    model = models.CharField(max_length=200)
    token_type = models.CharField(max_length=16, choices=TokenType.choices)
    account = models.CharField(
        max_length=200, blank=True, help_text="Project or workspace id, as the provider reports."
    )
    api_key_id = models.CharField(max_length=200, blank=True)
    tokens = models.BigIntegerField(null=True, blank=True)
    requests = models.BigIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)

    class Meta:
        ordering = ["day", "model", "token_type"]
        verbose_name_plural = "provider usage"
        indexes = [
            models.Index(fields=["org", "provider", "day"], name="provider_usage_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model} {self.token_type} {self.tokens} {self.cost_usd}"


class ReconciliationPolicy(models.Model):
    """An organisation's reconciliation settings: the monthly amounts of unmetered spend and of
    price drift past which finance is alerted (blank: no alert of that kind)."""

    org = models.OneToOneField(
        "teams.Organization", on_delete=models.CASCADE, related_name="reconciliation_policy"
    )
    unmetered_alert_usd = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True, default=Decimal("10")
    )
    price_drift_alert_usd = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True, default=Decimal("10")
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "reconciliation policies"

    def __str__(self) -> str:
        return f"reconciliation policy of org {self.org_id}"
