"""The booking panel other apps' pages show (a container's page): its bookings, and "Book a
slot" where the person may book and the container can be booked."""

from __future__ import annotations

from typing import Any

from django import template

from .. import services
from ..models import Booking

register = template.Library()


@register.inclusion_tag("bookings/_panel.html", takes_context=True)
def booking_panel(context: dict[str, Any], container: Any) -> dict[str, Any]:
    user = context["request"].user
    bookings = list(
        Booking.objects.filter(
            account_id=container.account_id, container_number=container.container_number
        ).select_related("requested_by")[:10]
    )
    open_booking = next((b for b in bookings if b.is_open), None)
    may_book = services.may_book_for(user, container.account)
    reason = services.bookable_reason(container) if may_book and open_booking is None else ""
    return {
        "container": container,
        "bookings": bookings,
        "open_booking": open_booking,
        "may_book": may_book,
        "reason": reason,
        "staff": user.is_staff,
        "csrf_token": context.get("csrf_token"),
    }
