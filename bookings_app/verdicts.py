"""A booking's verdict, read from E-Modal's own appointments (design.md, invariant 14): an
appointments read settles the bookings sent before it started; unknown outcomes are read again;
staff settle by hand what no read can. Every change of state is a conditional UPDATE
(`move_booking`), and a sent booking's new state is told on its container and in the outbox
(`tell_container`). Asking, confirming and sending are in `services`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from containers_app.models import Container
from history.models import HistoryEntry
from outbox.models import Event
from outbox.record import record
from outbox.vocabulary import EventType
from queries_app.models import AppointmentRow, Query, QueryFile
from queries_app.services import start_query

from .models import Booking

DATE_RE = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")

UNKNOWN_NOTE = (
    "The outcome is unknown: the request reached E-Modal and failed or timed out after that, "
    "so the appointment may have been booked. Do not book again before you have looked in "
    "E-Modal; the next read of the account's appointments settles it."
)


# -- 3. verifying: the account's appointments -------------------------------------------------


def appointments_read(query: Query) -> None:
    """An appointments read of the account ended: settle the bookings it can speak for (those
    sent before it started)."""
    waiting = Booking.objects.filter(
        account_id=query.account_id,
        state__in=(Booking.State.SENDING, *Booking.SETTLEABLE_STATES),
        answered_at__isnull=False,
        sent_at__lte=query.started_at or query.created_at,
    )
    if not waiting.exists():
        return
    rows = list(AppointmentRow.objects.filter(query=query)) if query.status == "succeeded" else []
    sheet = QueryFile.objects.filter(query=query, kind=QueryFile.Kind.APPOINTMENTS_SHEET).first()
    readable = query.status == Query.Status.SUCCEEDED and all(
        "Container #" in row.raw and "Time Slot" in row.raw for row in rows
    )
    for booking in waiting:
        _settle(booking, query, rows, sheet, readable)


def _settle(
    booking: Booking,
    query: Query,
    rows: list[AppointmentRow],
    sheet: QueryFile | None,
    readable: bool,
) -> None:
    now = timezone.now()
    when = f"the appointments read #{query.pk}"
    changes: dict[str, Any] = {"verify_query": query, "sheet": sheet or booking.sheet}
    if not readable:
        if booking.state == Booking.State.SENDING:
            why = (
                "its sheet's columns are not known"
                if query.status == Query.Status.SUCCEEDED
                else f"it failed ({query.error or query.status})"
            )
            changes |= {
                "state": Booking.State.UNVERIFIED,
                "note": f"Not verified: {when} could not be read ({why}). Look in E-Modal.",
            }
    else:
        found = next((row for row in rows if _same_booking(booking, row)), None)
        if found is not None:
            changes |= {
                "state": Booking.State.BOOKED,
                "verified_at": now,
                "appointment_number": str(found.raw.get("Appointment #", ""))[:40],
                "note": f"Seen in {when}.",
            }
        elif booking.state == Booking.State.UNKNOWN:
            changes["note"] = f"{UNKNOWN_NOTE} Not seen in {when}."[:500]
        elif booking.state in (Booking.State.SENDING, Booking.State.UNVERIFIED):
            changes |= {
                "state": Booking.State.NOT_CONFIRMED,
                "note": f"E-Modal answered 200 but {when} does not show it: look in E-Modal.",
            }
    move_booking(booking, booking.state, **changes)


def _same_booking(booking: Booking, row: AppointmentRow) -> bool:
    """The sheet's row is this booking: the container at the slot booked (the slot's text, or
    its date and its time range)."""
    if str(row.raw.get("Container #", "")).strip().upper() != booking.container_number:
        return False
    slot = " ".join(booking.slot.split())
    text = " ".join(str(row.raw.get("Time Slot", "")).split())
    if not text:
        return False
    if text == slot:
        return True
    date = DATE_RE.search(slot)
    day = str(row.raw.get("Appointment Date", "")).strip()
    return bool(date and day == date.group(0) and text in slot)


def reread_unknown(*, now: datetime | None = None) -> int:
    """Unknown outcomes are read again: a read of the account's appointments for each unknown
    booking whose last read ended BOOKING_REREAD_SECONDS ago (or, after a timeout, which has
    no read of its own at once, whose answer was given up that long ago), up to BOOKING_READS
    reads in all; then it waits for a person, or for anyone's read. Returns how many reads
    were asked for."""
    now = now or timezone.now()
    due = now - timedelta(seconds=settings.BOOKING_REREAD_SECONDS)
    waiting = (
        Booking.objects.filter(state=Booking.State.UNKNOWN, reads__lt=settings.BOOKING_READS)
        # A read still live will speak for itself (the engine ends every query).
        .filter(
            Q(verify_query__isnull=True, answered_at__lt=due) | Q(verify_query__finished_at__lt=due)
        )
        .select_related("account")
    )
    asked = 0
    for booking in waiting:
        with transaction.atomic():
            query, _ = start_query(account=booking.account, kind="appointments")
            asked += move_booking(
                booking, Booking.State.UNKNOWN, verify_query=query, reads=F("reads") + 1
            )
    return asked


def sending_too_long() -> int:
    """Bookings sent whose answer never came back (the worker died mid-call): unknown, and a
    read of the appointments asked for. Returns how many."""
    limit = timezone.now() - timedelta(seconds=settings.BOOKING_ANSWER_LOST_SECONDS)
    lost = Booking.objects.filter(
        state=Booking.State.SENDING, sent_at__lt=limit, answered_at__isnull=True
    )
    count = 0
    for booking in lost.select_related("account"):
        with transaction.atomic():
            query, _ = start_query(account=booking.account, kind="appointments")
            count += move_booking(
                booking,
                Booking.State.SENDING,
                state=Booking.State.UNKNOWN,
                answered_at=timezone.now(),
                answer={"error": "no answer recorded (the worker stopped)"},
                verify_query=query,
                reads=F("reads") + 1,
                note=UNKNOWN_NOTE,
            )
    return count


# -- staff: settling by hand ----------------------------------------------------------------


def settle_booking(*, booking: Booking, user: Any, booked: bool, note: str = "") -> bool:
    """A person looked in E-Modal: booked or not. Only unknown, unverified and not confirmed
    bookings are settled this way; False for any other."""
    who = user.get_username()
    text = note or ("seen in E-Modal" if booked else "not in E-Modal")
    return move_booking(
        booking,
        Booking.SETTLEABLE_STATES,
        state=Booking.State.BOOKED if booked else Booking.State.FAILED,
        settled_by=user,
        verified_at=timezone.now() if booked else None,
        note=f"Settled by {who}: {text}."[:500],
    )


# -- helpers --------------------------------------------------------------------------------


def move_booking(booking: Booking, from_states: Any, **changes: Any) -> bool:
    """A conditional UPDATE: the change happens only if the booking is still in one of
    `from_states` (exactly one caller wins a race). A booking that was sent and reaches a new
    state is told on its container (the board's appointment, the container's history)."""
    states = [from_states] if isinstance(from_states, str) else list(from_states)
    changes["updated_at"] = timezone.now()
    moved = bool(Booking.objects.filter(Q(pk=booking.pk), Q(state__in=states)).update(**changes))
    new_state = changes.get("state")
    if moved and new_state is not None and new_state != booking.state and booking.sent_at_known:
        tell_container(booking.pk)
    return moved


# What the board shows of a sent booking, by its state ("" clears it).
BOARD_WORDS: dict[str, str] = {
    Booking.State.BOOKED: "{slot}",
    Booking.State.UNKNOWN: "{slot} (outcome unknown)",
    Booking.State.NOT_CONFIRMED: "{slot} (not confirmed)",
    Booking.State.UNVERIFIED: "{slot} (unverified)",
    Booking.State.FAILED: "",
}


# The events of a sent booking's verdicts (one per booking and verdict: its key).
EVENTS: dict[str, EventType] = {
    Booking.State.BOOKED: EventType.APPOINTMENT_BOOKED,
    Booking.State.NOT_CONFIRMED: EventType.APPOINTMENT_NOT_CONFIRMED,
    Booking.State.UNKNOWN: EventType.APPOINTMENT_UNKNOWN,
}


def tell_container(booking_id: int) -> None:
    """The booking's new state on its container (the board's appointment, a history entry),
    and its event in the outbox, in one transaction; the dispatcher tells whom it concerns
    (webhooks, and e-mail to the account's person and who watches the container)."""
    booking = Booking.objects.select_related("account", "requested_by").get(pk=booking_id)
    if booking.state not in BOARD_WORDS:
        return
    now = timezone.now()
    with transaction.atomic():
        container = Container.objects.filter(
            account_id=booking.account_id, container_number=booking.container_number
        ).first()
        if container is not None:
            text = BOARD_WORDS[booking.state].format(slot=booking.slot)
            before = container.appointment
            Container.objects.filter(pk=container.pk).update(appointment=text[:240])
            label = booking.get_state_display().split(":")[0].lower()
            HistoryEntry.objects.create(
                container=container,
                container_number=container.container_number,
                query=booking.verify_query,
                observed_at=now,
                change=HistoryEntry.Change.BOOKING,
                fields={
                    "appointment": [
                        before or None,
                        f"{label}, {booking.slot} (booking #{booking.pk})",
                    ]
                },
            )
        kind = EVENTS.get(booking.state)
        if kind is None:
            return
        requester = booking.requested_by
        event = Event(
            key=f"{kind}:{booking.pk}",
            type=kind,
            account=booking.account,
            container=container,
            container_number=booking.container_number,
            query=booking.verify_query,
            data={
                "booking_id": booking.pk,
                "slot": booking.slot,
                "terminal": booking.terminal,
                "move_type": booking.move_type,
                "state": booking.state,
                "appointment_number": booking.appointment_number,
                "requested_by": requester.get_username() if requester else None,
            },
            occurred_at=now,
        )
        record([event])
