from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from finops import ops_views

urlpatterns = [
    # The admin signs in through the throttled login page (teams.login_throttle), not its own.
    path(
        "admin/login/",
        RedirectView.as_view(pattern_name="login", query_string=True),
        name="admin-login",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("finops.api_urls")),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("", include("teams.urls")),
    path("", include("reports.urls")),
    path("", include("evaluation.urls")),
]
