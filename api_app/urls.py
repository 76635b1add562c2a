"""/api/: the API app's own routes under /api/v1/ (`v1`), and the whole /api/ URL conf around the
routes of every app that serves one (`api_urlpatterns`, put together in `emodal_portal.api_urls`):
the OpenAPI schema and its docs. Nothing under /api/ answers an HTML error page, nor redirects
(no slash appended): an unknown path is a JSON 404."""

from django.urls import URLPattern, URLResolver, path, re_path
from django.views.decorators.common import no_append_slash
from drf_spectacular.views import SpectacularAPIView

from emodal_portal import ids  # noqa: F401 - registers <id:…>

from .docs import ApiDocsView
from .errors import NOT_FOUND_URL_NAME, api_not_found
from .views import accounts, containers, queries, webhooks

v1 = [
    path("accounts/", accounts.AccountList.as_view(), name="account-list"),
    path("kinds/", accounts.KindList.as_view(), name="kind-list"),
    path("queries/", queries.QueryList.as_view(), name="query-list"),
    path("queries/<id:pk>/", queries.QueryDetail.as_view(), name="query-detail"),
    path("queries/<id:pk>/cancel/", queries.QueryCancel.as_view(), name="query-cancel"),
    path("queries/<id:pk>/containers/", queries.QueryContainers.as_view(), name="query-containers"),
    path("queries/<id:pk>/infos/", queries.QueryInfos.as_view(), name="query-infos"),
    path("queries/<id:pk>/checks/", queries.QueryChecks.as_view(), name="query-checks"),
    path(
        "queries/<id:pk>/appointments/",
        queries.QueryAppointments.as_view(),
        name="query-appointments",
    ),
    path("queries/<id:pk>/changes/", queries.QueryChanges.as_view(), name="query-changes"),
    path("containers/", containers.ContainerList.as_view(), name="container-list"),
    path("containers/<str:number>/", containers.ContainerDetail.as_view(), name="container-detail"),
    path("event-types/", webhooks.EventTypeList.as_view(), name="event-type-list"),
    path("webhooks/", webhooks.WebhookList.as_view(), name="webhook-list"),
    path("webhooks/<id:pk>/", webhooks.WebhookDetail.as_view(), name="webhook-detail"),
    path("webhooks/<id:pk>/test/", webhooks.WebhookTest.as_view(), name="webhook-test"),
    path(
        "webhooks/<id:pk>/rotate-secret/",
        webhooks.WebhookRotateSecret.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "webhooks/<id:pk>/deliveries/",
        webhooks.WebhookDeliveries.as_view(),
        name="webhook-deliveries",
    ),
]


def api_urlpatterns(routes: list[URLPattern]) -> list[URLPattern | URLResolver]:
    """/api/: the given /api/v1/ routes (the apps' `v1` lists), the schema, the docs and the
    JSON 404 for any other path."""
    return [
        *[path(f"v1/{p.pattern}", no_append_slash(p.callback), name=p.name) for p in routes],
        path("schema/", no_append_slash(SpectacularAPIView.as_view()), name="schema"),
        path("docs/", no_append_slash(ApiDocsView.as_view(url_name="api:schema")), name="docs"),
        re_path(r"^(?P<rest>.*)$", no_append_slash(api_not_found), name=NOT_FOUND_URL_NAME),
    ]
