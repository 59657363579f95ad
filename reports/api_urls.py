"""Reporting routes under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from reports import apis

router = SimpleRouter()
router.register("alerts", apis.BudgetAlertViewSet, basename="budget-alert")

urlpatterns = [
    path("spend/", apis.SpendView.as_view(), name="spend"),
    *router.urls,
]

urlpatterns += [
    path("exports/focus/", apis.FocusExportView.as_view(), name="export-focus"),
]
