from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from finops import ops_views
from reports.pages import home as home_page
from reports.pages import keys as key_pages


def favicon(request):
    """Browsers ask for ``/favicon.ico`` whatever the page links; send them to the static icon."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
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
    # the home page shows spend, budgets and alerts: it belongs to reports, like the keys page
    path("", home_page.home, name="home"),
    path("", include("teams.urls")),
    # a control-plane page that shows spend, so it belongs to reports; its name is not namespaced
    path("teams/<int:team_id>/keys/", key_pages.team_keys, name="team-keys"),
    path("", include("reports.urls")),
    path("", include("evaluation.urls")),
]
