"""Admin for reporting: alerts sent (read-only), webhooks (admin and finance manage them), the
day rollups and the imports of provider reports (read-only). Scoped like every admin here,
through ``teams.admin.ScopedAdmin``."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q

from reports import selectors as rs
from reports.invoices.csv_reports import MAX_BYTES, csv_figures
from reports.invoices.figures import ReportError
from reports.models import AlertWebhook, BudgetAlert, DailySpend, ProviderReportPull
from reports.services.invoices import report_import
from teams import selectors
from teams.admin import ScopedAdmin
from teams.models import Budget
from teams.permissions import Subject, may_manage


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


class ReportUploadForm(forms.ModelForm):
    """Upload a provider's report (the generic CSV or an Azure Cost Management export): read
    here, so a bad file is a form error naming its line; stored on save."""

    file = forms.FileField(help_text="Generic CSV (docs/reconciliation.md) or an Azure export.")

    class Meta:
        model = ProviderReportPull
        fields = ["provider"]

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_BYTES:
                raise forms.ValidationError({"file": "the file is larger than 50 MB"})
            self.data_bytes = upload.read()
            try:
                csv_figures(self.data_bytes)
            except ReportError as exc:
                raise forms.ValidationError({"file": str(exc)}) from None
        return data


@admin.register(ProviderReportPull)
class ProviderReportPullAdmin(ScopedAdmin):
    """Imports of the providers' own usage and cost reports (pulled or uploaded): "add" uploads
    a file; an import is never changed or deleted here (a newer one replaces its days). Also on
    the "Invoice vs ledger" page, the API and ``reconcile_invoices``."""

    subject = Subject.INVOICE
    list_display = ("created_at", "org", "provider", "source", "start", "end", "status", "rows")
    list_filter = ("source", "status")
    search_fields = ("provider__slug", "filename", "error")
    date_hierarchy = "created_at"
    add_form = ReportUploadForm

    def scoped_queryset(self, request):
        return rs.report_pull_list_for_user(request.user)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["provider", "file"] if obj is None else super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else [f.name for f in ProviderReportPull._meta.fields]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        provider = form.cleaned_data["provider"]
        if not may_manage(
            self.access(request), Subject.INVOICE, org_id=provider.org_id, team_id=None
        ):
            raise PermissionDenied
        upload = form.cleaned_data["file"]
        pull = report_import(
            actor=request.user, provider=provider, data=form.data_bytes, filename=upload.name or ""
        )
        obj.pk = pull.pk  # the admin's redirect and message name the stored import
        obj.__dict__.update({k: v for k, v in pull.__dict__.items() if not k.startswith("_")})

    def save_related(self, request, form, formsets, change):
        pass  # nothing else to save: the import is stored whole by report_import
