"""Everything under /api/v1/: each app contributes its routes from its own ``api_urls``."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("teams.api_urls")),
    path("", include("gateway.api_urls")),
    path("", include("reports.api_urls")),
]
