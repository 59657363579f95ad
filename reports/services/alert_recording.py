"""Recording an alert: its contributors (the largest values of a dimension by cost) and its
recipients, the ``BudgetAlert`` row named by its ``dedupe_key`` (recorded once, whichever worker
gets there first) with its webhook delivery flagged when a webhook targets it, and the counters
of one alerting run. The rules that decide what to record are ``reports.services.alerts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet, Sum

from finops.money import money
from reports.models import AlertWebhook, BudgetAlert, DailySpend
from teams.models import Membership, Organization, Role, Team, VirtualKey

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


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


def finance_addresses(org: Organization) -> list[str]:
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
