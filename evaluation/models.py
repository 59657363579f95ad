"""Evaluation data: prompt/answer pairs from shadow traffic, the labels they get (LLM judge,
feedback from the calling service, a reviewer), and explicit feedback on any request.

Pairs hold prompt and answer text, so they are kept only for a router's retention period
(``expires_at``; ``evaluation.tasks.pairs_purge_task`` deletes the expired) and are stored after
the configured patterns were redacted (``evaluation.redact``).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

MONEY = dict(max_digits=24, decimal_places=12, default=Decimal("0"))
UNIT = [MinValueValidator(0.0), MaxValueValidator(1.0)]
# A weak answer this much worse than the strong one (on a 0..1 quality scale) means the prompt
# needed the strong model.
QUALITY_MARGIN = 0.1


class EvalPair(models.Model):
    """One prompt answered by both of a router's models: the served answer and its shadow."""

    org_id = models.BigIntegerField(db_index=True)
    team_id = models.BigIntegerField(null=True, blank=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    router = models.ForeignKey(
        "gateway.Router", on_delete=models.CASCADE, related_name="pairs", null=True, blank=True
    )
    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    messages = models.JSONField(help_text="The prompt, redacted and clipped.")
    router_score = models.FloatField(null=True, blank=True)
    served = models.CharField(max_length=8, help_text="strong | weak: what the client got.")
    strong_model = models.CharField(max_length=128)
    weak_model = models.CharField(max_length=128)
    strong_answer = models.TextField(blank=True)
    weak_answer = models.TextField(blank=True)
    strong_cost = models.DecimalField(**MONEY)
    weak_cost = models.DecimalField(**MONEY)
    # labels, each a quality in 0..1 (1: a perfect answer)
    judge_strong = models.FloatField(null=True, blank=True, validators=UNIT)
    judge_weak = models.FloatField(null=True, blank=True, validators=UNIT)
    judge_model = models.CharField(max_length=128, blank=True)
    judged_at = models.DateTimeField(null=True, blank=True)
    feedback_score = models.FloatField(
        null=True, blank=True, validators=UNIT, help_text="The caller's score of the served answer."
    )
    review_needs_strong = models.BooleanField(
        null=True,
        blank=True,
        help_text="A reviewer's verdict: did this prompt need the strong model?",
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["router", "-id"], name="pair_router_newest")]

    def __str__(self) -> str:
        return f"pair {self.request_id} ({self.strong_model} / {self.weak_model})"

    def qualities(self) -> tuple[float, float] | None:
        """(strong, weak) quality, from the most direct label there is; None when unlabelled.

        A reviewer's verdict wins (needs strong: 1 / 0; fine: 1 / 1), then the judge's scores,
        then the caller's feedback on the served answer with the other side's judge score or,
        lacking it, the assumption that the other side was as good.
        """
        if self.review_needs_strong is not None:
            return (1.0, 0.0) if self.review_needs_strong else (1.0, 1.0)
        if self.judge_strong is not None and self.judge_weak is not None:
            return self.judge_strong, self.judge_weak
        if self.feedback_score is not None:
            other = self.judge_weak if self.served == "strong" else self.judge_strong
            other = self.feedback_score if other is None else other
            if self.served == "strong":
                return self.feedback_score, other
            return other, self.feedback_score
        return None

    def needs_strong(self) -> bool | None:
        q = self.qualities()
        if q is None:
            return None
        return q[1] < q[0] - QUALITY_MARGIN


class Feedback(models.Model):
    """A calling service's score for one of its own requests (``POST /v1/feedback``)."""

    org_id = models.BigIntegerField()
    key_id = models.BigIntegerField()
    request_id = models.CharField(max_length=64)
    score = models.FloatField(validators=UNIT)
    comment = models.CharField(max_length=1000, blank=True)
    model = models.CharField(max_length=128, blank=True, help_text="The model that answered.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key_id", "request_id"], name="one_feedback_per_request"
            )
        ]

    def __str__(self) -> str:
        return f"feedback {self.request_id}: {self.score}"


class Experiment(models.Model):
    """An A/B test: ``share`` of the calls to ``route`` made with ``key`` (or for ``feature``)
    go to ``candidate`` instead; the ledger marks each call's arm."""

    org = models.ForeignKey("teams.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.SlugField(max_length=128)
    route = models.CharField(max_length=200, help_text="The model or group name clients ask for.")
    candidate = models.ForeignKey("gateway.LLMModel", on_delete=models.PROTECT, related_name="+")
    share = models.FloatField(default=0.1, validators=UNIT)
    key = models.ForeignKey(
        "teams.VirtualKey", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    feature = models.ForeignKey(
        "teams.Feature", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["org__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="experiment_name_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.route} -> {self.candidate} ({self.share:.0%})"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors = {}
        if self.candidate_id and self.org_id and self.candidate.org_id != self.org_id:
            errors["candidate"] = "belongs to another organisation"
        if self.key_id and self.org_id and self.key.org_id != self.org_id:
            errors["key"] = "belongs to another organisation"
        if self.feature_id and self.org_id and self.feature.team.org_id != self.org_id:
            errors["feature"] = "belongs to another organisation"
        if not (self.key_id or self.feature_id):
            errors["key"] = "an experiment applies to a key or a feature"
        if errors:
            raise ValidationError(errors)
