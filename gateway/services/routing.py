"""Writes and reads around the cost router: trained scorer models, the prompt sample, and
threshold calibration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db import transaction

from gateway.models import Router, RouterModel, RouterPrompt
from gateway.routing.linear import LinearModel
from gateway.routing.scorers import scorer_build
from gateway.services.catalog import router_snapshot
from teams.services import audit_record


def router_scorer_get(*, router: Router):
    """The scorer the gateways use for this router now (its active trained model included)."""
    row = RouterModel.objects.filter(router=router, active=True).first()
    model = LinearModel.from_bytes(row.weights, row.params) if row is not None else None
    return scorer_build(router.scorer, model=model)


@transaction.atomic
def router_model_save(
    *, router: Router, model: LinearModel, actor, evaluation: dict | None = None, activate=True
) -> RouterModel:
    """Store a trained model; when ``activate``, it replaces the active one (gateways reload)."""
    if activate:
        RouterModel.objects.filter(router=router, active=True).update(active=False)
    row = RouterModel.objects.create(
        router=router,
        kind="learned",
        params=model.params(),
        weights=model.to_bytes(),
        evaluation=evaluation or {},
        active=activate,
    )
    audit_record(
        actor=actor,
        org=router.org,
        action="router.model_saved",
        obj=router,
        after={"model": row.pk, "active": activate, "evaluation": evaluation or {}},
    )
    return row


def router_prompts_recent(*, router: Router, last: int) -> list:
    """The ``messages`` of the router's newest stored prompts, newest first."""
    rows = RouterPrompt.objects.filter(router=router).order_by("-id")[:last]
    return [row.messages for row in rows.only("messages")]


@dataclass(frozen=True)
class Calibration:
    threshold: float
    before: float
    strong_share: float  # the share the new threshold sends to strong, on the prompts used
    wanted_share: float
    prompts: int
    scorer: str


def threshold_for_share(scores, strong_share: float) -> float:
    """The (1 - share) quantile of the scores: ``score >= threshold`` holds for the wanted share
    (as near as ties allow). Share 0 gives a threshold just above every score."""
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if len(s) == 0:
        raise ValueError("no prompts to calibrate on")
    k = round(strong_share * len(s))
    if k <= 0:
        return float(min(1.0, np.nextafter(s[0], np.inf)))
    return float(s[min(k, len(s)) - 1])


def router_calibrate(
    *, router: Router, actor, strong_share: float, prompts: list, dry_run: bool = False
) -> Calibration:
    """Set the threshold so that ``strong_share`` of these prompts would go to the strong
    model, scored by the router's current scorer; audited; gateways reload on the stamp."""
    if not 0.0 <= strong_share <= 1.0:
        raise ValueError("strong_share must be between 0 and 1")
    scorer = router_scorer_get(router=router)
    scores = np.array([scorer.score(p) for p in prompts])
    threshold = threshold_for_share(scores, strong_share)
    result = Calibration(
        threshold=threshold,
        before=router.threshold,
        strong_share=float((scores >= threshold).mean()),
        wanted_share=strong_share,
        prompts=len(scores),
        scorer=scorer.kind,
    )
    if dry_run:
        return result
    with transaction.atomic():
        before = router_snapshot(router)
        router.threshold = threshold
        router.full_clean()
        router.save(update_fields=["threshold", "updated_at"])  # the signal bumps the stamp
        audit_record(
            actor=actor,
            org=router.org,
            action="router.calibrated",
            obj=router,
            before=before,
            after={
                **router_snapshot(router),
                "strong_share": strong_share,
                "achieved_share": result.strong_share,
                "prompts": result.prompts,
                "scorer": result.scorer,
            },
        )
    return result
