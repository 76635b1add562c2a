"""The one shape of every error under /api/."""

from __future__ import annotations

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Every error under /api/ has this shape."""

    status = serializers.IntegerField(help_text="The HTTP status, repeated.")
    code = serializers.CharField(
        help_text="A stable word: invalid, not_authenticated, authentication_failed, "
        "permission_denied, not_found, method_not_allowed, rate_limited, trigger_limit, "
        "conflict, payload_too_large, bad_request, server_error."
    )
    message = serializers.CharField(help_text="What went wrong, in words for a person.")
    # Named like DRF's own `Serializer.fields` (the API's name): the stubs see a clash.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='Validation errors by field ("params.container_id"); "_" for the request '
        "as a whole.",
    )
