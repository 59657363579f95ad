"""Delivery of recorded alerts: one email each (text and HTML parts), then Slack-compatible
webhooks, each channel on its own so a slow or broken webhook never holds an email back.

Both are claimed with a conditional ``UPDATE`` before anything is sent: an email only while
``sent_at IS NULL`` and nobody else holds a live claim, a webhook only when it is due. Two
workers running the same delivery therefore never send the same alert twice.
"""

from __future__ import annotations

import logging
import uuid
import zoneinfo
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from finops.money import usd
from reports.models import AlertStatus, AlertWebhook, BudgetAlert, WebhookStatus

log = logging.getLogger(__name__)

CLAIM_TTL = timedelta(minutes=10)  # a claim older than this belongs to a worker that died
MAX_EMAIL_ATTEMPTS = 5
BATCH = 100


def _setting(name: str, default):
    return getattr(settings, name, default)


def alert_url(alert: BudgetAlert) -> str:
    return f"{settings.SITE_URL}{reverse('reports:alert-detail', args=[alert.pk])}"


def statement_url(*, team_id: int, month: str) -> str:
    """Absolute link to a team's statement (emails link here)."""
    path = reverse("reports:team-statement", args=[team_id, month])
    return f"{settings.SITE_URL}{path}"


def alert_link(alert: BudgetAlert) -> str:
    """Where an alert's email points: a chargeback alert to its team's statement page, every
    other alert to its own page."""
    month = (alert.details or {}).get("month")
    if alert.kind == "chargeback" and alert.team_id and month:
        return statement_url(team_id=alert.team_id, month=month)
    return alert_url(alert)


def alert_context(alert: BudgetAlert) -> dict:
    try:
        tz = zoneinfo.ZoneInfo(alert.org.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    window_last = (
        (alert.window_end.astimezone(tz) - timedelta(microseconds=1)).date()
        if alert.window_end
        else None
    )
    return {
        "alert": alert,
        "org": alert.org,
        "kind": alert.kind,
        "spent": usd(alert.spent_usd),
        "limit": usd(alert.limit_usd) if alert.limit_usd is not None else None,
        "percent": alert.percent,
        "forecast": usd(alert.forecast_usd) if alert.forecast_usd is not None else None,
        "baseline": usd(alert.baseline_usd) if alert.baseline_usd is not None else None,
        "window_first": alert.window_start.astimezone(tz).date() if alert.window_start else None,
        "window_last": window_last,
        "contributors": [{**c, "cost_usd": usd(c["cost"])} for c in alert.contributors],
        "details": alert.details,
        "by_feature": [
            {**r, "cost_usd": usd(r["cost"])} for r in alert.details.get("by_feature", [])
        ],
        "by_model": [{**r, "cost_usd": usd(r["cost"])} for r in alert.details.get("by_model", [])],
        "link": alert_link(alert),
        "alert_link": alert_url(alert),
    }


def alert_email(alert: BudgetAlert) -> EmailMultiAlternatives:
    context = alert_context(alert)
    text = render_to_string("reports/emails/alert.txt", context)
    html = render_to_string("reports/emails/alert.html", context)
    message = EmailMultiAlternatives(
        subject=alert.subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(alert.recipients),
        headers={"X-FinOps-Alert": alert.dedupe_key, "X-FinOps-Alert-Kind": alert.kind},
    )
    message.attach_alternative(html, "text/html")
    return message


def _claim(alert: BudgetAlert, *, now: datetime) -> str | None:
    token = uuid.uuid4().hex
    claimed = (
        BudgetAlert.objects.filter(pk=alert.pk, status=AlertStatus.PENDING, sent_at__isnull=True)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TTL))
        .update(claimed_at=now, claim_token=token)
    )
    return token if claimed == 1 else None


def alert_deliver(alert: BudgetAlert, *, now: datetime | None = None) -> bool:
    """Email one alert if this process wins its claim; True when it was sent here."""
    now = now or timezone.now()
    token = _claim(alert, now=now)
    if token is None:
        return False
    mine = BudgetAlert.objects.filter(pk=alert.pk, claim_token=token)
    if not alert.recipients:
        mine.update(status=AlertStatus.FAILED, last_error="no recipients", claimed_at=None)
        return False
    try:
        alert_email(alert).send(fail_silently=False)
    except Exception as exc:  # SMTP refused, connection reset, template error: retry later
        attempts = alert.attempts + 1
        log.warning("alert %s: email failed (attempt %s): %s", alert.pk, attempts, exc)
        mine.update(
            attempts=attempts,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            claimed_at=None,
            claim_token="",
            status=AlertStatus.FAILED if attempts >= MAX_EMAIL_ATTEMPTS else AlertStatus.PENDING,
        )
        return False
    mine.update(
        status=AlertStatus.SENT,
        sent_at=timezone.now(),
        attempts=alert.attempts + 1,
        last_error="",
    )
    return True


def alerts_deliver(run, *, now: datetime) -> None:
    pending = (
        BudgetAlert.objects.filter(status=AlertStatus.PENDING, sent_at__isnull=True)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TTL))
        .select_related("org")
        .order_by("id")[:BATCH]
    )
    for alert in pending:
        if alert_deliver(alert, now=now):
            run.sent += 1
        else:
            alert.refresh_from_db(fields=["status"])
            run.failed += int(alert.status == AlertStatus.FAILED)


# --- webhooks ------------------------------------------------------------------------------------


def webhooks_for(alert: BudgetAlert):
    match = Q(team__isnull=True, budget__isnull=True)
    if alert.team_id:
        match |= Q(team_id=alert.team_id, budget__isnull=True)
    if alert.budget_id:
        match |= Q(budget_id=alert.budget_id)
    return AlertWebhook.objects.filter(org_id=alert.org_id, active=True).filter(match)


def webhook_payload(alert: BudgetAlert) -> dict:
    """Slack's incoming-webhook shape (``text``), which Mattermost, Teams workflows and most
    chat tools accept too; the numbers ride along for other consumers."""
    lines = [f"*{alert.subject}*"]
    for c in alert.contributors[:6]:
        lines.append(f"• {c['dimension']} {c['name']}: {usd(c['cost'])} USD ({c['share']}%)")
    lines.append(alert_link(alert))
    return {
        "text": "\n".join(lines),
        "finops": {
            "kind": alert.kind,
            "org": alert.org.slug,
            "scope": alert.scope_label,
            "threshold": alert.threshold or None,
            "spent_usd": format(alert.spent_usd, "f"),
            "limit_usd": format(alert.limit_usd, "f") if alert.limit_usd is not None else None,
            "dedupe_key": alert.dedupe_key,
        },
    }


def _backoff(attempts: int) -> timedelta:
    base = float(_setting("FINOPS_WEBHOOK_BACKOFF_SECONDS", 30.0))
    return timedelta(seconds=min(base * 2 ** (attempts - 1), 3600.0))


def webhook_deliver(alert: BudgetAlert, *, now: datetime | None = None) -> bool:
    """POST the alert to each of its webhooks not yet reached; retried with exponential backoff
    (``FINOPS_WEBHOOK_BACKOFF_SECONDS`` doubling, at most an hour) up to
    ``FINOPS_WEBHOOK_MAX_ATTEMPTS`` times. True when every webhook has it."""
    now = now or timezone.now()
    lease = now + timedelta(minutes=5)
    claimed = BudgetAlert.objects.filter(
        pk=alert.pk, webhook_status=WebhookStatus.PENDING, webhook_next_at__lte=now
    ).update(webhook_next_at=lease)
    if claimed != 1:
        return False
    done = set(alert.details.get("webhooks_done", []))
    payload = webhook_payload(alert)
    errors = []
    timeout = float(_setting("FINOPS_WEBHOOK_TIMEOUT_SECONDS", 5.0))
    for hook in webhooks_for(alert):
        if hook.pk in done:
            continue
        try:
            response = httpx.post(hook.url, json=payload, timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            errors.append(f"webhook {hook.pk}: {type(exc).__name__}: {exc}"[:500])
            continue
        done.add(hook.pk)
    details = {**alert.details, "webhooks_done": sorted(done)}
    mine = BudgetAlert.objects.filter(pk=alert.pk, webhook_next_at=lease)
    if not errors:
        mine.update(
            details=details,
            webhook_status=WebhookStatus.SENT,
            webhook_sent_at=timezone.now(),
            webhook_attempts=alert.webhook_attempts + 1,
            webhook_error="",
        )
        return True
    attempts = alert.webhook_attempts + 1
    give_up = attempts >= int(_setting("FINOPS_WEBHOOK_MAX_ATTEMPTS", 8))
    log.warning("alert %s: webhook failed (attempt %s): %s", alert.pk, attempts, errors)
    mine.update(
        details=details,
        webhook_status=WebhookStatus.FAILED if give_up else WebhookStatus.PENDING,
        webhook_attempts=attempts,
        webhook_next_at=None if give_up else now + _backoff(attempts),
        webhook_error="\n".join(errors)[:2000],
    )
    return False


def webhooks_deliver(run, *, now: datetime) -> None:
    due = (
        BudgetAlert.objects.filter(webhook_status=WebhookStatus.PENDING, webhook_next_at__lte=now)
        .select_related("org")
        .order_by("webhook_next_at")[:BATCH]
    )
    for alert in due:
        run.webhooks += int(webhook_deliver(alert, now=now))
