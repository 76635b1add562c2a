"""Notifications in the admin: people's alert preferences and webhook endpoints (whose signing
secrets are never shown); deliveries, read-only (written by the dispatcher's channels and the
senders), filterable by channel and status — an endpoint's signing secret is never read."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.admin import ReadOnlyAdmin, ReadOnlyInline

from .models import AlertPreference, Delivery, DeliveryAttempt, DeliveryEvent, WebhookEndpoint


class DeliveryEventInline(ReadOnlyInline):
    model = DeliveryEvent
    fields = ("event",)
    readonly_fields = ("event",)
    verbose_name = "event told"
    verbose_name_plural = "events told"


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "duration_ms", "response_code", "error", "response_body")
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    deletable = False  # what was sent: pruned by retention, not by hand
    list_display = (
        "pk",
        "created_at",
        "channel",
        "to",
        "what",
        "status",
        "attempts",
        "response_code",
        "next_attempt_at",
        "finished_at",
    )
    list_filter = ("channel", "status", "is_test", "event_type")
    search_fields = ("recipient", "user__username", "subject", "event_id", "endpoint__url")
    date_hierarchy = "created_at"
    raw_id_fields = ("user", "endpoint", "account", "query")
    exclude = ("claim_token",)
    inlines = [DeliveryEventInline, DeliveryAttemptInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return (
            super()
            .get_queryset(request)
            .select_related("endpoint", "user")
            .defer("endpoint__secret")
        )

    @admin.display(description="to")
    def to(self, delivery: Delivery) -> str:
        return (
            delivery.recipient
            if delivery.channel == Delivery.Channel.EMAIL
            else str(delivery.endpoint)
        )

    @admin.display(description="what")
    def what(self, delivery: Delivery) -> str:
        if delivery.channel == Delivery.Channel.EMAIL:
            return delivery.subject
        return f"{delivery.event_type} {delivery.event_id}"


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
