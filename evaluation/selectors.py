"""Tenant-scoped reads of evaluation data, on ``teams.selectors.access_for_user``.

Whole-org readers (admin, finance) read every pair, feedback and experiment of their orgs;
leads and members the pairs of their own teams. Nobody reads another org's.

Behind the router and A/B pages: a router belongs to an organisation. Whole-org readers see its
figures for the whole organisation, or for one of its teams if they ask; leads and members see
only the traffic and pairs of one of *their* teams (the one asked for, else their first).
Anything else, another org's router or another team's figures, is absent: the views answer 404.
An experiment is readable by its org's whole-org readers and by the leads and members of the
team its key or feature belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from evaluation.models import EvalPair, Experiment, Feedback
from finops.ids import id_parse
from gateway.models import Router, UsageEvent
from gateway.selectors import router_list_for_user
from teams.models import Team
from teams.selectors import access_for_user, team_list_for_user


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


# --- the router and A/B pages --------------------------------------------------------------------


@dataclass(frozen=True)
class RouterScope:
    """A router and whose traffic on it a user reads: one team, or (``team=None``) the org."""

    user: object
    router: Router
    team: Team | None

    @property
    def org_wide(self) -> bool:
        return self.team is None


def router_scope_get(user, *, router_id: int, team_id: str | None = None) -> RouterScope | None:
    """The router ``user`` may open with the team they may read it for; None means 404."""
    router = router_list_for_user(user).filter(pk=router_id).first()
    if router is None:
        return None
    access = access_for_user(user)
    wanted = id_parse(team_id) if team_id not in (None, "") else None
    if team_id not in (None, "") and wanted is None:
        return None
    if access.reads_whole_org(router.org_id):
        if wanted is None:
            return RouterScope(user=user, router=router, team=None)
        team = team_list_for_user(user).filter(org_id=router.org_id, pk=wanted).first()
        return RouterScope(user=user, router=router, team=team) if team is not None else None
    own = (
        team_list_for_user(user)
        .filter(org_id=router.org_id, id__in=list(access.team_roles))
        .order_by("slug", "id")
    )
    team = own.filter(pk=wanted).first() if wanted is not None else own.first()
    return RouterScope(user=user, router=router, team=team) if team is not None else None


def router_scope_teams(scope: RouterScope) -> QuerySet[Team]:
    """The teams the scope's user may pick on this router's page."""
    access = access_for_user(scope.user)
    teams = team_list_for_user(scope.user).filter(org_id=scope.router.org_id)
    if not access.reads_whole_org(scope.router.org_id):
        teams = teams.filter(id__in=list(access.team_roles))
    return teams.order_by("slug", "id")


def router_usage_rows(
    scope: RouterScope, *, start: datetime, end: datetime, shadow: bool = False
) -> QuerySet[UsageEvent]:
    """Ledger rows of the router in ``[start, end)`` (on ``usage_org_started``), production or
    evaluation (``shadow``), narrowed to the scope's team."""
    rows = UsageEvent.objects.filter(
        org_id=scope.router.org_id,
        started_at__gte=start,
        started_at__lt=end,
        router=scope.router.name,
        shadow=shadow,
    )
    if scope.team is not None:
        rows = rows.filter(team_id=scope.team.pk)
    return rows


def router_pair_list(scope: RouterScope, *, now: datetime) -> QuerySet[EvalPair]:
    """The router's unexpired pairs the scope reads, newest first."""
    pairs = pair_list_for_user(scope.user).filter(
        router=scope.router, org_id=scope.router.org_id, expires_at__gt=now
    )
    if scope.team is not None:
        pairs = pairs.filter(team_id=scope.team.pk)
    return pairs.order_by("-id")


def router_list_for_org(user, org_id: int) -> QuerySet[Router]:
    return router_list_for_user(user).filter(org_id=org_id).order_by("name")


def experiment_get_for_user(user, *, experiment_id: int) -> Experiment | None:
    """The experiment if ``user`` reads its whole org or belongs to its key's or feature's
    team; None (404) otherwise."""
    experiment = (
        experiment_list_for_user(user)
        .select_related("org", "candidate", "key", "feature")
        .filter(pk=experiment_id)
        .first()
    )
    if experiment is None:
        return None
    access = access_for_user(user)
    if access.reads_whole_org(experiment.org_id):
        return experiment
    teams = {
        experiment.key.team_id if experiment.key_id else None,
        experiment.feature.team_id if experiment.feature_id else None,
    } - {None}
    return experiment if teams & set(access.team_roles) else None


def experiment_list_readable(user, *, org_id: int | None = None) -> list[Experiment]:
    """Experiments ``user`` may open (for link lists)."""
    rows = experiment_list_for_user(user).select_related("key", "feature")
    if org_id is not None:
        rows = rows.filter(org_id=org_id)
    access = access_for_user(user)
    out = []
    for e in rows:
        teams = {e.key.team_id if e.key_id else None, e.feature.team_id if e.feature_id else None}
        if access.reads_whole_org(e.org_id) or (teams - {None}) & set(access.team_roles):
            out.append(e)
    return out


def experiment_usage_rows(
    experiment: Experiment, *, start: datetime, end: datetime
) -> QuerySet[UsageEvent]:
    """Production ledger rows of the experiment (both arms) in ``[start, end)``."""
    return UsageEvent.objects.filter(
        org_id=experiment.org_id,
        started_at__gte=start,
        started_at__lt=end,
        experiment=experiment.name,
        shadow=False,
    )


def experiment_feedback(experiment: Experiment, request_ids: QuerySet) -> QuerySet[Feedback]:
    """Feedback of the org on the given requests (a subquery of ledger request ids)."""
    return Feedback.objects.filter(org_id=experiment.org_id, request_id__in=request_ids)
