"""Tenant-scoped reads. Every queryset that returns control-plane or spend data to a user is
built here, from the user's memberships; superusers act as ``admin`` of every organisation
through the same code path (not a bypass). Anything that skips scoping is named ``dangerously_*``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from teams.models import (
    AuditEntry,
    Budget,
    CachePolicy,
    Feature,
    Membership,
    Organization,
    Role,
    Team,
    VirtualKey,
)


@dataclass
class Access:
    """What one user may see: org-wide roles per org, team roles per team."""

    user_id: int | None
    org_roles: dict[int, str] = field(default_factory=dict)  # org_id -> admin | finance
    team_roles: dict[int, str] = field(default_factory=dict)  # team_id -> lead | member
    team_orgs: dict[int, int] = field(default_factory=dict)  # team_id -> org_id

    @property
    def org_ids(self) -> set[int]:
        return set(self.org_roles) | set(self.team_orgs.values())

    def org_role(self, org_id: int) -> str | None:
        return self.org_roles.get(org_id)

    def is_org_admin(self, org_id: int) -> bool:
        return self.org_roles.get(org_id) == Role.ADMIN

    def reads_whole_org(self, org_id: int) -> bool:
        return self.org_roles.get(org_id) in (Role.ADMIN, Role.FINANCE)

    def manages_budgets(self, org_id: int) -> bool:
        return self.reads_whole_org(org_id)

    def lead_team_ids(self) -> set[int]:
        return {t for t, r in self.team_roles.items() if r == Role.LEAD}

    def member_team_ids(self) -> set[int]:
        return set(self.team_roles)

    def manages_team_keys(self, team_id: int, org_id: int) -> bool:
        return self.is_org_admin(org_id) or self.team_roles.get(team_id) == Role.LEAD

    def reads_team(self, team_id: int, org_id: int) -> bool:
        return self.reads_whole_org(org_id) or team_id in self.team_roles


def access_for_user(user) -> Access:
    """Build the access map once per request (cached on the user object)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return Access(user_id=None)
    cached = getattr(user, "_finops_access", None)
    if cached is not None:
        return cached
    access = Access(user_id=user.pk)
    if user.is_superuser:
        access.org_roles = dict.fromkeys(
            Organization.objects.values_list("id", flat=True), Role.ADMIN
        )
    for org_id, team_id, role in Membership.objects.filter(user=user).values_list(
        "org_id", "team_id", "role"
    ):
        if team_id is None:
            # admin outranks finance if both somehow exist
            if access.org_roles.get(org_id) != Role.ADMIN:
                access.org_roles[org_id] = role
        else:
            if access.team_roles.get(team_id) != Role.LEAD:
                access.team_roles[team_id] = role
            access.team_orgs[team_id] = org_id
    user._finops_access = access
    return access


def _team_filter(access: Access, prefix: str = "") -> Q:
    """Rows whose team the user may read: whole-org readers' orgs, plus the user's own teams."""
    whole = [o for o in access.org_roles if access.reads_whole_org(o)]
    return Q(**{f"{prefix}org_id__in": whole}) | Q(**{f"{prefix}id__in": list(access.team_roles)})


def org_list_for_user(user) -> QuerySet[Organization]:
    return Organization.objects.filter(id__in=access_for_user(user).org_ids)


def team_list_for_user(user) -> QuerySet[Team]:
    return Team.objects.filter(_team_filter(access_for_user(user))).select_related("org")


def membership_list_for_user(user) -> QuerySet[Membership]:
    access = access_for_user(user)
    whole = [o for o in access.org_roles if access.reads_whole_org(o)]
    return Membership.objects.filter(
        Q(org_id__in=whole) | Q(team_id__in=list(access.team_roles)) | Q(user_id=access.user_id)
    ).select_related("user", "org", "team")


def feature_list_for_user(user) -> QuerySet[Feature]:
    access = access_for_user(user)
    whole = [o for o in access.org_roles if access.reads_whole_org(o)]
    return Feature.objects.filter(
        Q(team__org_id__in=whole) | Q(team_id__in=list(access.team_roles))
    ).select_related("team", "team__org")


def key_list_for_user(user) -> QuerySet[VirtualKey]:
    access = access_for_user(user)
    whole = [o for o in access.org_roles if access.reads_whole_org(o)]
    return VirtualKey.objects.filter(
        Q(org_id__in=whole) | Q(team_id__in=list(access.team_roles))
    ).select_related("org", "team", "default_feature")


def budget_list_for_user(user) -> QuerySet[Budget]:
    """Whole-org readers see every budget; team members see their teams' budgets (team, feature
    and key scopes) and the org-wide ones of their organisation."""
    access = access_for_user(user)
    whole = [o for o in access.org_roles if access.reads_whole_org(o)]
    teams = list(access.team_roles)
    return Budget.objects.filter(
        Q(org_id__in=whole)
        | Q(team_id__in=teams)
        | Q(feature__team_id__in=teams)
        | Q(key__team_id__in=teams)
        | Q(scope="org", org_id__in=list(set(access.team_orgs.values())))
    ).select_related("org", "team", "feature", "key", "downgrade_to")


def cache_policy_list_for_user(user) -> QuerySet[CachePolicy]:
    """Whole-org readers see every policy; team members see their teams' policies (team,
    feature and key scopes) and the org-wide ones (org and model scopes) of their organisation."""
    access = access_for_user(user)
    whole = [o for o in access.org_roles if access.reads_whole_org(o)]
    teams = list(access.team_roles)
    return CachePolicy.objects.filter(
        Q(org_id__in=whole)
        | Q(team_id__in=teams)
        | Q(feature__team_id__in=teams)
        | Q(key__team_id__in=teams)
        | Q(scope__in=("org", "model"), org_id__in=list(set(access.team_orgs.values())))
    ).select_related("org", "team", "feature", "feature__team", "feature__team__org", "key")


def audit_list_for_user(user) -> QuerySet[AuditEntry]:
    access = access_for_user(user)
    whole = [o for o in access.org_roles if access.reads_whole_org(o)]
    return AuditEntry.objects.filter(org_id__in=whole).select_related("org")


def org_scoped(user, queryset: QuerySet, *, org_field: str = "org_id") -> QuerySet:
    """Scope any org-owned queryset (providers, models, groups, routers) to the user's orgs."""
    return queryset.filter(**{f"{org_field}__in": access_for_user(user).org_ids})


def dangerously_all_keys() -> QuerySet[VirtualKey]:
    """Unscoped: for the gateway's key cache and system jobs only, never for a user."""
    return VirtualKey.objects.all()
