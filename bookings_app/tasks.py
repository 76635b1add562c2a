"""django-q2 entry points. They take ids, never anything secret.

`send_booking` is the only task that books; it sends only for the booking it takes (see
`services.send_booking`), so the broker's redelivery of a task whose worker died sends nothing.
"""

from __future__ import annotations

from typing import Any

from django_q.tasks import async_task

from queries_app.models import Query

from . import services, verdicts
from .models import Booking

# The query kinds a booking waits on.
WATCHED_KINDS = ("appointment_check", "appointments")


def send_booking(booking_id: int) -> str:
    return services.send_booking(booking_id)


def query_ended(query_id: int) -> str:
    """A fresh check or an appointments read ended: the bookings waiting on it go on."""
    query = Query.objects.filter(pk=query_id).first()
    if query is None:
        return f"query {query_id}: gone"
    if query.kind == "appointment_check":
        for booking in Booking.objects.filter(check_query=query, state=Booking.State.CHECKING):
            services.check_ended(booking)
    elif query.kind == "appointments":
        verdicts.appointments_read(query)
    return f"query {query_id}: bookings brought up to date"


def sweep_bookings() -> str:
    """Every minute: bookings whose answer was lost made unknown, unknown ones read again."""
    lost = verdicts.sending_too_long()
    reads = verdicts.reread_unknown()
    return f"{lost} booking(s) without an answer made unknown; {reads} read(s) asked for"


def on_query_finished(query: Query, **kwargs: Any) -> None:
    """Sent after the commit that ended the query; the work is a task of its own (never in the
    query's path), and only when some booking may wait on it."""
    if query.kind not in WATCHED_KINDS:
        return
    waiting = Booking.objects.filter(account_id=query.account_id).exclude(
        state__in=(Booking.State.BOOKED, Booking.State.FAILED, Booking.State.CANCELLED)
    )
    if waiting.exists():
        async_task("bookings_app.tasks.query_ended", query.pk, task_name=f"booking-q{query.pk}")
