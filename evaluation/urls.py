"""Evaluation pages: a router's savings and quality, an A/B experiment's arms."""

from django.urls import path

from evaluation import views

app_name = "evaluation"

urlpatterns = [
    path("reports/routers/<int:router_id>/", views.router_page, name="router"),
    path("reports/routers/<int:router_id>/data.json", views.router_data, name="router-data"),
    path("reports/experiments/<int:experiment_id>/", views.experiment_page, name="experiment"),
    path(
        "reports/experiments/<int:experiment_id>/data.json",
        views.experiment_data,
        name="experiment-data",
    ),
]
