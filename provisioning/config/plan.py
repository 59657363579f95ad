"""``config_plan``: the ordered changes that applying a spec would make; reads only.

The plan is built kind by kind, in the order the changes must run: the organisation, then
the catalogue (providers, models with prices, groups, routers: ``plan_catalog.py``), then
teams with their members and features, and budgets (``plan_teams.py``), the response
cache's policies (``plan_cache.py``), and with ``prune``
the deletions last (``prune.py``). This module owns that order and the organisation itself.
"""

from __future__ import annotations

from provisioning.config.changes import Change, Plan, changed, created, diff
from provisioning.config.plan_cache import plan_cache_policies
from provisioning.config.plan_catalog import plan_groups, plan_models, plan_providers, plan_routers
from provisioning.config.plan_teams import plan_budgets, plan_teams
from provisioning.config.prune import plan_prune
from provisioning.config.spec import ConfigError, ConfigSpec
from teams import services
from teams.models import Organization


def plan_org(p: Plan) -> None:
    """Create the organisation, or update its name and timezone where the file gives them."""
    spec = p.spec
    label = f"organization {spec.org_slug}"
    if p.org is None:
        wanted = {"name": spec.org_label, "timezone": spec.timezone or "UTC"}
        p.add("create", label, created(wanted), _create_org, p, wanted)
        return
    wanted = {"timezone": spec.timezone} if spec.timezone else {}
    if spec.org_label != spec.org_slug:  # a display name was written, not just the slug
        wanted["name"] = spec.org_label
    fields = diff({"name": p.org.name, "timezone": p.org.timezone}, wanted)
    if fields:
        p.add(
            "update",
            label,
            fields,
            services.org_update,
            org=p.org,
            actor=p.actor,
            **changed(fields),
        )


def _create_org(p: Plan, wanted: dict) -> None:
    """Create the organisation; the changes after this one find it as ``p.org``."""
    p.org = Organization(slug=p.spec.org_slug, **wanted)
    p.org.full_clean()
    p.org.save()
    services.audit_record(
        actor=p.actor,
        org=p.org,
        action="org.created",
        obj=p.org,
        after={"slug": p.org.slug, **wanted},
    )


# the planners, in the order their changes run; a team's members and features follow it
PLANNERS = (
    plan_org,
    plan_providers,
    plan_models,
    plan_groups,
    plan_routers,
    plan_teams,
    plan_budgets,
    plan_cache_policies,
)


def config_plan(*, spec: ConfigSpec, prune: bool = False, actor=None) -> list[Change]:
    """The changes that applying ``spec`` would make, in order; reads only.

    Raises ``ConfigError`` if a prune guard refuses a deletion (every refusal is listed).
    """
    p = Plan(spec, prune=prune, actor=actor)
    for planner in PLANNERS:
        planner(p)
    if prune:
        plan_prune(p)
    if p.errors:
        raise ConfigError(p.errors)
    return p.changes
