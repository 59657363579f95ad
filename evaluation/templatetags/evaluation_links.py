"""Template helpers of the evaluation pages: ratios as percentages, and link lists to the router
and A/B pages the current user may open (for the overview and home pages)."""

from __future__ import annotations

from django import template

from evaluation.selectors import experiment_list_readable, router_list_for_org
from gateway.selectors import router_list_for_user

register = template.Library()


@register.filter
def percent(value) -> str:
    """A 0..1 ratio as a percentage with one decimal; empty for None."""
    if value in (None, ""):
        return ""
    return f"{float(value) * 100:.1f}%"


@register.inclusion_tag("evaluation/_links.html", takes_context=True)
def router_links(context, org=None) -> dict:
    """Routers (and experiments) of ``org``, or of every org of the user, they may open."""
    user = context["request"].user
    if org is not None:
        routers = list(router_list_for_org(user, org.pk))
        experiments = experiment_list_readable(user, org_id=org.pk)
    else:
        routers = list(router_list_for_user(user).order_by("org__slug", "name"))
        experiments = experiment_list_readable(user)
    return {"routers": routers, "experiments": experiments, "with_org": org is None}
