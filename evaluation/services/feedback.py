"""Explicit feedback from a calling service: ``POST /v1/feedback {"request_id", "score"}``.

A key may score only requests made with it: the request must be in the ledger under that key
(another key's request, or an unknown one, is "not found" alike, so nothing leaks). A second
score for the same request replaces the first. A pair stored for the request takes the score as
its feedback label.
"""

from __future__ import annotations

import math

from django.db import transaction

from evaluation.models import EvalPair, Feedback
from gateway.hooks import HookError
from gateway.models import UsageEvent


class FeedbackError(HookError):
    """A refused feedback; the gateway answers it in the OpenAI error shape."""


def feedback_validate(body) -> tuple[str, float, str]:
    if not isinstance(body, dict):
        raise FeedbackError(400, "invalid_request_error", "The body must be a JSON object.")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 64:
        raise FeedbackError(
            400, "invalid_value", "'request_id' must be a request id string.", "request_id"
        )
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise FeedbackError(400, "invalid_type", "'score' must be a number from 0 to 1.", "score")
    if not 0 <= score <= 1:
        raise FeedbackError(400, "invalid_value", "'score' must be between 0 and 1.", "score")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > 1000:
        raise FeedbackError(
            400,
            "invalid_value",
            "'comment' must be a string of at most 1000 characters.",
            "comment",
        )
    return request_id, float(score), comment


@transaction.atomic
def feedback_record(*, org_id: int, key_id: int, body) -> Feedback:
    request_id, score, comment = feedback_validate(body)
    served = (
        UsageEvent.objects.filter(request_id=request_id, key_id=key_id, org_id=org_id, shadow=False)
        .order_by("-attempt")
        .values_list("model", "status")
        .first()
    )
    if served is None:
        raise FeedbackError(
            404,
            "request_not_found",
            f"No request '{request_id}' made with this key (it may not be recorded yet).",
            "request_id",
        )
    feedback, _ = Feedback.objects.update_or_create(
        key_id=key_id,
        request_id=request_id,
        defaults={"org_id": org_id, "score": score, "comment": comment, "model": served[0]},
    )
    EvalPair.objects.filter(request_id=request_id, org_id=org_id).update(feedback_score=score)
    return feedback
