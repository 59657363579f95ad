"""Reporting pages (HTML). The alert page is where every alert email links to."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from reports.selectors import budget_alert_list_for_user


@login_required
def alert_detail(request, pk: int):
    """One alert with its numbers and contributors; another tenant's alert is a 404."""
    from reports.services.notify import alert_context

    alert = get_object_or_404(budget_alert_list_for_user(request.user), pk=pk)
    return render(request, "reports/alert_detail.html", alert_context(alert))


@login_required
def team_statement(request, team_id: int, month: str):
    """A team's monthly chargeback statement (org timezone); ``?format=csv`` downloads it whole,
    ``?format=csv&table=NAME`` one of its tables. A team the viewer may not read is a 404."""
    from django.http import Http404, HttpResponse

    from reports.services.statements import (
        month_parse,
        statement_build,
        statement_csv,
        statement_headline,
    )
    from reports.tables import csv_or_none
    from teams.selectors import team_list_for_user

    team = get_object_or_404(team_list_for_user(request.user), pk=team_id)
    first = month_parse(month)
    if first is None:
        raise Http404("Not a month (YYYY-MM).")
    statement = statement_build(request.user, team=team, first=first)
    filename = f"statement-{team.org.slug}-{team.slug}-{statement.month}"
    if request.GET.get("format") == "csv" and not request.GET.get("table"):
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        return response
    download = csv_or_none(request, statement.tables, filename)
    if download is not None:
        return download
    return render(
        request,
        "reports/statement.html",
        {
            "statement": statement,
            "team": team,
            "org": team.org,
            "tables": statement.tables,
            **statement_headline(statement),
        },
    )
