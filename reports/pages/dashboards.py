"""Dashboard pages (HTML with server-rendered tables; Plotly draws the charts from the JSON
endpoints) and those JSON endpoints. An organisation or team the user may not read is a 404.

Their figures are ``reports.pages.dashboard_data`` (one dict per page, the JSON as served), their
tables ``reports.pages.dashboard_tables`` (built from that dict, so page, CSV and charts agree)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from reports.pages.dashboard_data import org_overview, team_page
from reports.pages.dashboard_tables import overview_tables, team_tables
from reports.pages.invoices_data import invoice_coverage
from reports.periods import org_zone
from reports.ranges import PRESETS, DateRange, RangeError, date_range_from_params
from reports.selectors import dashboard_team_list, overview_org_list
from reports.tables import csv_or_none


def _range(request, org, now) -> tuple[DateRange, str | None]:
    """The requested range, or the default one and the reason the requested one was refused."""
    tz = org_zone(org)
    try:
        return date_range_from_params(request.GET, tz=tz, now=now), None
    except RangeError as exc:
        return date_range_from_params({}, tz=tz, now=now), str(exc)


def _page_context(request, rng: DateRange, error: str | None, data_url: str) -> dict:
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    return {
        "range": rng,
        "range_error": error,
        "presets": PRESETS,
        "data_url": f"{data_url}?{query.urlencode()}" if query else data_url,
    }


@login_required
def spend_home(request):
    """The "Spend" link: the first organisation overview the user may open, else the first
    team page, else home."""
    org = overview_org_list(request.user).order_by("slug").first()
    if org is not None:
        return redirect("reports:org-overview", org_id=org.pk)
    team = dashboard_team_list(request.user).first()
    if team is not None:
        return redirect("reports:team-dashboard", team_id=team.pk)
    return redirect("home")


@login_required
def org_overview_page(request, org_id: int):
    org = get_object_or_404(overview_org_list(request.user), pk=org_id)
    now = timezone.now()
    rng, error = _range(request, org, now)
    data = org_overview(request.user, org, rng, now=now)
    tables = overview_tables(data)
    download = csv_or_none(request, tables, f"{org.slug}-overview-{rng.start}-{rng.end}")
    if download is not None:
        return download
    context = {
        "org": org,
        "data": data,
        "tables": {t.name: t for t in tables},
        "invoice_coverage": invoice_coverage(request.user, org, now=now),
        "invoices_url": reverse("reports:invoices", args=[org.pk]),
        **_page_context(request, rng, error, reverse("reports:org-overview-data", args=[org.pk])),
    }
    return render(request, "reports/overview.html", context)


@login_required
def org_overview_data(request, org_id: int):
    org = get_object_or_404(overview_org_list(request.user), pk=org_id)
    now = timezone.now()
    try:
        rng = date_range_from_params(request.GET, tz=org_zone(org), now=now)
    except RangeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(org_overview(request.user, org, rng, now=now))


@login_required
def team_dashboard_page(request, team_id: int):
    team = get_object_or_404(dashboard_team_list(request.user), pk=team_id)
    now = timezone.now()
    rng, error = _range(request, team.org, now)
    data = team_page(request.user, team, rng, now=now)
    tables = team_tables(data)
    name = f"{team.org.slug}-{team.slug}-{rng.start}-{rng.end}"
    download = csv_or_none(request, tables, name)
    if download is not None:
        return download
    context = {
        "team": team,
        "data": data,
        "tables": {t.name: t for t in tables},
        "overview_url": (
            reverse("reports:org-overview", args=[team.org_id])
            if overview_org_list(request.user).filter(pk=team.org_id).exists()
            else None
        ),
        **_page_context(
            request, rng, error, reverse("reports:team-dashboard-data", args=[team.pk])
        ),
    }
    return render(request, "reports/team.html", context)


@login_required
def team_dashboard_data(request, team_id: int):
    team = get_object_or_404(dashboard_team_list(request.user), pk=team_id)
    now = timezone.now()
    try:
        rng = date_range_from_params(request.GET, tz=org_zone(team.org), now=now)
    except RangeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(team_page(request.user, team, rng, now=now))
