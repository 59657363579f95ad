"""Alert evaluation: budget thresholds, budget forecasts, spend anomalies, chargeback statements.

Every evaluation reads the day rollups (never the gateway's live counters; window spend, run
rates and the robust z-score come from ``reports.forecast``) and *records* what it finds as a
``BudgetAlert`` named by a ``dedupe_key`` (``reports.services.alert_recording``); recording
twice (a second run, a second worker) finds the row already there. Delivery (email, then
webhooks) is separate and claims each alert with a conditional update
(``reports.services.notify``), so nothing is sent twice.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from finops.money import money, usd
from reports.forecast import BudgetSpend, budget_forecast, budget_spent, robust_z
from reports.models import AlertKind, AlertStatus, BudgetAlert, DailySpend
from reports.periods import DAY, local_date, local_midnight, org_zone
from reports.savings import Savings, savings_sums
from reports.selectors import budget_rows
from reports.services.alert_recording import (
    AlertRun,
    alert_recipients,
    alert_record,
    finance_addresses,
    top_contributors,
)
from reports.services.invoice_alerts import invoice_gaps_evaluate
from reports.services.over_bound import usage_over_bound_evaluate
from teams.models import Budget, BudgetScope, Organization, Team

log = logging.getLogger(__name__)

HUNDRED = Decimal(100)


def _setting(name: str, default):
    return getattr(settings, name, default)


def budget_team(budget: Budget) -> Team | None:
    if budget.scope == BudgetScope.TEAM:
        return budget.team
    if budget.scope == BudgetScope.FEATURE:
        return budget.feature.team
    if budget.scope == BudgetScope.KEY:
        return budget.key.team
    return None


_CONTRIBUTOR_COLUMN = {
    BudgetScope.ORG: "team_id",
    BudgetScope.TEAM: "feature",
    BudgetScope.FEATURE: "endpoint",
    BudgetScope.KEY: "feature",
}


# --- thresholds ----------------------------------------------------------------------------------


def _period_label(budget: Budget) -> str:
    return {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly"}.get(
        budget.period, budget.period
    )


def _window_key(spend: BudgetSpend) -> str:
    return spend.first_day.isoformat()


def budget_thresholds_evaluate(
    budget: Budget, spend: BudgetSpend, run: AlertRun, *, now: datetime
) -> None:
    """Record one alert per crossed threshold per window; when several are crossed at once,
    only the highest is emailed (the lower ones are recorded as superseded)."""
    thresholds = sorted({int(t) for t in (budget.alert_thresholds or []) if int(t) > 0})
    if spend.limit <= 0 or not thresholds:
        return
    team = budget_team(budget)
    crossed = [t for t in thresholds if spend.spent * HUNDRED >= spend.limit * t]
    if not crossed:
        return
    contributors = top_contributors(
        budget_rows(budget).filter(day__gte=spend.first_day, day__lt=spend.after_day),
        _CONTRIBUTOR_COLUMN[BudgetScope(budget.scope)],
        org_id=budget.org_id,
    )
    recipients = alert_recipients(org=budget.org, team=team, extra=budget.recipients or [])
    for threshold in crossed:
        subject = (
            f"[LLM FinOps] {budget.scope_label}: {threshold}% of the {_period_label(budget)} "
            f"budget reached ({usd(spend.spent)} of {usd(spend.limit)} USD)"
        )
        _, created = alert_record(
            now=now,
            dedupe_key=f"threshold:{budget.pk}:{_window_key(spend)}:{threshold}",
            org=budget.org,
            budget=budget,
            team=team,
            feature=budget.feature.slug if budget.feature_id else "",
            kind=AlertKind.THRESHOLD,
            scope_label=budget.scope_label,
            window_start=spend.window_start,
            window_end=spend.window_end,
            threshold=threshold,
            spent_usd=spend.spent,
            limit_usd=spend.limit,
            percent=spend.percent,
            contributors=contributors,
            recipients=recipients,
            subject=subject[:300],
            details={"period": budget.period, "action": budget.action},
        )
        run.recorded += int(created)
    # Several thresholds pending in one window (crossed at once, or a lower one still unsent):
    # only the highest is worth an email.
    pending = BudgetAlert.objects.filter(
        budget=budget,
        kind=AlertKind.THRESHOLD,
        window_start=spend.window_start,
        status=AlertStatus.PENDING,
        sent_at__isnull=True,
        claimed_at__isnull=True,
    ).order_by("-threshold")
    highest = pending.first()
    if highest is not None:
        pending.exclude(pk=highest.pk).update(status=AlertStatus.SUPERSEDED)


# --- forecast ------------------------------------------------------------------------------------


def budget_forecast_evaluate(
    budget: Budget, spend: BudgetSpend, run: AlertRun, *, now: datetime
) -> None:
    """Warn once per window when the projection exceeds the limit (before it is reached)."""
    if spend.limit <= 0 or not budget.alert_thresholds or spend.spent >= spend.limit:
        return
    forecast = budget_forecast(budget, spend, now=now)
    if forecast is None or forecast.projected <= spend.limit:
        return
    team = budget_team(budget)
    when = forecast.exhausts_on.isoformat() if forecast.exhausts_on else "the end of the window"
    subject = (
        f"[LLM FinOps] {budget.scope_label}: on track to exceed the {_period_label(budget)} "
        f"budget by {when} (projected {usd(forecast.projected)} of {usd(spend.limit)} USD)"
    )
    _, created = alert_record(
        now=now,
        dedupe_key=f"forecast:{budget.pk}:{_window_key(spend)}",
        org=budget.org,
        budget=budget,
        team=team,
        feature=budget.feature.slug if budget.feature_id else "",
        kind=AlertKind.FORECAST,
        scope_label=budget.scope_label,
        window_start=spend.window_start,
        window_end=spend.window_end,
        spent_usd=spend.spent,
        limit_usd=spend.limit,
        percent=spend.percent,
        forecast_usd=forecast.projected.quantize(Decimal("1e-12")),
        exhausts_on=forecast.exhausts_on,
        contributors=top_contributors(
            budget_rows(budget).filter(day__gte=spend.first_day, day__lt=spend.after_day),
            _CONTRIBUTOR_COLUMN[BudgetScope(budget.scope)],
            org_id=budget.org_id,
        ),
        recipients=alert_recipients(org=budget.org, team=team, extra=budget.recipients or []),
        subject=subject[:300],
        details={
            "period": budget.period,
            "method": forecast.method,
            "weekday_rate": money(forecast.weekday_rate),
            "weekend_rate": money(forecast.weekend_rate),
        },
    )
    run.recorded += int(created)


# --- anomalies -----------------------------------------------------------------------------------


def spend_anomalies_evaluate(run: AlertRun, *, now: datetime) -> None:
    """A team's or a feature's spend today (local day, so far) far above its trailing 28-day
    baseline: robust z-score >= ``FINOPS_ANOMALY_Z``, at least ``FINOPS_ANOMALY_RATIO`` times
    the median day and at least ``FINOPS_ANOMALY_MIN_USD``; 7 days of history needed."""
    z_min = float(_setting("FINOPS_ANOMALY_Z", 3.5))
    ratio = Decimal(str(_setting("FINOPS_ANOMALY_RATIO", 2)))
    floor = Decimal(str(_setting("FINOPS_ANOMALY_MIN_USD", 1)))
    for org in Organization.objects.all():
        tz = org_zone(org)
        today = local_date(now, tz)
        first = today - timedelta(days=28)
        rows = DailySpend.objects.filter(
            org_id=org.pk, day__gte=first, day__lte=today, team_id__gt=0
        )
        series: dict[tuple[int, str], dict[date, Decimal]] = defaultdict(dict)
        for r in rows.values("team_id", "day").annotate(total=Sum("cost")):
            series[(r["team_id"], "")][r["day"]] = Decimal(r["total"] or 0)
        for r in (
            rows.exclude(feature="").values("team_id", "feature", "day").annotate(total=Sum("cost"))
        ):
            series[(r["team_id"], r["feature"])][r["day"]] = Decimal(r["total"] or 0)
        flagged_teams: set[int] = set()
        for (team_id, feature), by_day in sorted(series.items()):
            value = by_day.get(today, Decimal(0))
            if value < floor or (feature and team_id in flagged_teams):
                continue
            active = sorted(d for d, c in by_day.items() if c > 0 and d < today)
            if not active or (today - active[0]).days < 7:
                continue
            history = [
                by_day.get(active[0] + timedelta(days=i), Decimal(0))
                for i in range((today - active[0]).days)
            ]
            z, median = robust_z(value, history)
            if z < z_min or value < median * ratio:
                continue
            if not feature:
                flagged_teams.add(team_id)
            if _anomaly_record(
                org, team_id, feature, today, value=value, median=median, z=z, tz=tz, now=now
            ):
                run.recorded += 1


def _anomaly_record(org, team_id, feature, today, *, value, median, z, tz, now) -> bool:
    team = Team.objects.filter(pk=team_id, org=org).first()
    if team is None:
        return False
    scope = f"team {team.slug}" + (f", feature {feature}" if feature else "")
    today_rows = DailySpend.objects.filter(org_id=org.pk, team_id=team_id, day=today)
    if feature:
        today_rows = today_rows.filter(feature=feature)
    contributors = top_contributors(today_rows, "endpoint", org_id=org.pk) + top_contributors(
        today_rows, "model", org_id=org.pk
    )
    subject = (
        f"[LLM FinOps] Unusual spend: {scope} spent {usd(value)} USD today "
        f"(a typical day: {usd(median)} USD)"
    )
    _, created = alert_record(
        now=now,
        dedupe_key=f"anomaly:{org.pk}:{team_id}:{feature}:{today.isoformat()}",
        org=org,
        team=team,
        feature=feature,
        kind=AlertKind.ANOMALY,
        scope_label=scope,
        window_start=local_midnight(today, tz),
        window_end=local_midnight(today + DAY, tz),
        spent_usd=value,
        baseline_usd=median,
        contributors=contributors,
        recipients=alert_recipients(org=org, team=team, also=finance_addresses(org)),
        subject=subject[:300],
        details={"z": "inf" if math.isinf(z) else round(z, 2), "day": today.isoformat()},
    )
    return created


# --- chargeback ----------------------------------------------------------------------------------


def chargeback_statements_evaluate(run: AlertRun, *, now: datetime) -> None:
    """On the 1st (org's timezone; from 01:00, once the last evening is rolled up, and up to
    ``FINOPS_CHARGEBACK_GRACE_DAYS`` days late after an outage), one statement per team with
    spend in the previous month: totals, by feature, by model, evaluation spend apart, and the
    savings statement (each lever's saving and method, what the levers cost)."""
    grace = int(_setting("FINOPS_CHARGEBACK_GRACE_DAYS", 3))
    for org in Organization.objects.all():
        tz = org_zone(org)
        local = now.astimezone(tz)
        if local.day > grace or (local.day == 1 and local.hour < 1):
            continue
        after = local.date().replace(day=1)
        first = (after - DAY).replace(day=1)
        rows = DailySpend.objects.filter(
            org_id=org.pk, day__gte=first, day__lt=after, team_id__gt=0
        )
        totals = rows.values("team_id").annotate(
            cost=Sum("cost"), eval_cost=Sum("eval_cost"), requests=Sum("requests")
        )
        teams = {t.pk: t for t in Team.objects.filter(org=org)}
        for total in totals:
            team = teams.get(total["team_id"])
            if team is None or not (total["cost"] or total["eval_cost"]):
                continue
            team_rows = rows.filter(team_id=team.pk)
            month = first.strftime("%Y-%m")
            cost = Decimal(total["cost"] or 0)
            _, created = alert_record(
                now=now,
                dedupe_key=f"chargeback:{team.pk}:{month}",
                org=org,
                team=team,
                kind=AlertKind.CHARGEBACK,
                scope_label=f"team {team.slug}",
                window_start=local_midnight(first, tz),
                window_end=local_midnight(after, tz),
                spent_usd=cost,
                contributors=top_contributors(team_rows, "feature", org_id=org.pk),
                recipients=alert_recipients(org=org, team=team, also=finance_addresses(org)),
                subject=(
                    f"[LLM FinOps] Chargeback statement {month}: team {team.slug}, {usd(cost)} USD"
                )[:300],
                details={
                    "month": month,
                    "requests": total["requests"] or 0,
                    "evaluation_cost": money(total["eval_cost"]),
                    "by_feature": _breakdown(team_rows, "feature"),
                    "by_model": _breakdown(team_rows, "model"),
                    "savings": _savings(team_rows),
                },
            )
            run.recorded += int(created)


def _savings(rows: QuerySet[DailySpend]) -> dict:
    """``reports.savings`` of the month (money at 12 places), with each amount also rounded for
    people (``*_text``, as the email shows it)."""
    savings = Savings.of(rows.aggregate(**savings_sums())).as_json()
    for name in ("saved", "without_levers", "lever_cost", "net_saved"):
        savings[f"{name}_text"] = usd(savings[name])
    for lever in savings["levers"]:
        lever["saved_text"] = usd(lever["saved"])
        lever["spend_text"] = usd(lever["spend"])
    for cost in savings["lever_costs"]:
        cost["cost_text"] = usd(cost["cost"])
    return savings


def _breakdown(rows: QuerySet[DailySpend], column: str) -> list[dict]:
    return [
        {
            "name": r[column] or "(none)",
            "requests": r["requests"] or 0,
            "tokens": (r["prompt"] or 0) + (r["completion"] or 0),
            "cost": money(r["total"]),
        }
        for r in rows.values(column)
        .annotate(
            total=Sum("cost"),
            requests=Sum("requests"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
        )
        .filter(Q(total__gt=0) | Q(requests__gt=0))  # not the evaluation-only rows
        .order_by("-total", column)
    ]


# --- entry point ---------------------------------------------------------------------------------


def budget_alerts_evaluate(*, now: datetime | None = None) -> AlertRun:
    """The periodic alerting job: every budget's thresholds and forecast, anomalies, chargeback
    statements; then deliver what is pending (emails first, webhooks after, each on its own).

    A system job over every organisation (no user): not a tenant-facing read.
    """
    from reports.services.notify import alerts_deliver, webhooks_deliver

    now = now or timezone.now()
    run = AlertRun()
    budgets = Budget.objects.select_related(
        "org", "team", "feature", "feature__team", "key", "key__team"
    ).order_by("id")
    for budget in budgets:
        try:
            spend = budget_spent(budget, at=now)
            budget_thresholds_evaluate(budget, spend, run, now=now)
            budget_forecast_evaluate(budget, spend, run, now=now)
        except Exception:
            log.exception("alerts: evaluating budget %s failed", budget.pk)
            run.errors += 1
    for job in (
        spend_anomalies_evaluate,
        chargeback_statements_evaluate,
        usage_over_bound_evaluate,
        invoice_gaps_evaluate,
    ):
        try:
            job(run, now=now)
        except Exception:
            log.exception("alerts: %s failed", job.__name__)
            run.errors += 1
    alerts_deliver(run, now=now)
    webhooks_deliver(run, now=now)
    return run
