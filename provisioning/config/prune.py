"""``--prune``: delete what the file no longer lists, driven by one table, ``PRUNE_TABLE``.

Each row is one prunable kind: where its rows are, how a row is named in the file, what to
keep without a word, what refuses the prune (an error that stops the whole apply), and how a
row is deleted and audited. ``plan_prune`` is the one loop over the table. The table's order
is the deletion order, dependants first: cache policies and budgets before what they are on,
budgets before the models they downgrade to,
routers and groups before their models, models before their providers. Rows marked
``per_team`` run for each team of the file in turn, on that team's objects.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from typing import Any

from gateway.models import LLMModel, ModelGroup, Provider, Router
from gateway.services import catalog
from provisioning.config.changes import Plan
from provisioning.config.plan_cache import managed_policies, policy_ident, policy_label
from provisioning.config.plan_teams import budget_ident, budget_label, managed_budgets
from provisioning.config.spec import ConfigSpec
from teams import cache_services, services
from teams.models import Budget, BudgetScope, Feature, Membership, Role, Team


@dataclass(frozen=True)
class Prunable:
    """One kind of object that ``--prune`` deletes when the file no longer lists it.

    ``scope`` below is the ``ConfigSpec``, or for a ``per_team`` kind the ``TeamSpec``.
    """

    kind: str  # what a refusal and ``Plan.pruned`` call it
    rows: Callable[[Plan, Any], Iterable]  # the organisation's objects of the kind, in scope
    ident: Callable[[Any], Hashable]  # an object's name, as the file writes it
    listed: Callable[[Any], set]  # the names the file lists, in scope
    label: Callable[[Any], str]  # the object in the plan's "delete ..." line
    audit: str  # the audit action its deletion records
    # deletes one object (and records ``audit``), called as ``service(<arg>=obj, actor=...)``;
    # without one, the applier records ``audit`` with ``snapshot(obj)`` and deletes the object
    service: Callable[..., None] | None = None
    arg: str = ""
    snapshot: Callable[[Any], dict] | None = None
    keep: Callable[[Any], bool] | None = None  # objects prune leaves alone without a word
    refuse: Callable[[Plan, Any], str | None] | None = None  # why it must not go: an error
    note: str = ""
    per_team: bool = False


def _names(section: str, attr: str) -> Callable[[Any], set]:
    """The ``attr`` of each item of the scope's ``section``."""
    return lambda scope: {getattr(item, attr) for item in getattr(scope, section)}


def _org_rows(model) -> Callable[[Plan, Any], Iterable]:
    return lambda p, _scope: model.objects.filter(org=p.org)


def _team_keys_usable(p: Plan, team: Team) -> str | None:
    usable = team.keys.filter(revoked_at__isnull=True).count()
    if not usable:
        return None
    return (
        f"teams: team {team.slug!r} is not in the file but has {usable} usable "
        "key(s); revoke them before pruning it"
    )


def _model_a_key_budget_downgrades_to(p: Plan, model: LLMModel) -> str | None:
    """Key budgets are not in files; one that downgrades to the model must change first
    (unless its key goes with a team this prune deletes)."""
    blockers = Budget.objects.filter(downgrade_to=model, scope=BudgetScope.KEY).exclude(
        key__team_id__in=p.pruned.get("team", [])
    )
    if not blockers.exists():
        return None
    names = ", ".join(sorted(str(b) for b in blockers[:5]))
    return (
        f"models: model {model.name!r} is not in the file but key budgets downgrade "
        f"to it ({names}); change them first"
    )


PRUNE_TABLE: tuple[Prunable, ...] = (
    Prunable(
        kind="cache policy",
        rows=lambda p, _spec: managed_policies(p),
        ident=policy_ident,
        listed=lambda spec: {c.ident for c in spec.cache_policies},
        label=lambda c: policy_label(policy_ident(c)),
        audit="cache_policy.deleted",
        service=cache_services.cache_policy_delete,
        arg="policy",
    ),
    Prunable(
        kind="budget",
        rows=lambda p, _spec: managed_budgets(p),
        ident=budget_ident,
        listed=lambda spec: {b.ident for b in spec.budgets},
        label=lambda b: budget_label(budget_ident(b)),
        audit="budget.deleted",
        service=services.budget_delete,
        arg="budget",
    ),
    Prunable(
        kind="lead",
        per_team=True,
        rows=lambda p, ts: Membership.objects.filter(
            org=p.org, team__slug=ts.slug, role=Role.LEAD
        ).select_related("user", "team"),
        ident=lambda m: m.user.username.lower(),
        listed=lambda ts: {u.lower() for u in ts.leads},
        label=lambda m: f"lead {m.user.username} of team {m.team.slug}",
        audit="member.removed",
        service=services.membership_remove,
        arg="membership",
    ),
    Prunable(
        kind="feature",
        per_team=True,
        rows=lambda p, ts: Feature.objects.filter(
            team__org=p.org, team__slug=ts.slug
        ).select_related("team"),
        ident=attrgetter("slug"),
        listed=_names("features", "slug"),
        # an unclaimed feature was named by traffic, not by a file: left to the lead to claim
        keep=lambda f: not f.claimed,
        label=lambda f: f"feature {f.team.slug}/{f.slug}",
        audit="feature.deleted",
        service=services.feature_delete,
        arg="feature",
    ),
    Prunable(
        kind="team",
        rows=_org_rows(Team),
        ident=attrgetter("slug"),
        listed=_names("teams", "slug"),
        refuse=_team_keys_usable,
        label=lambda t: f"team {t.slug}",
        audit="team.deleted",
        service=services.team_delete,
        arg="team",
        note="with its features, revoked keys, members and budgets",
    ),
    Prunable(
        kind="router",
        rows=_org_rows(Router),
        ident=attrgetter("name"),
        listed=_names("routers", "name"),
        label=lambda r: f"router {r.name}",
        audit="router.deleted",
        service=catalog.router_delete,
        arg="router",
    ),
    Prunable(
        kind="group",
        rows=_org_rows(ModelGroup),
        ident=attrgetter("name"),
        listed=_names("groups", "name"),
        label=lambda g: f"group {g.name}",
        audit="group.deleted",
        service=catalog.group_delete,
        arg="group",
    ),
    Prunable(
        kind="model",
        rows=_org_rows(LLMModel),
        ident=attrgetter("name"),
        listed=_names("models", "name"),
        refuse=_model_a_key_budget_downgrades_to,
        label=lambda m: f"model {m.name}",
        audit="model.deleted",
        snapshot=catalog.model_snapshot,  # no catalog service deletes a model
        note="with its price history; the ledger keeps its name",
    ),
    Prunable(
        kind="provider",
        rows=_org_rows(Provider),
        ident=attrgetter("slug"),
        listed=_names("providers", "slug"),
        label=lambda pr: f"provider {pr.slug}",
        audit="provider.deleted",
        service=catalog.provider_delete,
        arg="provider",
    ),
)


def _passes(spec: ConfigSpec) -> Iterator[tuple[Prunable, Any]]:
    """``(kind, scope)`` in table order; a run of ``per_team`` kinds goes team by team."""
    for per_team, run in groupby(PRUNE_TABLE, key=attrgetter("per_team")):
        kinds = list(run)
        for scope in spec.teams if per_team else [spec]:
            for kind in kinds:
                yield kind, scope


def _delete_and_record(p: Plan, kind: Prunable, obj) -> None:
    """The deletion of a kind without a service: the audit entry, then the row."""
    services.audit_record(
        actor=p.actor, org=p.org, action=kind.audit, obj=obj, before=kind.snapshot(obj)
    )
    obj.delete()


def plan_prune(p: Plan) -> None:
    """Add a delete change per object the file no longer lists, or an error where a guard
    refuses one."""
    if p.org is None:
        return
    for kind, scope in _passes(p.spec):
        listed = kind.listed(scope)
        for obj in kind.rows(p, scope):
            if kind.ident(obj) in listed or (kind.keep is not None and kind.keep(obj)):
                continue
            refusal = kind.refuse(p, obj) if kind.refuse is not None else None
            if refusal:
                p.errors.append(refusal)
                continue
            p.pruned.setdefault(kind.kind, []).append(obj.pk)
            label = kind.label(obj)
            if kind.service is None:
                p.add("delete", label, {}, _delete_and_record, p, kind, obj, note=kind.note)
            else:
                kwargs = {kind.arg: obj, "actor": p.actor}
                p.add("delete", label, {}, kind.service, note=kind.note, **kwargs)
