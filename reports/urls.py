"""Reporting pages."""

from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("reports/alerts/<int:pk>/", views.alert_detail, name="alert-detail"),
]
