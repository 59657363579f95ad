"""Template helpers of the report pages: money and percentages in the house format
(``finops.money``: ``usd_display``, ``per_mtok``, ``pct``), and links to the spend pages.

``usd`` is the older six-place rule, kept for the evaluation pages' templates until they move."""

from __future__ import annotations

from django import template

from finops.money import percent_display, usd_per_mtok
from finops.money import usd_display as _usd_display
from finops.money import usd_six as _usd
from reports.selectors import dashboard_team_list, overview_org_list

register = template.Library()


@register.filter
def usd(value) -> str:
    """A JSON money string (12 places) as USD at six places; empty for None."""
    return _usd(None if value in (None, "") else str(value))


@register.filter
def usd_display(value) -> str:
    """An amount in the house format: ``$5,000.00``, ``$0.0013``; empty for None."""
    return _usd_display(value)


@register.filter
def per_mtok(value) -> str:
    """A unit price per million tokens: ``$2.50 / Mtok``; empty for None."""
    return usd_per_mtok(value)


@register.filter
def pct(value) -> str:
    """A number of percent: ``12.5%``, ``0%``, ``<0.1%``; empty for None."""
    return percent_display(value)


@register.inclusion_tag("reports/_spend_links.html", takes_context=True)
def spend_links(context) -> dict:
    """Links to the organisation overviews and team pages the current user may open."""
    user = context["request"].user
    return {
        "spend_orgs": list(overview_org_list(user).order_by("slug")),
        "spend_teams": list(dashboard_team_list(user)),
    }
