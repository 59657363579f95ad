"""A team's statements, one per month (``/reports/teams/<id>/statements/``): every month with
spend on the team, newest first, and the current month (open: its statement is a draft until
the month ends in the organisation's timezone), each linking to that month's statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.db.models.functions import TruncMonth
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from finops.money import usd_display
from reports.periods import local_date, org_zone
from reports.selectors import team_daily_rows
from teams.selectors import team_list_for_user


@dataclass(frozen=True)
class StatementMonth:
    first: date
    cost: Decimal
    requests: int
    is_open: bool
    url: str

    @property
    def label(self) -> str:
        return self.first.strftime("%B %Y")

    @property
    def cost_display(self) -> str:
        return usd_display(self.cost)


def statement_months(user, team, *, today: date) -> list[StatementMonth]:
    """The months with spend on ``team`` as ``user`` may read them, plus the current month."""
    rows = (
        team_daily_rows(user, team)
        .annotate(month=TruncMonth("day"))
        .values("month")
        .annotate(cost=Sum("cost"), requests=Sum("requests"))
        .order_by()
    )
    sums = {row["month"]: (row["cost"] or Decimal("0"), row["requests"] or 0) for row in rows}
    current = today.replace(day=1)
    sums.setdefault(current, (Decimal("0"), 0))
    return [
        StatementMonth(
            first=first,
            cost=cost,
            requests=requests,
            is_open=first >= current,
            url=reverse("reports:team-statement", args=[team.pk, first.strftime("%Y-%m")]),
        )
        for first, (cost, requests) in sorted(sums.items(), reverse=True)
    ]


@login_required
def statement_index(request, team_id: int):
    """A team the viewer may not read is a 404, as on the statement itself."""
    team = get_object_or_404(team_list_for_user(request.user), pk=team_id)
    today = local_date(timezone.now(), org_zone(team.org))
    months = statement_months(request.user, team, today=today)
    return render(
        request,
        "reports/statement_index.html",
        {"team": team, "org": team.org, "months": months},
    )
