"""Storing and expiring evaluation pairs. Prompt and answers are redacted before they are
written and kept for the router's ``pair_retention_days``."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from evaluation.models import EvalPair
from finops.redact import redact, redact_value
from gateway.routing.features import messages_clip

ANSWER_MAX_CHARS = 20_000


def pair_store(
    *,
    org_id: int,
    team_id: int | None,
    key_id: int | None,
    router_id: int | None,
    request_id: str,
    messages,
    router_score: float | None,
    served: str,
    strong_model: str,
    weak_model: str,
    strong_answer: str,
    weak_answer: str,
    strong_cost: Decimal,
    weak_cost: Decimal,
    retention_days: int,
    now: datetime | None = None,
) -> EvalPair | None:
    """Write one pair (redacted, clipped); a second pair for the same request is ignored."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return EvalPair.objects.create(
                org_id=org_id,
                team_id=team_id,
                key_id=key_id,
                router_id=router_id,
                request_id=request_id,
                created_at=now,
                expires_at=now + timedelta(days=max(1, retention_days)),
                messages=redact_value(messages_clip(messages)),
                router_score=router_score,
                served=served,
                strong_model=strong_model,
                weak_model=weak_model,
                strong_answer=redact(strong_answer[:ANSWER_MAX_CHARS]),
                weak_answer=redact(weak_answer[:ANSWER_MAX_CHARS]),
                strong_cost=strong_cost,
                weak_cost=weak_cost,
            )
    except IntegrityError:
        return None


def pairs_purge(*, now: datetime | None = None) -> int:
    """Delete every pair past its retention; returns how many."""
    deleted, _ = EvalPair.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


def pair_review(*, pair: EvalPair, needs_strong: bool | None, actor) -> EvalPair:
    """A reviewer's verdict (None clears it); audited like every control-plane change."""
    from teams.models import Organization
    from teams.services import audit_record

    before = {"needs_strong": pair.review_needs_strong}
    pair.review_needs_strong = needs_strong
    pair.reviewed_by = actor if getattr(actor, "pk", None) else None
    pair.reviewed_at = timezone.now()
    pair.save(update_fields=["review_needs_strong", "reviewed_by", "reviewed_at"])
    audit_record(
        actor=actor,
        org=Organization.objects.get(pk=pair.org_id),
        action="pair.reviewed",
        obj=pair,
        before=before,
        after={"needs_strong": needs_strong},
    )
    return pair
