"""Evaluation's side of the gateway hooks (``gateway.hooks``), registered at app start.

The gateway cannot import evaluation (it is a lower layer), so evaluation hands it the three
things only evaluation knows: how to record a key's feedback, how to store a shadowed pair,
and which experiments are active. Changes to an experiment bump the gateway's config stamp here
too, so every gateway process reloads its routing.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from evaluation.models import Experiment
from evaluation.services.feedback import feedback_record
from evaluation.services.pairs import pair_store
from gateway.hooks import hook_register
from gateway.records import ExperimentRecord, ModelRecord
from gateway.services.stamps import CONFIG, stamp_bump


def experiments_load(org_id: int, models: dict[str, ModelRecord]) -> list[ExperimentRecord]:
    """The org's active experiments whose candidate the gateway can route to."""
    found = []
    rows = Experiment.objects.filter(org_id=org_id, active=True).select_related(
        "candidate", "feature"
    )
    for e in rows.order_by("name"):
        candidate = models.get(e.candidate.name)
        if candidate is None:  # an inactive candidate: the experiment waits
            continue
        found.append(
            ExperimentRecord(
                name=e.name,
                route=e.route,
                candidate=candidate,
                share=e.share,
                key_id=e.key_id,
                feature=e.feature.slug if e.feature_id else "",
                team_id=e.feature.team_id if e.feature_id else None,
            )
        )
    return found


def _experiment_changed(sender, **kwargs) -> None:
    stamp_bump(name=CONFIG)


def register() -> None:
    hook_register("feedback_record", feedback_record)
    hook_register("pair_store", pair_store)
    hook_register("experiments_load", experiments_load)
    post_save.connect(_experiment_changed, sender=Experiment, dispatch_uid="experiment-stamp")
    post_delete.connect(_experiment_changed, sender=Experiment, dispatch_uid="experiment-stamp")
