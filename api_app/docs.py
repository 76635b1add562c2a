"""/api/docs/: Swagger UI for the schema, served by the portal itself (drf-spectacular-sidecar's
files through WhiteNoise, no CDN) under the strict Content-Security-Policy: the page has no
inline script or style — its start-up script is a separate response of the same view
(drf-spectacular's split view) and its few style rules are a static file."""

from __future__ import annotations

from drf_spectacular.views import SpectacularSwaggerSplitView


class ApiDocsView(SpectacularSwaggerSplitView):
    template_name = "api/swagger_ui.html"
    title = "E-Modal Portal API"
