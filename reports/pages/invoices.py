"""The "Invoice vs ledger" page (``/reports/orgs/<id>/invoices/?provider=&month=YYYY-MM``): one
provider's month as its own report against the gateway's ledger, the difference split into
matched, unmetered, over-metered and price drift, a six-month trend, drill-down by model and by
day (``&day=YYYY-MM-DD``: the day's models and token types, and the provider's projects / keys),
every table a CSV download (``?format=csv&table=NAME`` as on every report page, or ``?csv=NAME``).
Its reads are
``reports.pages.invoices_data``; its tables are built here, from the page those reads return.

Its forms post back to the same page (``action=``): ``upload`` (a CSV report), ``pull`` (the
provider's admin API, now) and ``policy`` (the alert thresholds) for admins and finance
(``Subject.INVOICE``); ``accept`` (a price the provider's figures imply) for admins only
(``Subject.PRICE``: a catalog change). The writes are ``reports.services.invoices``. An
organisation the user does not read whole is a 404 (team leads and members included); a write
without the role a 403.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from finops.money import money, usd_exact
from gateway.selectors import model_list_for_user
from reports.invoices.csv_reports import MAX_BYTES
from reports.invoices.figures import ReportError
from reports.invoices.pull import pull_supported
from reports.invoices.reconcile import Row, rows_group
from reports.models import ProviderReportPull, ReconciliationPolicy, TokenType
from reports.pages.dashboard_tables import Link
from reports.pages.invoices_data import (
    TREND_MONTHS,
    ZERO,
    InvoicePage,
    Selection,
    invoice_page_build,
    invoice_selection,
    pull_hint,
)
from reports.periods import DAY
from reports.selectors import overview_org_list
from reports.services.invoices import (
    price_accept,
    reconciliation_policy_set,
    report_import,
    report_pull,
)
from reports.tables import Column, Table, csv_or_none
from teams.permissions import Subject, may_manage
from teams.selectors import access_for_user

# --- tables --------------------------------------------------------------------------------------

PARTS = ("provider_cost", "ledger_cost", "difference", "unmetered", "over_metered", "price_drift")
CLASS_LABELS = {
    "matched": "matched",
    "unmetered": "unmetered",
    "over_metered": "over-metered",
    "price_drift": "price drift",
}


def _num(key: str, label: str, kind: str = "") -> Column:
    return Column(key, label, numeric=True, kind=kind)


def _usd(key: str, label: str) -> Column:
    return _num(key, label, "usd")


FIGURE_COLUMNS = (
    _num("provider_tokens", "Provider tokens"),
    _num("ledger_tokens", "Ledger tokens"),
    _usd("provider_cost", "Provider USD"),
    _usd("ledger_cost", "Ledger USD"),
    _usd("difference", "Difference"),
    _usd("unmetered", "Unmetered"),
    _usd("over_metered", "Over-metered"),
    _usd("price_drift", "Price drift"),
    _usd("matched", "Matched"),
    Column("class", "Class"),
)
TREND_COLUMNS = (
    Column("month", "Month"),
    _usd("provider_cost", "Provider USD"),
    _usd("ledger_cost", "Ledger USD"),
    _usd("difference", "Difference"),
    _usd("unmetered", "Unmetered"),
    _usd("over_metered", "Over-metered"),
    _usd("price_drift", "Price drift"),
    _num("coverage", "Coverage", "pct"),
    _num("days", "Days compared"),
)
ACCOUNT_COLUMNS = (
    Column("account", "Project / workspace"),
    Column("api_key_id", "API key"),
    _num("tokens", "Provider tokens"),
    _usd("cost", "Provider USD"),
)
IMPORT_COLUMNS = (
    Column("created", "When (UTC)"),
    Column("source", "Source"),
    Column("days", "Days"),
    Column("status", "Status"),
    _num("rows", "Figures"),
    Column("filename", "File"),
    Column("by", "By"),
    Column("error", "Error"),
)


def _money(value: Decimal | None) -> str:
    """A money cell at the ledger's precision (the column shows it in the house format; the CSV
    keeps it whole); empty for no figure."""
    return "" if value is None else money(value)


def _percent(share: Decimal | None) -> str:
    """A 0..1 share as a number of percent at two places, as the dashboards' percentages (the
    column's ``pct`` kind shows it)."""
    return "" if share is None else str((share * 100).quantize(Decimal("0.01")))


def _figures(r: Row) -> dict:
    return {
        "provider_tokens": "" if r.provider_tokens is None else r.provider_tokens,
        "ledger_tokens": r.ledger_tokens,
        "provider_cost": _money(r.provider_cost),
        "ledger_cost": _money(r.ledger_cost),
        "difference": _money(r.difference),
        "unmetered": _money(r.unmetered),
        "over_metered": _money(r.over_metered),
        "price_drift": _money(r.price_drift),
        "matched": _money(r.matched),
        "class": CLASS_LABELS[r.klass],
    }


def invoice_tables(page: InvoicePage) -> list[Table]:
    """The page's tables (each a CSV download), built from the page's rows."""
    sel = page.selection
    tables = [
        Table(
            "trend",
            f"Last {TREND_MONTHS} months",
            TREND_COLUMNS,
            [
                {
                    "month": Link(m["month"], sel.url_for(month=m["month"])),
                    **{k: _money(m["totals"].get(k, ZERO)) for k in PARTS},
                    "coverage": _percent(m["coverage"]),
                    "days": m["days"],
                }
                for m in reversed(page.trend)
            ],
        ),
        Table(
            "models",
            f"By model, {sel.month}",
            (Column("model", "Model"), *FIGURE_COLUMNS),
            [
                {"model": r.model or "(no model)", **_figures(r)}
                for r in sorted(
                    rows_group(page.rows, ("model",)),
                    key=lambda r: (-abs(r.provider_cost or r.ledger_cost), r.model),
                )
            ],
        ),
        Table(
            "days",
            f"By day, {sel.month} (click a day for its models and token types)",
            (Column("day", "Day"), *FIGURE_COLUMNS),
            [
                {"day": Link(r.day.isoformat(), sel.url_for(day=r.day.isoformat())), **_figures(r)}
                for r in rows_group(page.rows, ("day",))
            ],
        ),
        Table(
            "accounts",
            f"By the provider's project / key, {sel.month}",
            ACCOUNT_COLUMNS,
            _account_rows([r for r in page.rows if r.unmetered > 0]),
        ),
        Table("imports", "Recent imports", IMPORT_COLUMNS, [_import_row(p) for p in page.pulls]),
    ]
    if sel.day is not None:
        rows = [r for r in page.rows if r.day == sel.day]
        tables.append(
            Table(
                "day",
                f"{sel.day.isoformat()} by model and token type",
                (
                    Column("model", "Model"),
                    Column("token_type", "Token type"),
                    *(c for c in FIGURE_COLUMNS if c.key != "matched"),  # room for the price
                    _num("implied", "Provider $/Mtok", "per_mtok"),
                ),
                [
                    {
                        "model": r.model or "(no model)",
                        "token_type": r.token_type,
                        **_figures(r),
                        "implied": usd_exact(r.implied_price_per_mtok),
                    }
                    for r in rows
                ],
            )
        )
        tables.append(
            Table(
                "day_accounts",
                f"{sel.day.isoformat()}: the provider's figures by project / key",
                (Column("model", "Model"), Column("token_type", "Token type"), *ACCOUNT_COLUMNS),
                [
                    {"model": r.model or "(no model)", "token_type": r.token_type, **a}
                    for r in rows
                    for a in _account_rows([r])
                ],
            )
        )
    return tables


def _account_rows(rows: list[Row]) -> list[dict]:
    """The provider's tokens and cost of ``rows`` per (project, API key) it reported.

    A report may name the project on its token figures and give the cost apart (OpenAI's usage
    and costs APIs): a project with tokens but no cost is then valued at its row's unit price,
    and the cost line without tokens, so spread, is not counted a second time."""
    acc: dict[tuple[str, str], list] = defaultdict(lambda: [0, ZERO])
    for r in rows:
        unit = (
            r.provider_cost / r.provider_tokens if r.provider_tokens and r.provider_cost else None
        )
        spread = unit is not None and any(t and not c for t, c in r.accounts.values())
        for key, (tokens, cost) in r.accounts.items():
            if spread and not tokens:
                continue
            acc[key][0] += tokens
            acc[key][1] += cost if cost or not spread else tokens * unit
    ranked = sorted(acc.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    return [
        {
            "account": account or "(not in the report)",
            "api_key_id": key_id or "(not in the report)",
            "tokens": tokens,
            "cost": _money(cost),
        }
        for (account, key_id), (tokens, cost) in ranked
    ]


def _import_row(pull: ProviderReportPull) -> dict:
    last = pull.end - DAY
    return {
        "created": pull.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        "source": pull.get_source_display(),
        "days": f"{pull.start}" if last == pull.start else f"{pull.start} – {last}",
        "status": pull.status,
        "rows": pull.rows,
        "filename": pull.filename,
        "by": pull.created_by.get_username() if pull.created_by else "job or command",
        "error": pull.error,
    }


# --- forms ---------------------------------------------------------------------------------------


class ReportUploadForm(forms.Form):
    file = forms.FileField(
        label="Report file (CSV)",
        help_text="The generic columns (date, model, token_type, tokens and/or cost_usd) or an "
        "Azure Cost Management export; the days it covers replace earlier uploads of them.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_BYTES:
            raise forms.ValidationError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
        return upload


class PriceAcceptForm(forms.Form):
    model = forms.IntegerField(widget=forms.HiddenInput)
    token_type = forms.ChoiceField(choices=TokenType.choices, widget=forms.HiddenInput)
    usd_per_mtok = forms.DecimalField(
        max_digits=18, decimal_places=6, min_value=0, widget=forms.HiddenInput
    )
    since = forms.DateField(widget=forms.HiddenInput)


def _threshold(label: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        max_digits=18,
        decimal_places=6,
        min_value=0,
        help_text="USD per month over all providers; blank: no alert of this kind.",
    )


class PolicyForm(forms.Form):
    unmetered_alert_usd = _threshold("Unmetered spend alert (USD)")
    price_drift_alert_usd = _threshold("Price drift alert (USD)")


def _policy_form(policy: ReconciliationPolicy | None, org) -> PolicyForm:
    policy = policy or ReconciliationPolicy(org=org)
    return PolicyForm(
        initial={
            "unmetered_alert_usd": policy.unmetered_alert_usd,
            "price_drift_alert_usd": policy.price_drift_alert_usd,
        }
    )


# --- writes --------------------------------------------------------------------------------------


def _accept(request, sel: Selection) -> HttpResponse:
    form = PriceAcceptForm(request.POST)
    if not form.is_valid() or sel.provider is None:
        messages.error(request, "That suggestion could not be read; reload the page.")
        return redirect(sel.url)
    data = form.cleaned_data
    model = (
        model_list_for_user(request.user).filter(pk=data["model"], provider=sel.provider).first()
    )
    if model is None:
        raise Http404("No such model of this provider.")
    try:
        price, added = price_accept(
            actor=request.user,
            model=model,
            token_type=data["token_type"],
            usd_per_mtok=data["usd_per_mtok"],
            since=data["since"],
        )
    except ValueError as exc:
        messages.error(request, f"Not accepted: {exc}.")
        return redirect(sel.url)
    messages.success(
        request,
        f"Accepted {usd_exact(data['usd_per_mtok'])} USD per million {data['token_type']} tokens "
        f"for {model.name} from {price.effective_from:%Y-%m-%d %H:%M} UTC on; {added} correction "
        f"row(s) re-price the ledger since {data['since']}.",
    )
    return redirect(sel.url)


def _pull(request, sel: Selection) -> HttpResponse:
    """The month to date from the provider's admin API, now (a failed pull is recorded too)."""
    provider = sel.provider
    today = timezone.now().astimezone(UTC).date()
    end = min(sel.after, today + DAY)
    if not pull_supported(provider):
        messages.error(
            request, f"{provider.slug} ({provider.kind}) has no usage API: upload its export."
        )
    elif sel.first > today:
        messages.error(request, f"{sel.month} has not begun yet: nothing to pull.")
    else:
        try:
            pull = report_pull(actor=request.user, provider=provider, start=sel.first, end=end)
        except ReportError as exc:
            messages.error(request, f"Pull refused: {exc}")
        else:
            if pull.status == "ok":
                messages.success(
                    request,
                    f"Pulled {pull.rows} figure(s) of {pull.start} – {pull.end - DAY}"
                    f" from {provider.slug}.",
                )
            else:
                messages.error(request, f"The pull from {provider.slug} failed: {pull.error}")
    return redirect(sel.url)


def _upload(request, sel: Selection) -> ReportUploadForm | HttpResponse:
    """The import, redirecting to the month it ends in; the bound form when it failed."""
    form = ReportUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return form
    upload = form.cleaned_data["file"]
    try:
        pull = report_import(
            actor=request.user, provider=sel.provider, data=upload.read(), filename=upload.name
        )
    except ReportError as exc:
        form.add_error("file", f"{upload.name}: {exc}")
        return form
    last = pull.end - DAY
    messages.success(
        request,
        f"Imported {pull.rows} figure(s) of {upload.name} for {pull.start} – {last} "
        f"({pull.get_source_display()}).",
    )
    return redirect(sel.url_for(month=last.strftime("%Y-%m")))


def _policy(request, sel: Selection) -> PolicyForm | HttpResponse:
    """The thresholds saved, redirecting back; the bound form when they are not valid."""
    form = PolicyForm(request.POST)
    if not form.is_valid():
        return form
    reconciliation_policy_set(actor=request.user, org=sel.org, **form.cleaned_data)
    messages.success(request, "Alert thresholds saved.")
    return redirect(sel.url)


# --- the page ------------------------------------------------------------------------------------


@never_cache
@login_required
def invoices(request, org_id: int):
    org = get_object_or_404(overview_org_list(request.user), pk=org_id)
    today = timezone.now().astimezone(UTC).date()
    sel = invoice_selection(request.user, org=org, params=request.GET, today=today)
    access = access_for_user(request.user)
    can_import = may_manage(access, Subject.INVOICE, org_id=org.pk, team_id=None)
    can_accept = may_manage(access, Subject.PRICE, org_id=org.pk, team_id=None)
    upload_form = ReportUploadForm() if can_import else None
    policy_form = None
    status = 200

    if request.method == "POST":
        action = request.POST.get("action")
        if action == "accept":
            if not can_accept:
                raise PermissionDenied("Only an organisation admin may accept a price.")
            return _accept(request, sel)
        if action not in ("upload", "pull", "policy"):
            return HttpResponseBadRequest("Unknown action.")
        if not can_import:
            raise PermissionDenied(
                "Your role does not allow importing reports or setting alert thresholds."
            )
        if action != "policy" and sel.provider is None:
            raise Http404("This organisation has no provider.")
        if action == "pull":
            return _pull(request, sel)
        result = _upload(request, sel) if action == "upload" else _policy(request, sel)
        if not isinstance(result, forms.Form):
            return result
        if action == "upload":
            upload_form = result
        else:
            policy_form = result
        status = 400

    page = invoice_page_build(request.user, selection=sel)
    tables = invoice_tables(page)
    if request.method == "GET":
        if "csv" in request.GET:  # ``?csv=NAME``: short for every page's ``?format=csv&table=``
            query = request.GET.copy()
            query["table"] = query.pop("csv")[-1]
            query["format"] = "csv"
            request.GET = query
        name = f"{org.slug}-invoices-{sel.provider.slug if sel.provider else 'none'}-{sel.month}"
        download = csv_or_none(request, tables, name)
        if download is not None:
            return download
    if can_import and policy_form is None:
        policy_form = _policy_form(page.policy, org)
    months = list(sel.months)
    if sel.first not in months:
        months = sorted([*months, sel.first], reverse=True)
    return render(
        request,
        "reports/invoices.html",
        {
            "org": org,
            "sel": sel,
            "page": page,
            "months": [m.strftime("%Y-%m") for m in months],
            "tables": {t.name: t for t in tables},
            "pull": pull_hint(sel.provider) if sel.provider else None,
            "can_import": can_import,
            "can_accept": can_accept,
            "upload_form": upload_form,
            "policy_form": policy_form,
            "policy": page.policy or ReconciliationPolicy(org=org),
            "overview_url": reverse("reports:org-overview", args=[org.pk]),
        },
        status=status,
    )
