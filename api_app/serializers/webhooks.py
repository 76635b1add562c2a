"""Webhook endpoints and their delivery log (/api/v1/webhooks/…)."""

from __future__ import annotations

from rest_framework import serializers

from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint
from queries_app.events import EventType


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), allow_empty=False
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_at",
            "disabled_reason",
            "last_success_at",
            "last_failure_at",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "disabled_at",
            "disabled_reason",
            "last_success_at",
            "last_failure_at",
            "created_at",
        ]


class WebhookEndpointWriteSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), allow_empty=False
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    enabled = serializers.BooleanField(required=False)


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (Standard Webhooks, whsec_…): shown this once."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret: shown this once.")


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    error = serializers.CharField(max_length=255)

    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "duration_ms", "response_code", "error"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    error = serializers.CharField(max_length=255)
    attempt_log = DeliveryAttemptSerializer(many=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "is_test",
            "status",
            "attempts",
            "next_attempt_at",
            "response_code",
            "error",
            "created_at",
            "finished_at",
            "attempt_log",
        ]
