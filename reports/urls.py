"""Reporting pages (``reports.pages``, one module per page family)."""

from django.urls import path

from reports.pages import alerts, catalog, dashboards, invoices, statement_index, statements

app_name = "reports"

urlpatterns = [
    path("reports/alerts/<int:pk>/", alerts.alert_detail, name="alert-detail"),
    # model catalog
    path("reports/orgs/<int:org_id>/models/", catalog.catalog, name="catalog"),
    # invoice vs ledger (provider reports reconciled with the ledger)
    path("reports/orgs/<int:org_id>/invoices/", invoices.invoices, name="invoices"),
    path(
        "reports/teams/<int:team_id>/statements/",
        statement_index.statement_index,
        name="statement-index",
    ),
    path(
        "reports/teams/<int:team_id>/statements/<str:month>/",
        statements.team_statement,
        name="team-statement",
    ),
    # dashboards: organisation overview and team pages, and their JSON
    path("reports/", dashboards.spend_home, name="spend-home"),
    path("reports/orgs/<int:org_id>/", dashboards.org_overview_page, name="org-overview"),
    path(
        "reports/orgs/<int:org_id>/data.json",
        dashboards.org_overview_data,
        name="org-overview-data",
    ),
    path(
        "reports/teams/<int:team_id>/",
        dashboards.team_dashboard_page,
        name="team-dashboard",
    ),
    path(
        "reports/teams/<int:team_id>/data.json",
        dashboards.team_dashboard_data,
        name="team-dashboard-data",
    ),
]
