"""One alert's page (``/reports/alerts/<id>/``): its numbers and contributors. Every alert email
links here (a chargeback's to its team's statement); its context is the email's
(``reports.services.notify.alert_context``). Another tenant's alert is a 404.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from reports.selectors import budget_alert_list_for_user
from reports.services.notify import alert_context


@login_required
def alert_detail(request, pk: int):
    """One alert with its numbers and contributors; another tenant's alert is a 404."""
    alert = get_object_or_404(budget_alert_list_for_user(request.user), pk=pk)
    return render(request, "reports/alert_detail.html", alert_context(alert))
