from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from ops_app.health import healthz
from ops_app.metrics import metrics_view
from portal import errors

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="containers:board", permanent=False), name="home"),
    # Log in and out, and change one's password. No password reset: the portal e-mails alerts
    # only, and reset pages would tell a visitor which addresses have logins.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("queries/", include("queries_app.urls")),
    # The alert settings, beside the board they speak of (before the board's /<number>/).
    path("containers/alerts/", include("notifications.urls")),
    path("containers/", include("containers_app.urls")),
    path("bookings/", include("bookings_app.urls")),
    path("api/", include("emodal_portal.api_urls")),
    path("integrations/", include("api_app.page_urls")),
]

# The usual pages; JSON under /api/ (the API registers its answers with portal.errors).
handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error
