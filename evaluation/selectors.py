"""Tenant-scoped reads of evaluation data, on ``teams.selectors.access_for_user``.

Whole-org readers (admin, finance) read every pair, feedback and experiment of their orgs;
leads and members the pairs of their own teams. Nobody reads another org's.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from evaluation.models import EvalPair, Experiment
from teams.selectors import access_for_user


def pair_list_for_user(user) -> QuerySet[EvalPair]:
    access = access_for_user(user)
    whole = [o for o in access.org_roles if access.reads_whole_org(o)]
    return EvalPair.objects.filter(
        Q(org_id__in=whole)
        | Q(team_id__in=list(access.team_roles), org_id__in=list(access.org_ids))
    )


def experiment_list_for_user(user) -> QuerySet[Experiment]:
    access = access_for_user(user)
    return Experiment.objects.filter(org_id__in=list(access.org_ids))
