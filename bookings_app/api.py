"""/api/v1/bookings/: the booking flow of the pages, with the same services and rules.

POST /bookings/ starts one (201, state `checking`; 200 with the container's open booking);
GET /bookings/<id>/ shows it (`slots`, the exact texts, once its fresh check is back, in state
`choose_slot`); POST /bookings/<id>/confirm/ {"slot": "<exact text>"} sends it, once (409 and
nothing sent for a booking past `choose_slot`, or whose slots are too old: a new check starts).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api_app.serializers import ErrorSerializer
from api_app.views.common import (
    Conflict,
    Pagination,
    account_to_start_for,
    errors,
    service_error,
    start_responses,
    started,
)

from . import services
from .models import Booking


class BookingSerializer(serializers.ModelSerializer):
    state_label = serializers.CharField(source="get_state_display", read_only=True)
    requested_by = serializers.CharField(source="requested_by.get_username", default=None)
    slots = serializers.SerializerMethodField()

    class Meta:
        model = Booking
        fields = [
            "id",
            "account",
            "container_number",
            "state",
            "state_label",
            "slots",
            "slots_seen_at",
            "slot",
            "terminal",
            "terminal_code",
            "move_type",
            "trucking_company",
            "truck_plate",
            "own_chassis",
            "pin_code",
            "requested_by",
            "created_at",
            "confirmed_at",
            "sent_at",
            "answered_at",
            "verified_at",
            "appointment_number",
            "note",
            "check_query",
            "verify_query",
        ]
        read_only_fields = fields

    def get_slots(self, booking: Booking) -> list[str]:
        """The fresh check's slot texts, exactly as E-Modal wrote them (while choosing)."""
        return list(booking.slots) if booking.state == Booking.State.CHOOSE_SLOT else []


class StartBookingSerializer(serializers.Serializer):
    container_number = serializers.CharField(max_length=20)
    account = serializers.IntegerField(
        required=False, min_value=1, help_text="Staff: the account to book for."
    )


class ConfirmBookingSerializer(serializers.Serializer):
    slot = serializers.CharField(
        max_length=200, trim_whitespace=False, help_text="One of `slots`, verbatim."
    )


def _visible(request: Request, pk: int) -> Booking:
    booking = get_object_or_404(
        Booking.objects.visible_to(request.user).select_related("requested_by"), pk=pk
    )
    return services.check_ended(booking)


def _denied() -> exceptions.PermissionDenied:
    return exceptions.PermissionDenied(
        "Booking needs the “Can book appointments” permission (staff give it per person); "
        "another account's, staff status too."
    )


@extend_schema_view(
    get=extend_schema(
        tags=["bookings"],
        summary="List bookings",
        responses={200: BookingSerializer(many=True), **errors()},
    ),
    post=extend_schema(
        tags=["bookings"],
        summary="Start a booking (a fresh check of the container's slots)",
        request=StartBookingSerializer,
        responses=start_responses(
            BookingSerializer,
            started="Started: state `checking`.",
            under_way="The container's booking already under way.",
        ),
    ),
)
class BookingList(generics.ListAPIView):
    """Bookings the caller may see, newest first (their account's; staff with “Can view
    booking”: all)."""

    serializer_class = BookingSerializer
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet:
        return Booking.objects.visible_to(self.request.user).select_related("requested_by")

    def post(self, request: Request) -> Response:
        given = StartBookingSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data: dict[str, Any] = given.validated_data
        account = account_to_start_for(request.user, data.get("account"))
        try:
            booking, created = services.start_booking(
                user=request.user, account=account, container_number=data["container_number"]
            )
        except PermissionDenied:
            raise _denied() from None
        except services.BookingRefused as refused:
            raise exceptions.ValidationError({"container_number": [str(refused)]}) from None
        location = reverse("api:booking-detail", args=[booking.pk])
        return started(BookingSerializer(booking).data, created=created, location=location)


@extend_schema(tags=["bookings"], responses={200: BookingSerializer, **errors(404)})
class BookingDetail(APIView):
    """A booking: its state, the slots to choose from (state `choose_slot`), what was sent, the
    answer, and the verdict."""

    def get(self, request: Request, pk: int) -> Response:
        return Response(BookingSerializer(_visible(request, pk)).data)


@extend_schema(
    tags=["bookings"],
    summary="Confirm a slot: books a real appointment, once",
    request=ConfirmBookingSerializer,
    responses={
        200: OpenApiResponse(BookingSerializer, description="Sent: state `sending`."),
        409: OpenApiResponse(
            ErrorSerializer,
            description="Past `choose_slot` (nothing changed, nothing sent), or its slots are "
            "too old (nothing sent; a new check started: choose again).",
        ),
        **errors(400, 403, 404),
    },
)
class BookingConfirm(APIView):
    """Send the booking with this slot (one of `slots`, verbatim). Never sent twice."""

    def post(self, request: Request, pk: int) -> Response:
        booking = _visible(request, pk)
        given = ConfirmBookingSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            booking = services.confirm_booking(
                booking=booking, user=request.user, slot=given.validated_data["slot"]
            )
        except PermissionDenied:
            raise _denied() from None
        except services.BookingConflict as conflict:
            raise Conflict(str(conflict)) from None
        except DjangoValidationError as error:
            raise service_error(error) from None
        return Response(BookingSerializer(booking).data)
