"""Invoice reconciliation's writes on behalf of a user: importing a provider's report (a file,
or a pull from its admin API), accepting the price a provider's figures imply, and the
organisation's alert thresholds. Roles are checked by the caller (the API's ``Subject.INVOICE``
rule: admins and finance; accepting a price is a catalog change: ``Subject.PRICE``, admins);
each write here records its audit entry."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from gateway.models import LLMModel, ModelPrice, Provider
from reports.invoices.drift import price_drift_accept
from reports.invoices.pull import provider_report_pull, report_upload
from reports.models import ProviderReportPull, ReconciliationPolicy
from teams.audit import audit_record, audited_save
from teams.models import Organization


def _pull_snapshot(pull: ProviderReportPull) -> dict:
    return {
        "provider": pull.provider.slug,
        "source": pull.source,
        "start": pull.start.isoformat(),
        "end": pull.end.isoformat(),
        "status": pull.status,
        "rows": pull.rows,
        "filename": pull.filename,
    }


def report_import(*, actor, provider: Provider, data: bytes, filename: str) -> ProviderReportPull:
    """Import an uploaded report; ``ReportError`` (nothing stored) when it cannot be read."""
    pull = report_upload(provider, data=data, actor=actor, filename=filename)
    audit_record(
        actor=actor,
        org=provider.org,
        action="invoice.imported",
        obj=pull,
        after=_pull_snapshot(pull),
    )
    return pull


def report_pull(*, actor, provider: Provider, start: date, end: date) -> ProviderReportPull:
    """Pull ``[start, end)`` now; a failed pull is returned with its error, and audited too."""
    pull = provider_report_pull(provider, start=start, end=end, actor=actor)
    audit_record(
        actor=actor, org=provider.org, action="invoice.pulled", obj=pull, after=_pull_snapshot(pull)
    )
    return pull


def price_accept(
    *, actor, model: LLMModel, token_type: str, usd_per_mtok: Decimal, since: date
) -> tuple[ModelPrice, int]:
    """The provider's price for ``model`` from now on, and the past since ``since`` corrected."""
    price, added = price_drift_accept(
        model=model, token_type=token_type, usd_per_mtok=usd_per_mtok, since=since, actor=actor
    )
    audit_record(
        actor=actor,
        org=model.org,
        action="invoice.price_accepted",
        obj=price,
        after={
            "model": model.name,
            "token_type": token_type,
            "usd_per_mtok": str(usd_per_mtok),
            "since": since.isoformat(),
            "correction_rows": added,
        },
    )
    return price, added


def _policy_snapshot(policy: ReconciliationPolicy) -> dict:
    def text(value):
        return None if value is None else str(value)

    return {
        "unmetered_alert_usd": text(policy.unmetered_alert_usd),
        "price_drift_alert_usd": text(policy.price_drift_alert_usd),
    }


def reconciliation_policy_set(
    *, actor, org: Organization, unmetered_alert_usd, price_drift_alert_usd
) -> ReconciliationPolicy:
    policy = ReconciliationPolicy.objects.filter(org=org).first()
    before = _policy_snapshot(policy) if policy else None
    policy = policy or ReconciliationPolicy(org=org)
    policy.unmetered_alert_usd = unmetered_alert_usd
    policy.price_drift_alert_usd = price_drift_alert_usd
    return audited_save(
        policy,
        actor=actor,
        org=org,
        action="invoice.policy_changed",
        snapshot=_policy_snapshot,
        before=before,
        skip_unchanged=True,
    )
