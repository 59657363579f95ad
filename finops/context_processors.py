"""The header and breadcrumbs of every page, read through the scoped selectors.

``nav`` is lazy: nothing is queried unless a template reads it (the admin's pages, JSON and
CSV answers never do). Everything in it comes from a selector that takes the viewer first, so
the header lists only what the viewer may open; an object the viewer may not read yields no
breadcrumb (the page itself answers 404).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from django.urls import reverse

from evaluation.selectors import experiment_get_for_user, experiment_list_readable
from gateway.selectors import router_list_for_user
from reports.selectors import budget_alert_list_for_user, dashboard_team_list, overview_org_list
from teams.selectors import access_for_user, org_list_for_user, team_list_for_user

RECENT_ALERTS = 8


@dataclass(frozen=True)
class Crumb:
    label: str
    url: str | None = None


class Navigation:
    """What the header may link to for ``request.user``; each list is read once, when used."""

    def __init__(self, request):
        self.request = request
        self.user = request.user

    @cached_property
    def orgs(self) -> list:
        return list(org_list_for_user(self.user).order_by("slug"))

    @cached_property
    def overview_orgs(self) -> list:
        return list(overview_org_list(self.user).order_by("slug"))

    @cached_property
    def teams(self) -> list:
        return list(dashboard_team_list(self.user).order_by("org__slug", "slug"))

    @cached_property
    def routers(self) -> list:
        return list(router_list_for_user(self.user).order_by("org__slug", "name"))

    @cached_property
    def experiments(self) -> list:
        return experiment_list_readable(self.user)

    @cached_property
    def alerts(self) -> list:
        rows = budget_alert_list_for_user(self.user).order_by("-created_at", "-id")
        return list(rows[:RECENT_ALERTS])

    @cached_property
    def reads_audit(self) -> bool:
        access = access_for_user(self.user)
        return any(access.reads_whole_org(org_id) for org_id in access.org_roles)

    @property
    def multi_org(self) -> bool:
        return len(self.orgs) > 1

    @cached_property
    def breadcrumbs(self) -> list[Crumb]:
        """Home, then the page's place (organisation, team, page) from its URL name."""
        match = getattr(self.request, "resolver_match", None)
        if match is None:
            return []
        crumbs = _crumbs_for(self.user, match.view_name, match.kwargs)
        return [Crumb("Home", reverse("home")), *crumbs] if crumbs else []


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": None}
    return {"nav": Navigation(request)}


# --- breadcrumbs -----------------------------------------------------------------------------


def _org_crumb(user, org) -> Crumb:
    readable = overview_org_list(user).filter(pk=org.pk).exists()
    return Crumb(org.name, reverse("reports:org-overview", args=[org.pk]) if readable else None)


def _team_crumbs(user, team_id) -> list[Crumb]:
    team = team_list_for_user(user).filter(pk=team_id).first()
    if team is None:
        return []
    return [
        _org_crumb(user, team.org),
        Crumb(team.name, reverse("reports:team-dashboard", args=[team.pk])),
    ]


def _crumbs_for(user, view_name: str, kwargs: dict) -> list[Crumb]:  # noqa: PLR0911
    if view_name in ("reports:org-overview", "reports:catalog", "reports:invoices"):
        org = org_list_for_user(user).filter(pk=kwargs.get("org_id")).first()
        if org is None:
            return []
        page = {"reports:catalog": "Model catalog", "reports:invoices": "Invoices"}
        crumbs = [_org_crumb(user, org)]
        return crumbs + [Crumb(page[view_name])] if view_name in page else crumbs
    if view_name == "reports:team-dashboard":
        return _team_crumbs(user, kwargs.get("team_id"))
    if view_name == "team-keys":
        crumbs = _team_crumbs(user, kwargs.get("team_id"))
        return crumbs + [Crumb("Keys")] if crumbs else []
    if view_name in ("reports:statement-index", "reports:team-statement"):
        team_id = kwargs.get("team_id")
        crumbs = _team_crumbs(user, team_id)
        if not crumbs:
            return []
        index = reverse("reports:statement-index", args=[team_id])
        if view_name == "reports:statement-index":
            return [*crumbs, Crumb("Statements")]
        return [*crumbs, Crumb("Statements", index), Crumb(str(kwargs.get("month", "")))]
    if view_name == "reports:alert-detail":
        alert = budget_alert_list_for_user(user).filter(pk=kwargs.get("pk")).first()
        if alert is None:
            return []
        return [Crumb("Alerts", reverse("home") + "#alerts"), Crumb(f"Alert {alert.pk}")]
    if view_name == "evaluation:router":
        router = router_list_for_user(user).filter(pk=kwargs.get("router_id")).first()
        if router is None:
            return []
        return [_org_crumb(user, router.org), Crumb(f"Router {router.name}")]
    if view_name == "evaluation:experiment":
        experiment = experiment_get_for_user(user, experiment_id=kwargs.get("experiment_id"))
        if experiment is None:
            return []
        return [_org_crumb(user, experiment.org), Crumb(f"Experiment {experiment.name}")]
    return []
