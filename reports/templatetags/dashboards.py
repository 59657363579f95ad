"""Template helpers of the dashboards: money for people, and links to the spend pages."""

from __future__ import annotations

from django import template

from finops.money import usd_six as _usd
from reports.selectors import dashboard_team_list, overview_org_list

register = template.Library()


@register.filter
def usd(value) -> str:
    """A JSON money string (12 places) as USD at six places; empty for None."""
    return _usd(None if value in (None, "") else str(value))


@register.inclusion_tag("reports/_spend_links.html", takes_context=True)
def spend_links(context) -> dict:
    """Links to the organisation overviews and team pages the current user may open."""
    user = context["request"].user
    return {
        "spend_orgs": list(overview_org_list(user).order_by("slug")),
        "spend_teams": list(dashboard_team_list(user)),
    }
