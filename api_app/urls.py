"""/api/: the versioned API, its OpenAPI schema and its docs. Nothing under /api/ answers an
HTML error page, nor redirects (no slash appended): an unknown path is a JSON 404."""

from django.urls import path, re_path
from django.views.decorators.common import no_append_slash
from drf_spectacular.views import SpectacularAPIView

from bookings_app import api as bookings
from emodal_portal import ids  # noqa: F401 - registers <id:…>

from . import views
from .docs import ApiDocsView
from .errors import NOT_FOUND_URL_NAME, api_not_found

app_name = "api"

v1 = [
    path("accounts/", views.AccountList.as_view(), name="account-list"),
    path("kinds/", views.KindList.as_view(), name="kind-list"),
    path("queries/", views.QueryList.as_view(), name="query-list"),
    path("queries/<id:pk>/", views.QueryDetail.as_view(), name="query-detail"),
    path("queries/<id:pk>/cancel/", views.QueryCancel.as_view(), name="query-cancel"),
    path("queries/<id:pk>/containers/", views.QueryContainers.as_view(), name="query-containers"),
    path("queries/<id:pk>/infos/", views.QueryInfos.as_view(), name="query-infos"),
    path("queries/<id:pk>/checks/", views.QueryChecks.as_view(), name="query-checks"),
    path(
        "queries/<id:pk>/appointments/",
        views.QueryAppointments.as_view(),
        name="query-appointments",
    ),
    path("queries/<id:pk>/changes/", views.QueryChanges.as_view(), name="query-changes"),
    path("containers/", views.ContainerList.as_view(), name="container-list"),
    path("containers/<str:number>/", views.ContainerDetail.as_view(), name="container-detail"),
    path("bookings/", bookings.BookingList.as_view(), name="booking-list"),
    path("bookings/<id:pk>/", bookings.BookingDetail.as_view(), name="booking-detail"),
    path("bookings/<id:pk>/confirm/", bookings.BookingConfirm.as_view(), name="booking-confirm"),
    path("event-types/", views.EventTypeList.as_view(), name="event-type-list"),
    path("webhooks/", views.WebhookList.as_view(), name="webhook-list"),
    path("webhooks/<id:pk>/", views.WebhookDetail.as_view(), name="webhook-detail"),
    path("webhooks/<id:pk>/test/", views.WebhookTest.as_view(), name="webhook-test"),
    path(
        "webhooks/<id:pk>/rotate-secret/",
        views.WebhookRotateSecret.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "webhooks/<id:pk>/deliveries/",
        views.WebhookDeliveries.as_view(),
        name="webhook-deliveries",
    ),
]

urlpatterns = [
    *[path(f"v1/{p.pattern}", no_append_slash(p.callback), name=p.name) for p in v1],
    path("schema/", no_append_slash(SpectacularAPIView.as_view()), name="schema"),
    path("docs/", no_append_slash(ApiDocsView.as_view(url_name="api:schema")), name="docs"),
    re_path(r"^(?P<rest>.*)$", no_append_slash(api_not_found), name=NOT_FOUND_URL_NAME),
]
