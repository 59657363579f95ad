"""Reporting pages (HTML). The alert page is where every alert email links to."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from reports.selectors import budget_alert_list_for_user


@login_required
def alert_detail(request, pk: int):
    """One alert with its numbers and contributors; another tenant's alert is a 404."""
    from reports.services.notify import alert_context

    alert = get_object_or_404(budget_alert_list_for_user(request.user), pk=pk)
    return render(request, "reports/alert_detail.html", alert_context(alert))
