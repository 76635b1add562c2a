from django.urls import path

from . import pages

app_name = "integrations"

urlpatterns = [
    path("tokens/", pages.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", pages.token_revoke, name="token_revoke"),
    path("webhooks/", pages.webhook_list, name="webhooks"),
    path("webhooks/<int:pk>/", pages.webhook_detail, name="webhook"),
    path("webhooks/<int:pk>/test/", pages.webhook_test, name="webhook_test"),
    path("webhooks/<int:pk>/enable/", pages.webhook_enable, name="webhook_enable"),
    path("webhooks/<int:pk>/rotate/", pages.webhook_rotate, name="webhook_rotate"),
    path("webhooks/<int:pk>/delete/", pages.webhook_delete, name="webhook_delete"),
]
