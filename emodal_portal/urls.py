from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from .health import healthz

admin.site.site_header = "E-Modal Portal"
admin.site.site_title = "E-Modal Portal"
admin.site.index_title = "Administration"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="queries:list", permanent=False), name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("queries/", include("queries_app.urls")),
]
