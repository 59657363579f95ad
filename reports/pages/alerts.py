"""One alert's page (``/reports/alerts/<id>/``): its numbers and contributors. Every alert email
links here (a chargeback's to its team's statement); its context is the email's
(``reports.services.notify.alert_context``). Another tenant's alert is a 404.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from finops.money import percent_display, usd_display
from reports.selectors import budget_alert_list_for_user
from reports.services.notify import alert_context


def _or_none(value):
    return None if value is None else usd_display(value)


@login_required
def alert_detail(request, pk: int):
    """One alert with its numbers and contributors; another tenant's alert is a 404."""
    alert = get_object_or_404(budget_alert_list_for_user(request.user), pk=pk)
    context = alert_context(alert)
    # The email's context, with its amounts in the pages' house format (``finops.money``).
    context.update(
        spent=usd_display(alert.spent_usd),
        limit=_or_none(alert.limit_usd),
        percent=None if alert.percent is None else percent_display(alert.percent),
        forecast=_or_none(alert.forecast_usd),
        baseline=_or_none(alert.baseline_usd),
        contributors=[{**c, "cost_usd": usd_display(c["cost"])} for c in alert.contributors],
        by_feature=[{**r, "cost_usd": usd_display(r["cost"])} for r in context["by_feature"]],
        by_model=[{**r, "cost_usd": usd_display(r["cost"])} for r in context["by_model"]],
    )
    return render(request, "reports/alert_detail.html", context)
