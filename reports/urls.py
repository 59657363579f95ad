"""Reporting pages."""

from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("reports/alerts/<int:pk>/", views.alert_detail, name="alert-detail"),
]

# --- model catalog (issue 7) ---
from reports import catalog_views  # noqa: E402

urlpatterns += [
    path("reports/orgs/<int:org_id>/models/", catalog_views.catalog, name="catalog"),
]

urlpatterns += [
    path(
        "reports/teams/<int:team_id>/statements/<str:month>/",
        views.team_statement,
        name="team-statement",
    ),
]

# --- dashboards (issue 7): organisation overview and team pages, and their JSON ---
from reports import dashboard_views  # noqa: E402

urlpatterns += [
    path("reports/", dashboard_views.spend_home, name="spend-home"),
    path("reports/orgs/<int:org_id>/", dashboard_views.org_overview_page, name="org-overview"),
    path(
        "reports/orgs/<int:org_id>/data.json",
        dashboard_views.org_overview_data,
        name="org-overview-data",
    ),
    path(
        "reports/teams/<int:team_id>/",
        dashboard_views.team_dashboard_page,
        name="team-dashboard",
    ),
    path(
        "reports/teams/<int:team_id>/data.json",
        dashboard_views.team_dashboard_data,
        name="team-dashboard-data",
    ),
]
