"""Alert evaluation: budget thresholds, budget forecasts, spend anomalies, chargeback statements.

Every evaluation reads the day rollups (never the gateway's live counters) and *records* what it
finds as a ``BudgetAlert`` named by a ``dedupe_key``; recording twice (a second run, a second
worker) finds the row already there. Delivery (email, then webhooks) is separate and claims each
alert with a conditional update (``reports.services.notify``), so nothing is sent twice.
"""

from __future__ import annotations

import logging
import math
import statistics
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from finops.money import money, usd
from reports.models import AlertKind, AlertStatus, AlertWebhook, BudgetAlert, DailySpend
from reports.periods import DAY, local_date, local_midnight, period_days
from reports.selectors import budget_rows
from teams.models import Budget, BudgetScope, Membership, Organization, Role, Team, VirtualKey

log = logging.getLogger(__name__)

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


def _setting(name: str, default):
    return getattr(settings, name, default)


def _zone(org: Organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(org.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


# --- budget spend --------------------------------------------------------------------------------


@dataclass
class BudgetSpend:
    budget: Budget
    window_start: datetime
    window_end: datetime
    first_day: date
    after_day: date
    today: date
    spent: Decimal

    @property
    def limit(self) -> Decimal:
        return Decimal(self.budget.limit_usd)

    @property
    def percent(self) -> Decimal:
        if self.limit <= 0:
            return Decimal(0)
        return (self.spent * HUNDRED / self.limit).quantize(CENT)


def budget_team(budget: Budget) -> Team | None:
    if budget.scope == BudgetScope.TEAM:
        return budget.team
    if budget.scope == BudgetScope.FEATURE:
        return budget.feature.team
    if budget.scope == BudgetScope.KEY:
        return budget.key.team
    return None


def budget_spent(budget: Budget, *, at: datetime | None = None) -> BudgetSpend:
    """Spend of the budget's current window (calendar-aligned in the org's timezone)."""
    at = at or timezone.now()
    tz = _zone(budget.org)
    today = local_date(at, tz)
    first, after = period_days(budget.period, today)
    spent = budget_rows(budget).filter(day__gte=first, day__lt=after).aggregate(s=Sum("cost"))[
        "s"
    ] or Decimal(0)
    return BudgetSpend(
        budget=budget,
        window_start=local_midnight(first, tz),
        window_end=local_midnight(after, tz),
        first_day=first,
        after_day=after,
        today=today,
        spent=Decimal(spent),
    )


# --- contributors and recipients -----------------------------------------------------------------


def top_contributors(rows: QuerySet[DailySpend], column: str, *, org_id: int, n: int = 3) -> list:
    """The ``n`` largest values of ``column`` in ``rows`` by cost, with their share."""
    grouped = list(
        rows.values(column).annotate(total=Sum("cost")).filter(total__gt=0).order_by("-total")
    )
    whole = sum((Decimal(g["total"]) for g in grouped), Decimal(0))
    labels: dict = {}
    ids = [g[column] for g in grouped[:n]]
    if column == "team_id":
        labels = dict(Team.objects.filter(id__in=ids).values_list("id", "slug"))
    elif column == "key_id":
        labels = dict(VirtualKey.objects.filter(id__in=ids).values_list("id", "name"))
    out = []
    for g in grouped[:n]:
        value = g[column]
        if column in ("team_id", "key_id"):
            name = labels.get(value, f"#{value}") if value else "(none)"
        else:
            name = value or "(none)"
        cost = Decimal(g["total"])
        out.append(
            {
                "dimension": column.removesuffix("_id"),
                "name": name,
                "cost": money(cost),
                "share": float((cost * HUNDRED / whole).quantize(CENT)) if whole else 0.0,
            }
        )
    return out


_CONTRIBUTOR_COLUMN = {
    BudgetScope.ORG: "team_id",
    BudgetScope.TEAM: "feature",
    BudgetScope.FEATURE: "endpoint",
    BudgetScope.KEY: "feature",
}


def _address(user) -> str | None:
    if user.email:
        return user.email
    return user.username if "@" in (user.username or "") else None


def alert_recipients(*, org: Organization, team: Team | None, extra=(), also=()) -> list[str]:
    """``extra`` (e.g. a budget's recipients), then the team's leads, or for org-level alerts
    the org's admins and finance people, then ``also``; case-insensitively unique, in order."""
    members = Membership.objects.filter(org=org, user__is_active=True).select_related("user")
    if team is not None:
        members = members.filter(team=team, role=Role.LEAD)
    else:
        members = members.filter(team__isnull=True, role__in=[Role.ADMIN, Role.FINANCE])
    out: list[str] = []
    seen: set[str] = set()
    for address in [*extra, *(_address(m.user) for m in members.order_by("id")), *also]:
        if address and address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def _finance(org: Organization) -> list[str]:
    return [
        a
        for a in (
            _address(m.user)
            for m in Membership.objects.filter(
                org=org, team__isnull=True, role=Role.FINANCE, user__is_active=True
            ).select_related("user")
        )
        if a
    ]


# --- recording -----------------------------------------------------------------------------------


def _webhook_targets(*, org_id: int, team_id: int | None, budget_id: int | None) -> bool:
    hooks = AlertWebhook.objects.filter(org_id=org_id, active=True)
    match = Q(team__isnull=True, budget__isnull=True)
    if team_id:
        match |= Q(team_id=team_id, budget__isnull=True)
    if budget_id:
        match |= Q(budget_id=budget_id)
    return hooks.filter(match).exists()


def alert_record(*, dedupe_key: str, now: datetime, **fields) -> tuple[BudgetAlert, bool]:
    """Insert the alert unless one with this key exists: (alert, created)."""
    existing = BudgetAlert.objects.filter(dedupe_key=dedupe_key).first()
    if existing is not None:
        return existing, False
    team = fields.get("team")
    budget = fields.get("budget")
    if _webhook_targets(
        org_id=fields["org"].pk,
        team_id=team.pk if team else None,
        budget_id=budget.pk if budget else None,
    ):
        fields.setdefault("webhook_status", "pending")
        fields.setdefault("webhook_next_at", now)
    fields.setdefault("created_at", now)
    try:
        with transaction.atomic():
            return BudgetAlert.objects.create(dedupe_key=dedupe_key, **fields), True
    except IntegrityError:  # another worker recorded it first
        return BudgetAlert.objects.get(dedupe_key=dedupe_key), False


@dataclass
class AlertRun:
    recorded: int = 0
    sent: int = 0
    failed: int = 0
    webhooks: int = 0
    errors: int = 0

    def __str__(self) -> str:
        return (
            f"{self.recorded} alerts recorded, {self.sent} emailed, {self.failed} failed, "
            f"{self.webhooks} webhooks delivered, {self.errors} errors"
        )


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


@dataclass
class Forecast:
    projected: Decimal
    exhausts_on: date | None
    weekday_rate: Decimal
    weekend_rate: Decimal
    method: str


def _daily_costs(rows: QuerySet[DailySpend], first: date, after: date) -> dict[date, Decimal]:
    return {
        r["day"]: Decimal(r["total"] or 0)
        for r in rows.filter(day__gte=first, day__lt=after)
        .values("day")
        .annotate(total=Sum("cost"))
    }


HISTORY_DAYS = 28  # the run rates look back this many complete days


def run_rates(daily: dict[date, Decimal], today: date):
    """Weekday and weekend run rates over the trailing ``HISTORY_DAYS`` complete days, counted
    from the scope's first day of spend in them: (days, weekday rate, weekend rate), or None
    under 7 days. The alerts' forecast and the dashboards' burn-down both use it."""
    history = {d: c for d, c in daily.items() if today - timedelta(days=HISTORY_DAYS) <= d < today}
    active = sorted(d for d, c in history.items() if c > 0)
    if not active or (today - active[0]).days < 7:
        return None
    days = [active[0] + timedelta(days=i) for i in range((today - active[0]).days)]
    weekdays = [history.get(d, Decimal(0)) for d in days if d.weekday() < 5]
    weekends = [history.get(d, Decimal(0)) for d in days if d.weekday() >= 5]
    weekday_rate = sum(weekdays, Decimal(0)) / len(weekdays) if weekdays else Decimal(0)
    weekend_rate = sum(weekends, Decimal(0)) / len(weekends) if weekends else weekday_rate
    if not weekdays:
        weekday_rate = weekend_rate
    return days, weekday_rate, weekend_rate


def budget_forecast(budget: Budget, spend: BudgetSpend, *, now: datetime) -> Forecast | None:
    """Projected spend at the end of the window: what is spent, plus the rest of today and each
    remaining day at the scope's run rate for that kind of day (weekday or weekend), from the
    trailing 28 complete days (counted from the scope's first day of spend; none under 7)."""
    tz = _zone(budget.org)
    today = spend.today
    history = _daily_costs(budget_rows(budget), today - timedelta(days=HISTORY_DAYS), today)
    rates = run_rates(history, today)
    if rates is None:
        return None  # under a week of history: a projection would be noise
    days, weekday_rate, weekend_rate = rates
    method = f"weekday and weekend run rates over the last {len(days)} days"

    def rate(day: date) -> Decimal:
        return weekend_rate if day.weekday() >= 5 else weekday_rate

    day_end = local_midnight(today + DAY, tz)
    day_length = (day_end - local_midnight(today, tz)).total_seconds()
    rest_of_today = Decimal(max(0.0, (day_end - now).total_seconds()) / day_length)
    remaining = spend.limit - spend.spent
    projected = spend.spent
    exhausts_on = None
    steps = [(today, rate(today) * rest_of_today)]
    day = today + DAY
    while day < spend.after_day:
        steps.append((day, rate(day)))
        day += DAY
    for day, amount in steps:
        projected += amount
        remaining -= amount
        if exhausts_on is None and remaining < 0:
            exhausts_on = day
    return Forecast(
        projected=projected,
        exhausts_on=exhausts_on,
        weekday_rate=weekday_rate,
        weekend_rate=weekend_rate,
        method=method,
    )


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


def _robust_z(value: Decimal, history: list[Decimal]) -> tuple[float, Decimal]:
    """(robust z-score, median): 0.6745 (x - median) / MAD; infinite when the MAD is zero and
    the value is above the median."""
    median = Decimal(statistics.median(history))
    mad = Decimal(statistics.median([abs(h - median) for h in history]))
    if mad == 0:
        return (math.inf if value > median else 0.0), median
    return float(Decimal("0.6745") * (value - median) / mad), median


def spend_anomalies_evaluate(run: AlertRun, *, now: datetime) -> None:
    """A team's or a feature's spend today (local day, so far) far above its trailing 28-day
    baseline: robust z-score >= ``FINOPS_ANOMALY_Z``, at least ``FINOPS_ANOMALY_RATIO`` times
    the median day and at least ``FINOPS_ANOMALY_MIN_USD``; 7 days of history needed."""
    z_min = float(_setting("FINOPS_ANOMALY_Z", 3.5))
    ratio = Decimal(str(_setting("FINOPS_ANOMALY_RATIO", 2)))
    floor = Decimal(str(_setting("FINOPS_ANOMALY_MIN_USD", 1)))
    for org in Organization.objects.all():
        tz = _zone(org)
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
            z, median = _robust_z(value, history)
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
        recipients=alert_recipients(org=org, team=team, also=_finance(org)),
        subject=subject[:300],
        details={"z": "inf" if math.isinf(z) else round(z, 2), "day": today.isoformat()},
    )
    return created


# --- chargeback ----------------------------------------------------------------------------------


def chargeback_statements_evaluate(run: AlertRun, *, now: datetime) -> None:
    """On the 1st (org's timezone; from 01:00, once the last evening is rolled up, and up to
    ``FINOPS_CHARGEBACK_GRACE_DAYS`` days late after an outage), one statement per team with
    spend in the previous month: totals, by feature, by model, evaluation spend apart."""
    grace = int(_setting("FINOPS_CHARGEBACK_GRACE_DAYS", 3))
    for org in Organization.objects.all():
        tz = _zone(org)
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
                recipients=alert_recipients(org=org, team=team, also=_finance(org)),
                subject=(
                    f"[LLM FinOps] Chargeback statement {month}: team {team.slug}, {usd(cost)} USD"
                )[:300],
                details={
                    "month": month,
                    "requests": total["requests"] or 0,
                    "evaluation_cost": money(total["eval_cost"]),
                    "by_feature": _breakdown(team_rows, "feature"),
                    "by_model": _breakdown(team_rows, "model"),
                },
            )
            run.recorded += int(created)


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
    for job in (spend_anomalies_evaluate, chargeback_statements_evaluate):
        try:
            job(run, now=now)
        except Exception:
            log.exception("alerts: %s failed", job.__name__)
            run.errors += 1
    alerts_deliver(run, now=now)
    webhooks_deliver(run, now=now)
    return run
