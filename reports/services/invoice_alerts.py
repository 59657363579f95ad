"""Alerts from invoice reconciliation: unmetered spend and price drift past the org's monthly
thresholds (``ReconciliationPolicy``; an org without one gets the model's defaults).

For each organisation with provider reports in the current UTC month, the month-to-date rows of
every provider are classed (``reports.invoices.reconcile``); when the month's unmetered spend
(or price drift, in either direction) passes its threshold, one alert per organisation, kind and
month is recorded (dedupe key ``unmetered:<org>:<YYYY-MM>``), to the org's admins and finance,
naming the providers and models that make it up. Delivery (email, webhooks) is the alerting
run's, as for budget alerts.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from finops.money import money, usd
from gateway.models import Provider
from reports.invoices.reconcile import org_reconcile
from reports.models import AlertKind, ProviderUsage, ReconciliationPolicy
from reports.services.alert_recording import (
    AlertRun,
    alert_recipients,
    alert_record,
    finance_addresses,
)
from teams.models import Organization

_DEFAULTS = ReconciliationPolicy()


def month_span(now: datetime) -> tuple[date, date]:
    """[first day of the UTC month of ``now``, the first of the next)."""
    today = now.astimezone(UTC).date()
    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following


def invoice_gaps_evaluate(run: AlertRun, *, now: datetime) -> None:
    start, end = month_span(now)
    org_ids = (
        ProviderUsage.objects.filter(day__gte=start, day__lt=end)
        .values_list("org_id", flat=True)
        .distinct()
    )
    for org in Organization.objects.filter(pk__in=list(org_ids)).order_by("pk"):
        policy = ReconciliationPolicy.objects.filter(org=org).first() or _DEFAULTS
        rows = org_reconcile(
            Provider.objects.filter(org=org).order_by("slug"), start, end, ("model",)
        )
        for kind, attr, threshold in (
            (AlertKind.UNMETERED, "unmetered", policy.unmetered_alert_usd),
            (AlertKind.PRICE_DRIFT, "price_drift", policy.price_drift_alert_usd),
        ):
            if threshold is None:
                continue
            parts = defaultdict(Decimal)
            for r in rows:
                parts[(r.provider, r.model)] += getattr(r, attr)
            total = sum(parts.values(), Decimal(0))
            if abs(total) < threshold or not total:
                continue
            if _record(
                org,
                kind,
                start=start,
                end=end,
                total=total,
                threshold=threshold,
                parts=parts,
                now=now,
            ):
                run.recorded += 1


def _record(org, kind, *, start, end, total, threshold, parts, now) -> bool:
    month = start.strftime("%Y-%m")
    top = sorted(parts.items(), key=lambda kv: -abs(kv[1]))
    names = ", ".join(f"{m or '(no model)'} ({p})" for (p, m), v in top[:3] if v)
    what = (
        "billed but not metered by the gateway"
        if kind == AlertKind.UNMETERED
        else ("of price drift between the catalog and the provider")
    )
    subject = f"[LLM FinOps] {usd(total)} USD {what} in {month}: {names}"
    _, created = alert_record(
        now=now,
        dedupe_key=f"{kind}:{org.pk}:{month}",
        org=org,
        kind=kind,
        scope_label=f"organisation {org.slug}",
        window_start=datetime.combine(start, datetime.min.time(), UTC),
        window_end=datetime.combine(end, datetime.min.time(), UTC),
        spent_usd=total,
        limit_usd=threshold,
        recipients=alert_recipients(org=org, team=None, also=finance_addresses(org)),
        subject=subject[:300],
        details={
            "month": month,
            "by_model": [{"provider": p, "model": m, "amount": money(v)} for (p, m), v in top if v],
        },
    )
    return created
