"""Alerts about upstreams that billed more than a request allowed.

The gateway flags such ledger rows (``UsageEvent.usage_exceeded_bound``: more prompt tokens than
everything the request could be billed for, or more output than its ``n`` choices at the cap it
sent) and cools the deployment down; it does not call into reporting. This job reads the flagged
rows of each organisation's local day and records one alert per organisation and day, to its
admins and finance, naming the models and providers and what they billed: the overshoot is real
spend (the ledger keeps what was billed) and usually a misconfigured or hostile provider.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Count, F, Sum

from finops.money import money, usd
from gateway.models import UsageEvent
from reports.models import AlertKind
from reports.periods import DAY, local_date, local_midnight, org_zone
from reports.services.alert_recording import (
    AlertRun,
    alert_recipients,
    alert_record,
    finance_addresses,
)
from teams.models import Organization


def usage_over_bound_evaluate(run: AlertRun, *, now: datetime) -> None:
    flagged = UsageEvent.objects.filter(usage_exceeded_bound=True)
    for org_id in (
        flagged.filter(started_at__gte=now - 2 * DAY).values_list("org_id", flat=True).distinct()
    ):
        org = Organization.objects.filter(pk=org_id).first()
        if org is not None and _org_day_record(org, flagged.filter(org_id=org_id), now=now):
            run.recorded += 1


def _org_day_record(org: Organization, flagged, *, now: datetime) -> bool:
    tz = org_zone(org)
    today = local_date(now, tz)
    start, end = local_midnight(today, tz), local_midnight(today + DAY, tz)
    rows = list(
        flagged.filter(started_at__gte=start, started_at__lt=end)
        .values("model", "provider")
        .annotate(
            requests=Count("id"),
            cost=Sum("cost"),
            tokens=Sum(F("prompt_tokens") + F("completion_tokens")),
        )
        .order_by("-cost", "model")
    )
    if not rows:
        return False
    total = sum((Decimal(r["cost"] or 0) for r in rows), Decimal(0))
    calls = sum(r["requests"] for r in rows)
    names = ", ".join(f"{r['model']} ({r['provider']})" for r in rows[:3])
    subject = (
        f"[LLM FinOps] {calls} call(s) billed past what the request allowed today: {names}, "
        f"{usd(total)} USD"
    )
    _, created = alert_record(
        now=now,
        dedupe_key=f"over_bound:{org.pk}:{today.isoformat()}",
        org=org,
        kind=AlertKind.OVER_BOUND,
        scope_label=f"organisation {org.slug}",
        window_start=start,
        window_end=end,
        spent_usd=total,
        recipients=alert_recipients(org=org, team=None, also=finance_addresses(org)),
        subject=subject[:300],
        details={
            "day": today.isoformat(),
            "calls": calls,
            "by_model": [
                {
                    "name": f"{r['model']} ({r['provider']})",
                    "cost": money(r["cost"]),
                    "requests": r["requests"],
                    "tokens": r["tokens"] or 0,
                }
                for r in rows
            ],
        },
    )
    return created
