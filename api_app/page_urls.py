from django.urls import path

from emodal_portal import ids  # noqa: F401 - registers <id:…>

from . import pages

app_name = "integrations"

urlpatterns = [
    path("tokens/", pages.token_list, name="tokens"),
    path("tokens/<id:pk>/revoke/", pages.token_revoke, name="token_revoke"),
    path("webhooks/", pages.webhook_list, name="webhooks"),
    path("webhooks/<id:pk>/", pages.webhook_detail, name="webhook"),
    path("webhooks/<id:pk>/test/", pages.webhook_test, name="webhook_test"),
    path("webhooks/<id:pk>/enable/", pages.webhook_enable, name="webhook_enable"),
    path("webhooks/<id:pk>/rotate/", pages.webhook_rotate, name="webhook_rotate"),
    path("webhooks/<id:pk>/delete/", pages.webhook_delete, name="webhook_delete"),
]
