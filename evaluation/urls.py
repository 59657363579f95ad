"""Evaluation pages (``evaluation.pages``): a router's savings and quality, an A/B experiment's
arms."""

from django.urls import path

from evaluation.pages import experiments, routers

app_name = "evaluation"

urlpatterns = [
    path("reports/routers/<int:router_id>/", routers.router_page, name="router"),
    path("reports/routers/<int:router_id>/data.json", routers.router_data, name="router-data"),
    path(
        "reports/experiments/<int:experiment_id>/", experiments.experiment_page, name="experiment"
    ),
    path(
        "reports/experiments/<int:experiment_id>/data.json",
        experiments.experiment_data,
        name="experiment-data",
    ),
]
