"""One import of a provider's own report: pulled from its admin API, or uploaded as a file.

An import covers whole UTC days ``[start, end)`` and *replaces* what earlier imports from the
same source said of those days (one transaction: delete the days' rows, insert the new ones),
so a re-pull after the provider finalises its figures never counts a day twice. A failed pull
changes nothing and is recorded with its error (which never holds the credential).

``invoices_pull_due`` is what the beat job runs: for every provider with an admin credential,
the last ``FINOPS_INVOICE_PULL_DAYS`` complete-or-current UTC days.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction

from gateway.egress import egress_http_client
from gateway.models import Provider, ProviderKind
from gateway.services.credentials import provider_admin_base_url, provider_admin_credential
from reports.invoices.anthropic_reports import anthropic_report_figures
from reports.invoices.csv_reports import csv_figures, figures_span
from reports.invoices.figures import Figure, ReportError
from reports.invoices.openai_reports import openai_report_figures
from reports.models import ProviderReportPull, ProviderUsage, ReportSource

log = logging.getLogger(__name__)

MAX_DAYS = 400
_PULLERS: dict[str, tuple[str, Callable]] = {
    ProviderKind.OPENAI: (ReportSource.OPENAI_API, openai_report_figures),
    ProviderKind.ANTHROPIC: (ReportSource.ANTHROPIC_API, anthropic_report_figures),
}


def _pullers() -> dict[str, tuple[str, Callable]]:
    return _PULLERS


def pull_supported(provider: Provider) -> bool:
    """Whether the provider's kind has an admin API this product reads (Azure reports come as
    Cost Management exports, uploaded)."""
    return provider.kind in _pullers()


def _days_check(start: date, end: date) -> None:
    if end <= start:
        raise ReportError("the end day must be after the start day")
    if (end - start).days > MAX_DAYS:
        raise ReportError(f"at most {MAX_DAYS} days per import")


def figures_store(
    *,
    provider: Provider,
    source: str,
    start: date,
    end: date,
    figures: list[Figure],
    actor=None,
    filename: str = "",
) -> ProviderReportPull:
    """Replace the days ``[start, end)`` of ``source`` for ``provider`` with ``figures``."""
    _days_check(start, end)
    outside = [f for f in figures if not start <= f.day < end]
    if outside:
        raise ReportError(f"a figure of {outside[0].day} is outside {start}..{end}")
    with transaction.atomic():
        pull = ProviderReportPull.objects.create(
            org_id=provider.org_id,
            provider=provider,
            source=source,
            start=start,
            end=end,
            rows=len(figures),
            created_by=actor if getattr(actor, "pk", None) else None,
            filename=filename[:255],
        )
        ProviderUsage.objects.filter(
            provider=provider, source=source, day__gte=start, day__lt=end
        ).delete()
        ProviderUsage.objects.bulk_create(
            [
                ProviderUsage(
                    org_id=provider.org_id,
                    provider=provider,
                    pull=pull,
                    source=source,
                    day=f.day,
                    model=f.model,
                    token_type=f.token_type,
                    account=f.account,
                    api_key_id=f.api_key_id,
                    tokens=f.tokens,
                    requests=f.requests,
                    cost_usd=f.cost_usd,
                )
                for f in figures
            ],
            batch_size=2000,
        )
    return pull


def _failed(provider: Provider, source: str, *, start: date, end: date, error: str, actor=None):
    return ProviderReportPull.objects.create(
        org_id=provider.org_id,
        provider=provider,
        source=source,
        start=start,
        end=end,
        status="failed",
        error=error[:2000],
        created_by=actor if getattr(actor, "pk", None) else None,
    )


def provider_report_pull(
    provider: Provider,
    *,
    start: date,
    end: date,
    actor=None,
    client: httpx.Client | None = None,
) -> ProviderReportPull:
    """Pull ``[start, end)`` from the provider's admin API and store it (or record why not)."""
    _days_check(start, end)
    pullers = _pullers()
    if provider.kind not in pullers:
        raise ReportError(
            f"provider {provider.slug} ({provider.kind}) has no usage API this product reads: "
            "upload its cost export instead"
        )
    source, read = pullers[provider.kind]
    key = provider_admin_credential(provider)
    if not key:
        return _failed(
            provider,
            source,
            start=start,
            end=end,
            error="no admin API credential is set",
            actor=actor,
        )
    try:
        if client is None:
            with egress_http_client(timeout=settings.FINOPS_INVOICE_PULL_TIMEOUT) as own:
                figures = read(
                    own,
                    base_url=provider_admin_base_url(provider),
                    admin_key=key,
                    start=start,
                    end=end,
                )
        else:
            figures = read(
                client,
                base_url=provider_admin_base_url(provider),
                admin_key=key,
                start=start,
                end=end,
            )
    except ReportError as exc:
        message = str(exc).replace(key, "…")
        log.warning("invoice pull failed: provider=%s %s", provider.pk, message)
        return _failed(provider, source, start=start, end=end, error=message, actor=actor)
    return figures_store(
        provider=provider, source=source, start=start, end=end, figures=figures, actor=actor
    )


def report_upload(
    provider: Provider, *, data: bytes, actor=None, filename: str = ""
) -> ProviderReportPull:
    """Store an uploaded report (generic CSV or an Azure export); ``ReportError`` if unreadable.
    The days it covers are replaced."""
    source, figures = csv_figures(data)
    span = figures_span(figures)
    if span is None:
        raise ReportError("the file holds no rows")
    return figures_store(
        provider=provider,
        source=source,
        start=span[0],
        end=span[1],
        figures=figures,
        actor=actor,
        filename=filename,
    )


def invoices_pull_due(*, now: datetime | None = None) -> int:
    """The beat job: each provider with an admin credential, its last days. Returns pulls made."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    start = today - timedelta(days=settings.FINOPS_INVOICE_PULL_DAYS - 1)
    made = 0
    for provider in Provider.objects.filter(kind__in=list(_pullers())).select_related("org"):
        if not provider_admin_credential(provider):
            continue
        provider_report_pull(provider, start=start, end=today + timedelta(days=1))
        made += 1
    return made
