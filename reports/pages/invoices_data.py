"""The "Invoice vs ledger" page's reads: one provider's month of reconciliation rows
(``reports.invoices.reconcile``), its trend over the months before, the price-drift suggestions,
the recent imports and the organisation's alert thresholds; and the overview's coverage figure.

Every read goes through the invoice selectors (``reports.selectors.invoices``: admins and
finance of the organisation only). Each month is reconciled over exactly its own UTC days, as
the API and the alert job do, so a month on this page, in ``/api/v1/reconciliation/`` for the
same days and in the alert agree to the ledger's last decimal. The view, its tables and forms
are ``reports.pages.invoices``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import urlencode

from django.http import Http404
from django.urls import reverse

from finops.money import money, share_display, usd_display, usd_per_mtok
from gateway.models import Provider
from reports.invoices.drift import Suggestion, price_suggestions
from reports.invoices.pull import pull_supported
from reports.invoices.reconcile import (
    Row,
    coverage,
    covered_days,
    org_reconcile,
    provider_reconcile,
    totals,
)
from reports.models import ProviderReportPull, ReconciliationPolicy
from reports.pages.statement_data import month_parse
from reports.periods import DAY, period_next_first_day
from reports.selectors import (
    reconciliation_policy_list_for_user,
    reconciliation_provider_list_for_user,
    report_pull_list_for_user,
)
from teams.models import Organization

TREND_MONTHS = 6
RECENT_IMPORTS = 20
ZERO = Decimal(0)
ONE = Decimal(1)


def month_after(first: date) -> date:
    return period_next_first_day("month", first)


def months_back(first: date, n: int) -> date:
    index = first.year * 12 + first.month - 1 - n
    return date(index // 12, index % 12 + 1, 1)


def invoices_url(org_id: int, **params) -> str:
    url = reverse("reports:invoices", args=[org_id])
    query = {k: v for k, v in params.items() if v}
    return f"{url}?{urlencode(query)}" if query else url


def percent_text(share: Decimal | None) -> str:
    """A 0..1 share in the house format of percentages (``finops.money``); empty for None."""
    return share_display(share)


# --- the selection: organisation, provider, month, day ---------------------------------------


@dataclass
class Selection:
    org: Organization
    providers: list[Provider]
    provider: Provider | None
    months: list[date]  # months some successful import of the provider covers, newest first
    first: date  # the month shown: [first, after) in UTC days
    after: date
    day: date | None = None

    @property
    def month(self) -> str:
        return self.first.strftime("%Y-%m")

    @property
    def last(self) -> date:
        return self.after - DAY

    @property
    def url(self) -> str:
        """This page for this provider and month (where the forms post and redirect)."""
        slug = self.provider.slug if self.provider else ""
        return invoices_url(self.org.pk, provider=slug, month=self.month)

    def url_for(self, **params) -> str:
        base = {"provider": self.provider.slug if self.provider else "", "month": self.month}
        return invoices_url(self.org.pk, **{**base, **params})


def invoice_month_list(user, provider: Provider) -> list[date]:
    """Months (their first day) that a successful import of ``provider`` covers, newest first."""
    months: set[date] = set()
    spans = (
        report_pull_list_for_user(user)
        .filter(provider=provider, status="ok")
        .values_list("start", "end")
        .order_by()
    )
    for start, end in spans.distinct():
        month = start.replace(day=1)
        while month < end:
            months.add(month)
            month = month_after(month)
    return sorted(months, reverse=True)


def invoice_selection(user, *, org: Organization, params, today: date) -> Selection:
    """The provider, month and day a request asks for, among what ``user`` may reconcile.
    Defaults: the provider imported last, its latest imported month (else this UTC month).
    An unknown provider, or a month or day that is not one, is a 404."""
    providers = list(reconciliation_provider_list_for_user(user).filter(org=org).order_by("slug"))
    slug = params.get("provider", "")
    if slug:
        provider = next((p for p in providers if p.slug == slug), None)
        if provider is None:
            raise Http404("No such provider in this organisation.")
    else:
        latest = (
            report_pull_list_for_user(user)
            .filter(org=org, status="ok")
            .order_by("-created_at", "-id")
            .values_list("provider_id", flat=True)
            .first()
        )
        provider = next(
            (p for p in providers if p.pk == latest), providers[0] if providers else None
        )
    months = invoice_month_list(user, provider) if provider else []
    day = None
    if params.get("day"):
        try:
            day = date.fromisoformat(params["day"])
        except ValueError:
            raise Http404("Not a day (YYYY-MM-DD).") from None
    if params.get("month"):
        first = month_parse(params["month"])
        if first is None:
            raise Http404("Not a month (YYYY-MM).")
    elif day is not None:
        first = day.replace(day=1)
    else:
        first = months[0] if months else today.replace(day=1)
    after = month_after(first)
    if day is not None and not first <= day < after:
        raise Http404("That day is not in the month shown.")
    return Selection(org, providers, provider, months, first, after, day)


# --- the page ----------------------------------------------------------------------------------


@dataclass
class InvoicePage:
    selection: Selection
    rows: list[Row] = field(default_factory=list)  # the month, day x model x token type
    totals: dict = field(default_factory=dict)
    coverage: Decimal | None = None
    covered: int = 0  # UTC days of the month an import covers
    trend: list[dict] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    pulls: list[ProviderReportPull] = field(default_factory=list)
    policy: ReconciliationPolicy | None = None

    @property
    def kpis(self) -> list[dict]:
        t = self.totals
        items = [
            ("provider_cost", "Provider total (USD)", "what the provider billed"),
            ("ledger_cost", "Ledger total (USD)", "what the gateway metered"),
            ("difference", "Difference (USD)", "provider − ledger"),
            ("matched", "Matched (USD)", "within the tolerances"),
            ("unmetered", "Unmetered (USD)", "billed, never metered"),
            ("over_metered", "Over-metered (USD)", "metered, never billed"),
            ("price_drift", "Price drift (USD)", "same tokens, other price"),
        ]
        coverage_kpi = {
            "id": "coverage",
            "label": "Coverage",
            "value": percent_text(self.coverage) or "–",
            "note": "metered ÷ billed",
        }
        return [
            coverage_kpi,
            *(
                {"id": key, "label": label, "value": usd_display(t.get(key, ZERO)), "note": note}
                for key, label, note in items
            ),
        ]

    @property
    def trend_has_data(self) -> bool:
        return any(m["days"] for m in self.trend)

    @property
    def chart(self) -> dict:
        return {
            "months": [m["month"] for m in self.trend],
            "provider": [money(m["totals"].get("provider_cost", ZERO)) for m in self.trend],
            "ledger": [money(m["totals"].get("ledger_cost", ZERO)) for m in self.trend],
            "unmetered": [money(m["totals"].get("unmetered", ZERO)) for m in self.trend],
        }

    @property
    def suggestion_rows(self) -> list[dict]:
        return [
            {
                "model": s.model,
                "token_type": s.token_type,
                "since": s.since,
                "catalog": usd_per_mtok(s.catalog_usd_per_mtok) or "none",
                "implied": usd_per_mtok(s.implied_usd_per_mtok),
                "implied_raw": str(s.implied_usd_per_mtok),
                "drift": usd_display(s.drift_usd),
            }
            for s in self.suggestions
        ]


def invoice_page_build(user, *, selection: Selection) -> InvoicePage:
    """The month of ``selection`` (and the five before it, for the trend), read for ``user``."""
    page = InvoicePage(selection)
    org, provider = selection.org, selection.provider
    page.policy = reconciliation_policy_list_for_user(user).filter(org=org).first()
    if provider is None:
        return page
    # The trend: each month reconciled over its own days (the shown month is the last one).
    for n in range(TREND_MONTHS - 1, -1, -1):
        first = months_back(selection.first, n)
        after = month_after(first)
        days = covered_days(provider, first, after)
        rows = provider_reconcile(provider, first, after) if days else []
        page.trend.append(
            {
                "first": first,
                "month": first.strftime("%Y-%m"),
                "totals": totals(rows),
                "coverage": coverage(rows),
                "days": len(days),
            }
        )
        if n == 0:
            page.rows, page.covered = rows, len(days)
    page.totals = totals(page.rows)
    page.coverage = coverage(page.rows)
    if any(r.price_drift for r in page.rows):
        page.suggestions = price_suggestions(provider, selection.first, selection.after)
    page.pulls = list(
        report_pull_list_for_user(user)
        .filter(provider=provider)
        .select_related("created_by")
        .order_by("-created_at", "-id")[:RECENT_IMPORTS]
    )
    return page


def pull_hint(provider: Provider) -> dict:
    """What the page says of pulling this provider's reports (no credential is read)."""
    return {
        "supported": pull_supported(provider),
        "key_set": bool(provider.admin_api_key_env or provider.admin_api_key_encrypted),
    }


# --- the overview's headline -------------------------------------------------------------------


def invoice_coverage(user, org: Organization, *, now: datetime) -> dict | None:
    """Metered ÷ billed this UTC month over the providers with imports in it, for the org
    overview; None when there is no import this month (or the user does not read the invoice)."""
    first = now.astimezone(UTC).date().replace(day=1)
    after = month_after(first)
    imported = (
        report_pull_list_for_user(user)
        .filter(org=org, status="ok", start__lt=after, end__gt=first)
        .values_list("provider_id", flat=True)
        .distinct()
        .order_by()
    )
    ids = list(imported)
    if not ids:
        return None
    providers = reconciliation_provider_list_for_user(user).filter(org=org, pk__in=ids)
    share = coverage(org_reconcile(providers.order_by("slug"), first, after, ("model",)))
    if share is None:
        return None
    month = first.strftime("%Y-%m")
    return {
        "value": percent_text(share),
        "month": month,
        "providers": len(ids),
        "url": invoices_url(org.pk, month=month),
    }
