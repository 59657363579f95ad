"""Reporting routes under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from reports import apis, invoice_apis, savings_apis

router = SimpleRouter()
router.register("alerts", apis.BudgetAlertViewSet, basename="budget-alert")
router.register(
    "reconciliation/imports", invoice_apis.ReportPullViewSet, basename="reconciliation-import"
)

urlpatterns = [
    path("spend/", apis.SpendView.as_view(), name="spend"),
    path("savings/", savings_apis.SavingsView.as_view(), name="savings"),
    path("reconciliation/", invoice_apis.ReconciliationView.as_view(), name="reconciliation"),
    path(
        "reconciliation/suggestions/",
        invoice_apis.PriceSuggestionView.as_view(),
        name="reconciliation-suggestions",
    ),
    path(
        "reconciliation/policy/",
        invoice_apis.ReconciliationPolicyView.as_view(),
        name="reconciliation-policy",
    ),
    *router.urls,
]

urlpatterns += [
    path("exports/focus/", apis.FocusExportView.as_view(), name="export-focus"),
]
