"""The planners of the organisation's people and money: teams (with their limits), their
members (leads), their features, and the budgets at every level.

Each team is planned with its members and features right after it, so the plan reads team by
team; the budgets come after all teams, since a feature budget needs its feature. The changes
call ``teams.services``, which validates and records the audit entry.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from provisioning.config.changes import Plan, changed, created, diff
from provisioning.config.spec import TEAM_LIMITS, BudgetSpec, FeatureSpec, TeamSpec
from teams import services
from teams.models import Budget, BudgetScope, Feature, Membership, Role, Team

# --- teams and their limits -----------------------------------------------------------------


def plan_teams(p: Plan) -> None:
    """Each team, then its members and features."""
    existing = {t.slug: t for t in p.existing(Team.objects.all())}
    features = (
        {
            (f.team.slug, f.slug): f
            for f in Feature.objects.filter(team__org=p.org).select_related("team")
        }
        if p.org
        else {}
    )
    for ts in p.spec.teams:
        current = existing.get(ts.slug)
        _plan_team(p, ts, current)
        plan_members(p, ts, current)
        for fs in ts.features:
            plan_feature(p, ts, fs, features.get((ts.slug, fs.slug)))


def _plan_team(p: Plan, ts: TeamSpec, current: Team | None) -> None:
    """The team's name and limits (a limit the file leaves out is kept)."""
    label = f"team {ts.slug}"
    if current is None:
        wanted = {"name": ts.label, **ts.limits}
        p.add("create", label, created(wanted), _create_team, p, ts)
        return
    wanted = dict(ts.limits)
    if ts.label != ts.slug:  # a display name was written, not just the slug
        wanted["name"] = ts.label
    fields = diff({k: getattr(current, k) for k in ("name", *TEAM_LIMITS)}, wanted)
    if fields:
        p.add(
            "update",
            label,
            fields,
            services.team_update,
            team=current,
            actor=p.actor,
            **changed(fields),
        )


def _create_team(p: Plan, ts: TeamSpec) -> None:
    services.team_create(actor=p.actor, org=p.org, slug=ts.slug, name=ts.label, **ts.limits)


# --- members (leads) ------------------------------------------------------------------------


def plan_members(p: Plan, ts: TeamSpec, team: Team | None) -> None:
    """Each lead the file names: a new membership (and user if need be) or a role change."""
    User = get_user_model()
    for username in ts.leads:
        user = User.objects.filter(username__iexact=username).first()
        membership = None
        if user is not None and team is not None:
            membership = Membership.objects.filter(user=user, org=p.org, team=team).first()
        label = f"lead {username} of team {ts.slug}"
        if membership is None:
            note = "" if user is not None else "new user without a password"
            fields = {"role": (None, Role.LEAD)}
            p.add("create", label, fields, _add_lead, p, username, ts.slug, note=note)
        elif membership.role != Role.LEAD:
            p.add(
                "update",
                label,
                {"role": (membership.role, Role.LEAD)},
                services.membership_update,
                membership=membership,
                actor=p.actor,
                role=Role.LEAD,
                team=team,
            )


def _add_lead(p: Plan, username: str, team_slug: str) -> None:
    services.membership_add(
        actor=p.actor,
        org=p.org,
        user=services.user_get_or_create(email_or_username=username),
        role=Role.LEAD,
        team=p.team(team_slug),
    )


# --- features -------------------------------------------------------------------------------


def plan_feature(p: Plan, ts: TeamSpec, fs: FeatureSpec, current: Feature | None) -> None:
    """A feature of the file; listing one that traffic named claims it."""
    label = f"feature {ts.slug}/{fs.slug}"
    if current is None:
        wanted = {"name": fs.label, "default_model": fs.default_model}
        p.add("create", label, created(wanted), _create_feature, p, ts, fs)
        return
    wanted: dict[str, Any] = {"claimed": True}  # listing a feature claims it
    if fs.label != fs.slug:
        wanted["name"] = fs.label
    if fs.default_model is not None:
        wanted["default_model"] = fs.default_model
    fields = diff(
        {
            "claimed": current.claimed,
            "name": current.name,
            "default_model": current.default_model,
        },
        wanted,
    )
    if fields:
        p.add(
            "update",
            label,
            fields,
            services.feature_update,
            feature=current,
            actor=p.actor,
            **changed(fields),
        )


def _create_feature(p: Plan, ts: TeamSpec, fs: FeatureSpec) -> None:
    services.feature_create(
        actor=p.actor,
        team=p.team(ts.slug),
        slug=fs.slug,
        name=fs.label,
        default_model=fs.default_model or "",
    )


# --- budgets --------------------------------------------------------------------------------

BudgetIdent = tuple[str, str | None, str | None, str]  # scope, team, feature, period


def budget_ident(b: Budget) -> BudgetIdent:
    """How the file names a budget: ``BudgetSpec.ident`` of the same budget."""
    if b.scope == BudgetScope.FEATURE:
        return (b.scope, b.feature.team.slug, b.feature.slug, b.period)
    if b.scope == BudgetScope.TEAM:
        return (b.scope, b.team.slug, None, b.period)
    return (b.scope, None, None, b.period)


def budget_label(ident: BudgetIdent) -> str:
    scope, team, feature, period = ident
    where = {"org": "org", "team": f"team {team}", "feature": f"feature {team}/{feature}"}
    return f"{period} budget of {where[scope]}"


def managed_budgets(p: Plan):
    """The budgets a file describes (org, team and feature scopes; key budgets are not)."""
    return p.existing(
        Budget.objects.filter(
            scope__in=[BudgetScope.ORG, BudgetScope.TEAM, BudgetScope.FEATURE]
        ).select_related("team", "feature", "feature__team", "downgrade_to")
    )


def _budget_current(budget: Budget) -> dict[str, Any]:
    return {
        "limit_usd": budget.limit_usd,
        "action": budget.action,
        "downgrade_to": budget.downgrade_to.name if budget.downgrade_to_id else None,
        "fail_open": budget.fail_open,
        "alert_thresholds": sorted(budget.alert_thresholds or []),
        "recipients": list(budget.recipients or []),
    }


def plan_budgets(p: Plan) -> None:
    existing = {budget_ident(b): b for b in managed_budgets(p)}
    for bs in p.spec.budgets:
        wanted = {
            "limit_usd": bs.limit_usd,
            "action": bs.action,
            "downgrade_to": bs.downgrade_to,
            "fail_open": bs.fail_open,
            "alert_thresholds": bs.alert_thresholds,
            "recipients": bs.recipients,
        }
        current = existing.get(bs.ident)
        label = budget_label(bs.ident)
        if current is None:
            fields = created(wanted)
            if not bs.fail_open:
                del fields["fail_open"]  # the default; only a fail-open budget says so
            p.add("create", label, fields, _create_budget, p, bs)
            continue
        fields = diff(_budget_current(current), wanted)
        if fields:
            p.add("update", label, fields, _update_budget, p, current, bs)


def _budget_values(p: Plan, bs: BudgetSpec) -> dict[str, Any]:
    return {
        "limit_usd": bs.limit_usd,
        "action": bs.action,
        "downgrade_to": p.model(bs.downgrade_to),
        "fail_open": bs.fail_open,
        "alert_thresholds": bs.alert_thresholds,
        "recipients": bs.recipients,
    }


def _create_budget(p: Plan, bs: BudgetSpec) -> None:
    team = p.team(bs.team) if bs.team else None
    feature = Feature.objects.get(team=team, slug=bs.feature) if bs.feature else None
    services.budget_create(
        actor=p.actor,
        org=p.org,
        scope=bs.scope,
        period=bs.period,
        team=team,
        feature=feature,
        **_budget_values(p, bs),
    )


def _update_budget(p: Plan, budget: Budget, bs: BudgetSpec) -> None:
    services.budget_update(budget=budget, actor=p.actor, **_budget_values(p, bs))
