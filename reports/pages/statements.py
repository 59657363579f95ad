"""A team's monthly chargeback statement page (``/reports/teams/<id>/statements/<YYYY-MM>/``):
its tables, each a CSV download, and the whole statement as one CSV (the savings as ``saving``
and ``lever_cost`` lines, their amounts in ``saved_usd`` and ``cost_usd``). The figures are
``reports.pages.statement_data``; ``?format=pdf`` is the page as a PDF (WeasyPrint), marked
DRAFT while the month is open; chargeback alerts (recorded by the alert job) link here.
"""

from __future__ import annotations

import csv
import io

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils import timezone

from finops.money import usd_display
from reports.pages.statement_data import Statement, month_parse, statement_build
from reports.periods import local_date, org_zone
from reports.tables import _csv_cell, csv_or_none
from teams.selectors import team_list_for_user

STATEMENT_CSV_COLUMNS = (
    "month",
    "team",
    "section",
    "name",
    "requests",
    "attempts",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "share_percent",
    "limit_usd",
    "used_percent",
    "saved_usd",
)


def statement_csv(statement: Statement) -> str:
    """The whole statement as one long CSV (a row per line of every table, ``section`` naming
    the table), with the same numbers as the page."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATEMENT_CSV_COLUMNS)
    base = {"month": statement.month, "team": statement.team.slug}
    s = statement.table("summary").rows[0]
    writer.writerow(
        _line(
            base,
            section="total",
            name="production",
            requests=s["requests"],
            attempts=s["attempts"],
            prompt_tokens=s["prompt_tokens"],
            completion_tokens=s["completion_tokens"],
            cost_usd=s["cost"],
            share_percent="100.00" if statement.total_cost else "0.00",
            saved_usd=statement.savings["saved"],
        )
    )
    writer.writerow(
        _line(
            base,
            section="total",
            name="evaluation",
            requests=s["evaluation_requests"],
            cost_usd=s["evaluation_cost"],
        )
    )
    for name in ("features", "models", "endpoints", "keys"):
        for r in statement.table(name).rows:
            writer.writerow(
                _line(
                    base,
                    section=name.removesuffix("s"),
                    name=r["name"],
                    requests=r["requests"],
                    attempts=r["attempts"],
                    prompt_tokens=r["prompt_tokens"],
                    completion_tokens=r["completion_tokens"],
                    cost_usd=r["cost"],
                    share_percent=r["share"],
                )
            )
    for r in statement.table("budgets").rows:
        writer.writerow(
            _line(
                base,
                section="budget",
                name=f"{r['scope']} ({r['period']}; {r['window']})",
                cost_usd=r["spent"],
                limit_usd=r["limit"],
                used_percent=r["used"],
            )
        )
    for r in statement.table("evaluation").rows:
        writer.writerow(
            _line(
                base,
                section="evaluation",
                name=f"{r['feature']} / {r['model']}",
                requests=r["requests"],
                attempts=r["attempts"],
                cost_usd=r["cost"],
            )
        )
    for r in statement.table("savings").rows:
        writer.writerow(
            _line(
                base, section="saving", name=r["lever"], cost_usd=r["spend"], saved_usd=r["saved"]
            )
        )
    for r in statement.table("lever_costs").rows:
        writer.writerow(_line(base, section="lever_cost", name=r["name"], cost_usd=r["cost"]))
    return out.getvalue()


def _line(base: dict, **values) -> list:
    row = {**base, **values}
    return [_csv_cell(row.get(c, "")) for c in STATEMENT_CSV_COLUMNS]


def statement_headline(statement: Statement) -> dict:
    """Rounded figures for people (the tables keep full precision)."""
    savings = statement.savings
    return {
        "total_usd": usd_display(statement.total_cost),
        "evaluation_usd": usd_display(statement.evaluation_cost),
        "saved_usd": usd_display(savings["saved"]),
        "without_levers_usd": usd_display(savings["without_levers"]),
        "lever_cost_usd": usd_display(savings["lever_cost"]),
    }


@login_required
def team_statement(request, team_id: int, month: str):
    """A team's monthly chargeback statement (org timezone); ``?format=csv`` downloads it whole,
    ``?format=csv&table=NAME`` one of its tables. A team the viewer may not read is a 404."""
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
    context = {
        "statement": statement,
        "team": team,
        "org": team.org,
        "tables": statement.tables,
        **statement_headline(statement),
    }
    if request.GET.get("format") == "pdf":
        return _statement_pdf(request, statement, context, filename)
    return render(request, "reports/statement.html", context)


def _statement_pdf(request, statement: Statement, context: dict, filename: str) -> HttpResponse:
    """The page as a PDF finance can file (WeasyPrint), marked DRAFT while the month is still
    open in the organisation's timezone. The layout renders without its header, scripts or
    stylesheet link (``pdf`` in base.html), so WeasyPrint fetches nothing."""
    try:
        import weasyprint  # noqa: PLC0415 - needs pango at import; only this branch uses it
    except (ImportError, OSError):
        return HttpResponse(
            "PDF statements need WeasyPrint and pango on the server.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    today = local_date(timezone.now(), org_zone(statement.team.org))
    draft = statement.after > today
    html = render_to_string(
        "reports/statement.html", {**context, "pdf": True, "pdf_draft": draft}, request=request
    )
    pdf = weasyprint.HTML(string=html, url_fetcher=_no_fetch).write_pdf()
    response = HttpResponse(pdf, content_type="application/pdf")
    suffix = "-draft" if draft else ""
    response["Content-Disposition"] = f'attachment; filename="{filename}{suffix}.pdf"'
    return response


def _no_fetch(url: str, *args, **kwargs):
    """WeasyPrint loads nothing from outside the document: no network, no file system."""
    raise ValueError(f"not fetched: {url}")
