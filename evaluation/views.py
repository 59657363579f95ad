"""The router and A/B pages (HTML with server-rendered tables, CSV downloads of each) and their
JSON. A router, team or experiment the user may not read is a 404."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from evaluation.page_tables import experiment_tables, router_tables
from evaluation.selectors_pages import (
    experiment_get_for_user,
    router_scope_get,
    router_scope_teams,
)
from evaluation.services.experiment_report import experiment_range, experiment_report
from evaluation.services.router_report import router_report, zone
from reports.ranges import PRESETS, RangeError, date_range_from_params
from reports.selectors_dashboard import overview_org_list
from reports.tables import csv_or_none
from teams.selectors import access_for_user


def _router_scope(request, router_id: int):
    scope = router_scope_get(request.user, router_id=router_id, team_id=request.GET.get("team"))
    if scope is None:
        raise Http404("No such router.")
    return scope


def _query(request) -> str:
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    return query.urlencode()


@login_required
def router_page(request, router_id: int):
    scope = _router_scope(request, router_id)
    now = timezone.now()
    error = None
    try:
        rng = date_range_from_params(request.GET, tz=zone(scope.router.org), now=now)
    except RangeError as exc:
        rng, error = date_range_from_params({}, tz=zone(scope.router.org), now=now), str(exc)
    data = router_report(scope, rng, now=now)
    tables = router_tables(data)
    team = scope.team.slug if scope.team else "org"
    name = f"{scope.router.org.slug}-{scope.router.name}-{team}-{rng.start}-{rng.end}"
    download = csv_or_none(request, tables, name)
    if download is not None:
        return download
    data_url = reverse("evaluation:router-data", args=[scope.router.pk])
    query = _query(request)
    context = {
        "router": scope.router,
        "scope": scope,
        "teams": list(router_scope_teams(scope)),
        "org_wide_allowed": access_for_user(request.user).reads_whole_org(scope.router.org_id),
        "data": data,
        "tables": {t.name: t for t in tables},
        "range": rng,
        "range_error": error,
        "presets": PRESETS,
        "data_url": f"{data_url}?{query}" if query else data_url,
        "overview_url": (
            reverse("reports:org-overview", args=[scope.router.org_id])
            if overview_org_list(request.user).filter(pk=scope.router.org_id).exists()
            else None
        ),
    }
    return render(request, "evaluation/router.html", context)


@login_required
def router_data(request, router_id: int):
    scope = _router_scope(request, router_id)
    now = timezone.now()
    try:
        rng = date_range_from_params(request.GET, tz=zone(scope.router.org), now=now)
    except RangeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(router_report(scope, rng, now=now))


def _experiment(request, experiment_id: int):
    experiment = experiment_get_for_user(request.user, experiment_id=experiment_id)
    if experiment is None:
        raise Http404("No such experiment.")
    return experiment


@login_required
def experiment_page(request, experiment_id: int):
    experiment = _experiment(request, experiment_id)
    now = timezone.now()
    error = None
    try:
        rng = experiment_range(experiment, request.GET, now=now)
    except RangeError as exc:
        rng, error = experiment_range(experiment, {}, now=now), str(exc)
    data = experiment_report(experiment, rng, now=now)
    tables = experiment_tables(data)
    name = f"{experiment.org.slug}-{experiment.name}-{rng.start}-{rng.end}"
    download = csv_or_none(request, tables, name)
    if download is not None:
        return download
    data_url = reverse("evaluation:experiment-data", args=[experiment.pk])
    query = _query(request)
    context = {
        "experiment": experiment,
        "data": data,
        "tables": {t.name: t for t in tables},
        "range": rng,
        "range_error": error,
        "presets": PRESETS,
        "data_url": f"{data_url}?{query}" if query else data_url,
    }
    return render(request, "evaluation/experiment.html", context)


@login_required
def experiment_data(request, experiment_id: int):
    experiment = _experiment(request, experiment_id)
    now = timezone.now()
    try:
        rng = experiment_range(experiment, request.GET, now=now)
    except RangeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(experiment_report(experiment, rng, now=now))
