from django.contrib import admin
from django.urls import include, path

from finops import ops_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("finops.api_urls")),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("", include("teams.urls")),
    path("", include("reports.urls")),
]
