"""Who may change what: every role decision of the API, in one place.

Reads are decided by the selectors in ``teams.selectors`` (a row a user may not read is simply
not in their queryset, so it answers 404, never 403). Writes are decided here, by one rule per
subject over the user's ``Access`` map. Superusers get ``admin`` on every organisation inside
``access_for_user`` and therefore pass through these same rules, not around them.

The matrix in ``docs/api.md`` is rendered from this module by ``permission_matrix_markdown`` and a
test keeps the two identical.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from teams.models import (
    Budget,
    CachePolicy,
    Feature,
    Membership,
    Organization,
    Role,
    Team,
    VirtualKey,
)
from teams.selectors import Access, access_for_user


class Subject(StrEnum):
    ORG = "organization"
    TEAM = "team"
    MEMBERSHIP = "membership"
    FEATURE = "feature"
    KEY = "key"
    BUDGET = "budget"
    CACHE = "cache policy"
    AUDIT = "audit entry"
    PROVIDER = "provider"
    MODEL = "model"
    PRICE = "model price"
    GROUP = "group"
    ROUTER = "router"
    PAIR = "evaluation pair"
    INVOICE = "invoice reconciliation"


Rule = Callable[[Access, int, "int | None"], bool]


def _org_admin(access: Access, org_id: int, team_id: int | None) -> bool:
    return access.is_org_admin(org_id)


def _budget_manager(access: Access, org_id: int, team_id: int | None) -> bool:
    """Admin and finance; a lead reads its team's budgets but raising them is not its call."""
    return access.manages_budgets(org_id)


def _team_manager(access: Access, org_id: int, team_id: int | None) -> bool:
    """The org admin, or a lead of this very team (a lead's role does not reach other teams)."""
    if access.is_org_admin(org_id):
        return True
    return team_id is not None and access.team_roles.get(team_id) == Role.LEAD


def _nobody(access: Access, org_id: int, team_id: int | None) -> bool:
    return False


MANAGE_RULES: dict[Subject, Rule] = {
    Subject.ORG: _org_admin,
    Subject.TEAM: _org_admin,
    Subject.MEMBERSHIP: _org_admin,
    Subject.FEATURE: _team_manager,
    Subject.KEY: _team_manager,
    Subject.BUDGET: _budget_manager,
    Subject.CACHE: _org_admin,
    Subject.AUDIT: _nobody,  # append-only; written by the services themselves
    Subject.PROVIDER: _org_admin,
    Subject.MODEL: _org_admin,
    Subject.PRICE: _org_admin,
    Subject.GROUP: _org_admin,
    Subject.ROUTER: _org_admin,
    Subject.PAIR: _team_manager,  # reviewing labels: the org admin or the team's lead
    Subject.INVOICE: _budget_manager,  # importing provider reports, the alert thresholds
}

# What the selectors let each role read, per subject (documentation of ``teams.selectors``).
READ_SCOPES: dict[Subject, dict[str, str]] = {
    Subject.ORG: {"admin": "own org", "finance": "own org", "lead": "own org", "member": "own org"},
    Subject.TEAM: {"admin": "all", "finance": "all", "lead": "own teams", "member": "own teams"},
    Subject.MEMBERSHIP: {
        "admin": "all",
        "finance": "all",
        "lead": "own teams",
        "member": "own teams",
    },
    Subject.FEATURE: {"admin": "all", "finance": "all", "lead": "own teams", "member": "own teams"},
    Subject.KEY: {"admin": "all", "finance": "all", "lead": "own teams", "member": "own teams"},
    Subject.BUDGET: {
        "admin": "all",
        "finance": "all",
        "lead": "own teams + org-wide",
        "member": "own teams + org-wide",
    },
    Subject.CACHE: {
        "admin": "all",
        "finance": "all",
        "lead": "own teams + org-wide",
        "member": "own teams + org-wide",
    },
    Subject.AUDIT: {"admin": "all", "finance": "all", "lead": "-", "member": "-"},
    Subject.PROVIDER: {"admin": "all", "finance": "all", "lead": "all", "member": "all"},
    Subject.MODEL: {"admin": "all", "finance": "all", "lead": "all", "member": "all"},
    Subject.PRICE: {"admin": "all", "finance": "all", "lead": "all", "member": "all"},
    Subject.GROUP: {"admin": "all", "finance": "all", "lead": "all", "member": "all"},
    Subject.ROUTER: {"admin": "all", "finance": "all", "lead": "all", "member": "all"},
    Subject.PAIR: {"admin": "all", "finance": "all", "lead": "own teams", "member": "own teams"},
    Subject.INVOICE: {"admin": "all", "finance": "all", "lead": "-", "member": "-"},
}


def scope_of(obj: Any) -> tuple[int, int | None]:
    """The (org id, team id or None) an object belongs to, for the manage rules."""
    if isinstance(obj, Organization):
        return obj.pk, None
    if type(obj).__name__ == "EvalPair":  # evaluation app: ids, not foreign keys
        return obj.org_id, obj.team_id
    if isinstance(obj, Team):
        return obj.org_id, obj.pk
    if isinstance(obj, Feature):
        return obj.team.org_id, obj.team_id
    if isinstance(obj, VirtualKey):
        return obj.org_id, obj.team_id
    if isinstance(obj, Membership):
        return obj.org_id, obj.team_id
    if isinstance(obj, Budget):
        team_id = obj.team_id
        if team_id is None and obj.feature_id:
            team_id = obj.feature.team_id
        if team_id is None and obj.key_id:
            team_id = obj.key.team_id
        return obj.org_id, team_id
    if isinstance(obj, CachePolicy):
        team_id = obj.team_id or (obj.feature.team_id if obj.feature_id else None)
        return obj.org_id, team_id or (obj.key.team_id if obj.key_id else None)
    org_id = getattr(obj, "org_id", None)
    if org_id is None and hasattr(obj, "model"):  # ModelPrice
        org_id = obj.model.org_id
    if org_id is None:
        raise TypeError(f"no organisation scope for {type(obj).__name__}")
    return org_id, None


def may_manage(access: Access, subject: Subject, *, org_id: int, team_id: int | None) -> bool:
    """May this user create, change or delete a ``subject`` in this org (and team)?"""
    if org_id not in access.org_ids:
        return False
    return MANAGE_RULES[subject](access, org_id, team_id)


def may_manage_object(access: Access, subject: Subject, obj: Any) -> bool:
    org_id, team_id = scope_of(obj)
    return may_manage(access, subject, org_id=org_id, team_id=team_id)


def may_manage_anywhere(access: Access, subject: Subject) -> bool:
    """Whether the user may manage ``subject`` in at least one org or team: a cheap first gate
    so that, e.g., a plain member's key mint is refused before its body is even read."""
    rule = MANAGE_RULES[subject]
    if any(rule(access, org_id, None) for org_id in access.org_ids):
        return True
    return any(rule(access, org_id, team_id) for team_id, org_id in access.team_orgs.items())


class RolePermission(BasePermission):
    """DRF gate for the scoped viewsets: reads pass (the queryset is already scoped), writes need
    the manage rule of ``view.subject``. Creates are re-checked against the target org/team
    after validation, in the viewset, because the target is only known from the body."""

    message = "Your role does not allow this change."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
        if lookup in getattr(view, "kwargs", {}):
            # a detail route: the object lookup answers first, so that another org's object
            # is a 404 for everyone, then has_object_permission decides
            return True
        return may_manage_anywhere(access_for_user(request.user), view.subject)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return may_manage_object(access_for_user(request.user), view.subject, obj)


_ROLE_SAMPLES: dict[str, Access] = {
    Role.ADMIN: Access(user_id=1, org_roles={1: Role.ADMIN}),
    Role.FINANCE: Access(user_id=1, org_roles={1: Role.FINANCE}),
    Role.LEAD: Access(user_id=1, team_roles={10: Role.LEAD}, team_orgs={10: 1}),
    Role.MEMBER: Access(user_id=1, team_roles={10: Role.MEMBER}, team_orgs={10: 1}),
}


def _manage_cell(subject: Subject, access: Access) -> str:
    own_team = may_manage(access, subject, org_id=1, team_id=10)
    other_team = may_manage(access, subject, org_id=1, team_id=11)
    org_wide = may_manage(access, subject, org_id=1, team_id=None)
    if org_wide and other_team:
        return "all"
    if own_team:
        return "own teams"
    return "-"


def permission_matrix_markdown() -> str:
    """The role matrix as a markdown table, evaluated from the rules above."""
    roles = [Role.ADMIN, Role.FINANCE, Role.LEAD, Role.MEMBER]
    lines = [
        "| subject | "
        + " | ".join(f"{r} reads" for r in roles)
        + " | "
        + " | ".join(f"{r} manages" for r in roles)
        + " |",
        "|---" * (1 + 2 * len(roles)) + "|",
    ]
    for subject in Subject:
        reads = [READ_SCOPES[subject][r] for r in roles]
        manages = [_manage_cell(subject, _ROLE_SAMPLES[r]) for r in roles]
        lines.append(f"| {subject} | " + " | ".join(reads + manages) + " |")
    return "\n".join(lines) + "\n"
