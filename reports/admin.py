"""Admin for reporting: alerts sent (read-only), webhooks (admin and finance manage them), the
day rollups and the imports of provider reports (read-only). Scoped like every admin here,
through ``teams.admin.ScopedAdmin``."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from reports import selectors as rs
from reports.models import AlertWebhook, BudgetAlert, DailySpend, ProviderReportPull
from teams import selectors
from teams.admin import ScopedAdmin
from teams.models import Budget
from teams.permissions import Subject


class _ReadOnly:
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BudgetAlert)
class BudgetAlertAdmin(_ReadOnly, ScopedAdmin):
    """Every alert recorded: what was sent, to whom, when, and with which numbers."""

    subject = Subject.BUDGET
    list_display = (
        "created_at",
        "org",
        "kind",
        "scope_label",
        "threshold",
        "spent_usd",
        "limit_usd",
        "percent",
        "status",
        "sent_at",
        "webhook_status",
    )
    list_filter = ("kind", "status", "webhook_status")
    search_fields = ("subject", "scope_label", "dedupe_key")
    date_hierarchy = "created_at"

    def scoped_queryset(self, request):
        return rs.budget_alert_list_for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in BudgetAlert._meta.fields]


@admin.register(AlertWebhook)
class AlertWebhookAdmin(ScopedAdmin):
    """Slack-compatible webhooks for a budget, a team or a whole organisation."""

    subject = Subject.BUDGET
    audit_name = "alertwebhook"
    list_display = ("org", "team", "budget", "url", "active", "created_at")
    list_filter = ("active",)
    fields = ("org", "team", "budget", "url", "active")

    def scoped_queryset(self, request):
        return selectors.org_scoped(
            request.user, AlertWebhook.objects.select_related("org", "team", "budget")
        ).filter(Q(org_id__in=self.manageable(request)[0]))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Budget:
            orgs, _ = self.manageable(request)
            kwargs["queryset"] = Budget.objects.filter(org_id__in=orgs).select_related("org")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(DailySpend)
class DailySpendAdmin(_ReadOnly, ScopedAdmin):
    """The day rollups, as the spend API reads them (rebuild with ``manage.py rollup``)."""

    subject = Subject.BUDGET
    list_display = (
        "day",
        "org_id",
        "team_id",
        "feature",
        "endpoint",
        "model",
        "requests",
        "attempts",
        "cost",
        "eval_cost",
    )
    search_fields = ("feature", "endpoint", "model", "end_user")
    date_hierarchy = "day"
    show_full_result_count = False

    def scoped_queryset(self, request):
        return rs.daily_spend_list_for_user(request.user)


@admin.register(ProviderReportPull)
class ProviderReportPullAdmin(_ReadOnly, ScopedAdmin):
    """Imports of the providers' own usage and cost reports (pulled or uploaded): read-only
    here; upload and pull from the "Invoice vs ledger" page, the API or ``reconcile_invoices``."""

    subject = Subject.INVOICE
    list_display = ("created_at", "org", "provider", "source", "start", "end", "status", "rows")
    list_filter = ("source", "status")
    search_fields = ("provider__slug", "filename", "error")
    date_hierarchy = "created_at"

    def scoped_queryset(self, request):
        return rs.report_pull_list_for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ProviderReportPull._meta.fields]
