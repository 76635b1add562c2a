"""/api/v1/webhooks/ and /api/v1/event-types/: the caller's endpoints and their delivery log."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import endpoints as webhook_endpoints
from notifications.models import Delivery, WebhookEndpoint

from ..errors import error_body
from ..serializers import (
    ErrorSerializer,
    SecretSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
)
from .common import Pagination, caller, errors, service_error


def own_endpoint(request: Request, pk: int) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint.objects.filter(user=caller(request)), pk=pk)


@extend_schema_view(
    get=extend_schema(
        tags=["webhooks"], responses={200: WebhookEndpointSerializer(many=True), **errors()}
    ),
    post=extend_schema(
        tags=["webhooks"],
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointCreatedSerializer, **errors(400)},
    ),
)
class WebhookList(generics.ListAPIView):
    """The caller's webhook endpoints; POST registers one (its signing secret is in the
    answer, and only there)."""

    serializer_class = WebhookEndpointSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        return WebhookEndpoint.objects.filter(user=caller(self.request))

    def post(self, request: Request) -> Response:
        given = WebhookEndpointWriteSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            endpoint, secret = webhook_endpoints.create_endpoint(
                user=request.user,
                url=data["url"],
                events=data["events"],
                description=data.get("description", ""),
            )
        except DjangoValidationError as error:
            raise service_error(error) from None
        if data.get("enabled") is False:
            webhook_endpoints.update_endpoint(endpoint=endpoint, enabled=False)
        body = {**WebhookEndpointSerializer(endpoint).data, "secret": secret}
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api:webhook-detail", args=[endpoint.pk])},
        )


@extend_schema_view(
    get=extend_schema(tags=["webhooks"], responses={200: WebhookEndpointSerializer, **errors(404)}),
    patch=extend_schema(
        tags=["webhooks"],
        request=WebhookEndpointWriteSerializer(partial=True),
        responses={200: WebhookEndpointSerializer, **errors(400, 404)},
    ),
    delete=extend_schema(tags=["webhooks"], responses={204: None, **errors(404)}),
)
class WebhookDetail(APIView):
    """One of the caller's endpoints. PATCH changes its URL, events or description, or
    enables it again after it was disabled ({"enabled": true})."""

    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookEndpointSerializer(own_endpoint(request, pk)).data)

    def patch(self, request: Request, pk: int) -> Response:
        endpoint = own_endpoint(request, pk)
        given = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        try:
            webhook_endpoints.update_endpoint(endpoint=endpoint, **given.validated_data)
        except DjangoValidationError as error:
            raise service_error(error) from None
        return Response(WebhookEndpointSerializer(endpoint).data)

    def delete(self, request: Request, pk: int) -> Response:
        own_endpoint(request, pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    tags=["webhooks"],
    request=None,
    responses={
        202: OpenApiResponse(
            WebhookDeliverySerializer, description="Queued: a worker sends it at once."
        ),
        **errors(404),
        429: OpenApiResponse(
            ErrorSerializer,
            description="A test event went to this endpoint within the last minute (or the "
            "token's rate limit): see Retry-After.",
        ),
    },
)
class WebhookTest(APIView):
    """Send a test event (type webhook.test) to the endpoint, enabled or not: one attempt,
    which never counts against it. Its outcome appears in the delivery log. At most one per
    endpoint a minute (WEBHOOK_TEST_INTERVAL_SECONDS)."""

    def post(self, request: Request, pk: int) -> Response:
        endpoint = own_endpoint(request, pk)
        try:
            delivery = webhook_endpoints.send_test_event(endpoint=endpoint)
        except webhook_endpoints.TestEventTooSoon as refused:
            return Response(
                error_body(429, "test_event_limit", str(refused)),
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(refused.wait_seconds)},
            )
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["webhooks"], request=None, responses={200: SecretSerializer, **errors(404)})
class WebhookRotateSecret(APIView):
    """A new signing secret for the endpoint (the old one stops signing at once)."""

    def post(self, request: Request, pk: int) -> Response:
        secret = webhook_endpoints.rotate_secret(endpoint=own_endpoint(request, pk))
        return Response({"secret": secret})


@extend_schema(
    tags=["webhooks"], responses={200: WebhookDeliverySerializer(many=True), **errors(404)}
)
class WebhookDeliveries(generics.ListAPIView):
    """The endpoint's delivery log, newest first: each event's status, attempts and the
    receiver's answers."""

    serializer_class = WebhookDeliverySerializer
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet:
        endpoint = own_endpoint(self.request, self.kwargs["pk"])
        return Delivery.objects.webhooks().filter(endpoint=endpoint).prefetch_related("attempt_log")


@extend_schema(
    tags=["webhooks"],
    responses={
        200: inline_serializer(
            "EventTypes",
            {"type": serializers.CharField(), "label": serializers.CharField()},
            many=True,
        ),
        **errors(),
    },
)
class EventTypeList(APIView):
    """The event types an endpoint may subscribe to."""

    def get(self, request: Request) -> Response:
        from queries_app.events import EventType

        return Response([{"type": value, "label": label} for value, label in EventType.choices])
