"""Subscriptions in the admin: people's alert preferences and webhook endpoints (whose signing
secrets are never shown)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import AlertPreference, WebhookEndpoint


@admin.register(AlertPreference)
class AlertPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "channel", "scope", "lfd_due_days", "updated_at")
    list_filter = ("channel", "scope")
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "user", "enabled", "last_success_at", "last_failure_at", "created_at"]
    list_filter = ["enabled"]
    list_select_related = ["user"]
    search_fields = ["url", "user__username", "description"]
    # The signing secret is never shown (its owner saw it once).
    exclude = ["secret"]
    readonly_fields = [
        "user",
        "disabled_at",
        "disabled_reason",
        "last_success_at",
        "last_failure_at",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return super().get_queryset(request).defer("secret")
