"""The booking pages: "Book a slot" (from a container's page or the board), the slots of the
fresh check, the confirmation step, and the booking's state. Views shape input and output;
`services` decides. Only "Confirm booking" (a POST with the exact slot text) sends anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from emodal_portal.ids import parse_id
from queries_app import access
from queries_app.selectors import own_account

from . import services
from .models import Booking

T = TypeVar("T")

NO_PERMISSION = (
    "Booking needs the “Can book appointments” permission: ask an administrator to give it to you."
)


def _visible(request: HttpRequest, pk: int) -> Booking:
    booking = get_object_or_404(
        Booking.objects.visible_to(request.user).select_related(
            "account__user", "requested_by", "confirmed_by", "settled_by", "sheet"
        ),
        pk=pk,
    )
    if booking.state == Booking.State.CHECKING:
        booking = services.check_ended(booking)
    return booking


def _told(request: HttpRequest, service: Callable[..., T], **given: Any) -> T | None:
    """What the service (called for the person, `user=`) answers; None when it refused, the
    person told why."""
    try:
        return service(user=request.user, **given)
    except PermissionDenied:
        messages.error(request, NO_PERMISSION)
    except services.BookingConflict as conflict:
        messages.warning(request, str(conflict))
    except services.BookingRefused as refused:
        messages.error(request, str(refused))
    except ValidationError as invalid:
        messages.error(request, " ".join(invalid.messages))
    return None


@require_GET
@login_required
def booking_list(request: HttpRequest) -> HttpResponse:
    bookings = Booking.objects.visible_to(request.user).select_related("account__user")[:200]
    return render(request, "bookings/list.html", {"bookings": bookings})


@require_POST
@login_required
def booking_start(request: HttpRequest) -> HttpResponse:
    number = request.POST.get("container_number", "").strip()[:20]
    account = own_account(request.user)
    if request.POST.get("account"):
        account_id = parse_id(request.POST["account"])
        account = (
            access.visible_accounts(request.user).filter(pk=account_id).first()
            if account_id is not None
            else None
        )
    if account is None or not number:
        messages.error(request, "Choose a container of an account you may book for.")
        return redirect("containers:board")
    started = _told(request, services.start_booking, account=account, container_number=number)
    if started is None:
        return redirect("containers:detail", number=number)
    booking, created = started
    if not created:
        messages.info(
            request,
            f"{booking.container_number} already has a booking under way: here it is.",
        )
    return redirect("bookings:detail", pk=booking.pk)


@require_GET
@login_required
def booking_detail(request: HttpRequest, pk: int) -> HttpResponse:
    booking = _visible(request, pk)
    slot = request.GET.get("slot")
    reviewing = (
        booking.state == Booking.State.CHOOSE_SLOT and slot is not None and slot in booking.slots
    )
    if slot is not None and not reviewing and booking.state == Booking.State.CHOOSE_SLOT:
        messages.error(request, "Choose one of the slots the check offered.")
    return render(
        request,
        "bookings/booking.html",
        {
            "booking": booking,
            "slot": slot if reviewing else None,
            "may_book": services.may_book_for(request.user, booking.account),
            "waiting": booking.state in (Booking.State.CHECKING, Booking.State.SENDING),
            "max_age_minutes": services.slot_max_age().seconds // 60,
        },
    )


@require_POST
@login_required
def booking_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    booking = _visible(request, pk)
    slot = request.POST.get("slot", "")
    if _told(request, services.confirm_booking, booking=booking, slot=slot) is not None:
        messages.success(
            request,
            "Sent to E-Modal, once. The portal now reads the account's appointments to see "
            "whether it was booked.",
        )
    return redirect("bookings:detail", pk=booking.pk)


@require_POST
@login_required
def booking_recheck(request: HttpRequest, pk: int) -> HttpResponse:
    booking = _visible(request, pk)
    _told(request, services.recheck, booking=booking)
    return redirect("bookings:detail", pk=booking.pk)


@require_POST
@login_required
def booking_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    booking = _visible(request, pk)
    if _told(request, services.cancel_booking, booking=booking) is not None:
        messages.info(request, "Cancelled: nothing was sent to E-Modal.")
    return redirect("bookings:detail", pk=booking.pk)
