"""Booking a slot: a fresh check, a person's choice and confirmation, exactly one
`make_appointment`, and a verdict read from E-Modal's own appointments (design.md, invariant 14).

The faces (pages, API, admin) call these functions; only `send_booking` (a task) ever calls
`make_appointment`, and only for a booking it moved from "confirmed, not sent" to "sent" with a
conditional UPDATE. Nothing retries it: not the engine, not the broker (a redelivered task finds
`sent_at` set and stops), not this module.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from containers_app.models import Container, HistoryEntry
from containers_app.verdict import NEEDS_PICKUP
from outbox.models import Event
from outbox.record import record
from outbox.vocabulary import EventType
from queries_app.models import AppointmentCheck, AppointmentRow, Query, QueryFile
from queries_app.services import TriggerLimitReached, start_query
from sessions_app.models import Account
from sessions_app.services import SessionManager
from sessions_app.upstream import CircuitOpen, EModalClient, UpstreamError, UpstreamTimeout

from .models import Booking

logger = logging.getLogger(__name__)

BOOK = "bookings_app.book_appointments"
# The move of a pickup: an import leaves the terminal full.
PICKUP = "PICK FULL"
# A 400 with this start is the upstream's field check, answered before any login or page: the
# only failure after the request left that proves nothing was booked.
MISSING_FIELDS = "Missing required fields"
# The answer's fields kept on the booking (never the session id or the debug bundle's URL,
# which holds it).
ANSWER_FIELDS = (
    "success",
    "appointment_confirmed",
    "appointment_details",
    "error",
    "is_new_session",
)
DATE_RE = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")


class BookingRefused(Exception):
    """The booking cannot go on as asked; the text says why, for the person."""


class BookingConflict(BookingRefused):
    """The booking is past the step that was asked (a second confirm, a second tab): nothing
    was changed and nothing sent. `booking` is the booking as it is."""

    def __init__(self, message: str, *, booking: Booking) -> None:
        super().__init__(message)
        self.booking = booking


class SlotsTooOld(BookingConflict):
    """The slots were read too long ago: a new check started; choose again once it is back."""


@dataclass(frozen=True)
class Outcome:
    state: str
    note: str


# -- who may book ---------------------------------------------------------------------------------


def may_book(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_perm(BOOK))


def may_book_for(user: Any, account: Account) -> bool:
    """Their own account with "Can book appointments"; any account for staff who also have it."""
    if not may_book(user):
        return False
    return account.user_id == user.pk or bool(user.is_staff)


def require_booker(user: Any, account: Account) -> None:
    if not may_book_for(user, account):
        raise PermissionDenied(
            "Booking needs the “Can book appointments” permission (staff give it per person)."
        )


def slot_max_age() -> timedelta:
    return timedelta(seconds=settings.BOOKING_SLOT_MAX_AGE_SECONDS)


# -- 1. asking: a fresh check ------------------------------------------------------------------


def latest_check(container: Container) -> AppointmentCheck | None:
    if container.check_query_id is None:
        return None
    return AppointmentCheck.objects.filter(
        query_id=container.check_query_id, container_number=container.container_number
    ).first()


def bookable_reason(container: Container) -> str:
    """Why this container cannot be booked from the portal ("" when it can)."""
    if container.gone_at is not None:
        return "It is no longer on the account's list."
    if container.trade_type != "IMPORT":
        return "E-Modal books imports only."
    check = latest_check(container)
    if check is None or check.outcome != AppointmentCheck.Outcome.AVAILABLE:
        return "Its latest appointment check offered no slots."
    if not container.terminal_id or not container.terminal.name:
        return "Its terminal has no E-Modal name yet (staff add it under Terminals)."
    return ""


def start_booking(*, user: Any, account: Account, container_number: str) -> tuple[Booking, bool]:
    """(the booking, whether it was created): a new booking whose fresh check has started, or
    the container's open booking (a double click, a second tab, a second person)."""
    require_booker(user, account)
    number = container_number.strip().upper()
    existing = Booking.objects.open().filter(account=account, container_number=number).first()
    if existing is not None:
        return existing, False
    container = (
        Container.objects.select_related("terminal")
        .filter(account=account, container_number=number)
        .first()
    )
    if container is None:
        raise BookingRefused(f"{number} is not on the account's board.")
    reason = bookable_reason(container)
    if reason:
        raise BookingRefused(f"{number} cannot be booked here: {reason}")
    if not account.trucking_company or not account.truck_plate:
        raise BookingRefused("The account has no trucking company or truck plate to book with.")
    if account.appointment_error:
        raise BookingRefused(f"E-Modal refused the account's details: {account.appointment_error}")
    # A container the board says still needs its pickup is booked as one, whatever move its
    # last check asked about; any other keeps the check's move (an empty's return).
    check = latest_check(container)
    move_type = check.move_type if check is not None and check.move_type else PICKUP
    if container.pickup in NEEDS_PICKUP:
        move_type = PICKUP
    try:
        with transaction.atomic():
            booking = Booking.objects.create(
                account=account,
                container_number=number,
                requested_by=user,
                terminal_code=container.terminal_code,
                terminal=container.terminal.name,
                move_type=move_type,
                trucking_company=account.trucking_company,
                truck_plate=account.truck_plate,
                own_chassis=account.own_chassis,
            )
            booking.check_query = _start_check(booking, user)
            booking.save(update_fields=["check_query", "updated_at"])
    except IntegrityError:
        # Another request created it between the look above and this insert.
        existing = Booking.objects.open().filter(account=account, container_number=number).first()
        if existing is None:
            raise
        return existing, False
    return booking, True


def _start_check(booking: Booking, user: Any) -> Query:
    params = {
        "container_type": "import",
        "container_id": booking.container_number,
        "terminal": booking.terminal_code,
        "move_type": booking.move_type,
    }
    try:
        query, _ = start_query(
            account=booking.account, kind="appointment_check", params=params, started_by=user
        )
    except TriggerLimitReached as reached:
        raise BookingRefused(
            f"You started {reached.limit} checks within {reached.window_seconds // 60} minutes: "
            f"try again after {timezone.localtime(reached.retry_at):%H:%M}."
        ) from None
    except ValidationError as error:
        raise BookingRefused(f"The check cannot start: {' '.join(error.messages)}") from None
    return query


def check_ended(booking: Booking) -> Booking:
    """A `checking` booking whose fresh check has ended: the slots to choose from, or why not."""
    query = booking.check_query
    if booking.state != Booking.State.CHECKING or query is None or query.is_live:
        return booking
    row = AppointmentCheck.objects.filter(
        query=query, container_number=booking.container_number
    ).first()
    if query.status == Query.Status.SUCCEEDED and row is not None and row.slot_texts:
        changes: dict[str, Any] = {
            "state": Booking.State.CHOOSE_SLOT,
            "slots": list(row.slot_texts),
            "slots_seen_at": query.finished_at or timezone.now(),
            "note": "",
        }
    else:
        why = (row.error if row is not None else "") or query.error or "no slot was offered"
        changes = {"state": Booking.State.FAILED, "note": f"The fresh check: {why}"[:500]}
    _move(booking, Booking.State.CHECKING, **changes)
    booking.refresh_from_db()
    return booking


def cancel_booking(*, booking: Booking, user: Any) -> Booking:
    """Give up before confirming (nothing was sent)."""
    require_booker(user, booking.account)
    if not _move(
        booking,
        (Booking.State.CHECKING, Booking.State.CHOOSE_SLOT),
        state=Booking.State.CANCELLED,
        note="Cancelled before anything was sent.",
    ):
        booking.refresh_from_db()
        raise BookingConflict(
            f"Booking #{booking.pk} can no longer be cancelled ({booking.get_state_display()}).",
            booking=booking,
        )
    booking.refresh_from_db()
    return booking


# -- 2. confirming: one request -------------------------------------------------------------


def booking_fields(booking: Booking, slot: str) -> dict[str, Any]:
    """What `make_appointment` is given (the session block is added by the client)."""
    fields: dict[str, Any] = {
        "trucking_company": booking.trucking_company,
        "terminal": booking.terminal,
        "move_type": booking.move_type,
        "container_id": booking.container_number,
        "truck_plate": booking.truck_plate,
        "own_chassis": booking.own_chassis,
        "appointment_time": slot,
    }
    if booking.pin_code:
        fields["pin_code"] = booking.pin_code
    return fields


def confirm_booking(*, booking: Booking, user: Any, slot: str) -> Booking:
    """A person confirmed `slot` (one of the fresh check's texts, verbatim): the booking is sent,
    once. A booking past the choice raises BookingConflict and sends nothing; slots older than
    BOOKING_SLOT_MAX_AGE_SECONDS start a new check (SlotsTooOld) and send nothing."""
    require_booker(user, booking.account)
    booking.refresh_from_db()
    if booking.state != Booking.State.CHOOSE_SLOT:
        raise BookingConflict(
            f"Booking #{booking.pk} is past the choice of a slot ({booking.get_state_display()}): "
            "nothing was sent again.",
            booking=booking,
        )
    if slot not in booking.slots:
        raise ValidationError({"slot": "Choose one of the slots the check offered."})
    now = timezone.now()
    if booking.slots_seen_at is None or now - booking.slots_seen_at > slot_max_age():
        recheck(booking=booking, user=user)
        booking.refresh_from_db()
        raise SlotsTooOld(
            "The slots were read more than "
            f"{settings.BOOKING_SLOT_MAX_AGE_SECONDS // 60} minutes ago: a new check has "
            "started; choose again when it is back. Nothing was sent.",
            booking=booking,
        )
    with transaction.atomic():
        moved = _move(
            booking,
            Booking.State.CHOOSE_SLOT,
            state=Booking.State.SENDING,
            slot=slot,
            confirmed_by=user,
            confirmed_at=now,
            request=booking_fields(booking, slot),
        )
        if moved:
            pk = booking.pk
            transaction.on_commit(
                lambda: async_task(
                    "bookings_app.tasks.send_booking", pk, task_name=f"booking-{pk}-send"
                )
            )
    booking.refresh_from_db()
    if not moved:
        raise BookingConflict(
            f"Booking #{booking.pk} was confirmed already ({booking.get_state_display()}): "
            "nothing was sent again.",
            booking=booking,
        )
    return booking


def recheck(*, booking: Booking, user: Any) -> Booking:
    """A new fresh check for a booking still choosing (its slots are old)."""
    require_booker(user, booking.account)
    with transaction.atomic():
        if _move(booking, Booking.State.CHOOSE_SLOT, state=Booking.State.CHECKING, slots=[]):
            query = _start_check(booking, user)
            Booking.objects.filter(pk=booking.pk).update(check_query=query)
    booking.refresh_from_db()
    return booking


def send_booking(booking_id: int, *, manager: SessionManager | None = None) -> str:
    """Send the confirmed booking's one `make_appointment`, record the answer, and start the
    appointments read that verifies it. Safe to run twice: only the run that takes `sent_at`
    sends."""
    now = timezone.now()
    taken = Booking.objects.filter(
        pk=booking_id, state=Booking.State.SENDING, sent_at__isnull=True
    ).update(sent_at=now, updated_at=now)
    if taken != 1:
        return f"booking {booking_id}: not sent (already sent, or not confirmed)"
    booking = Booking.objects.select_related("account").get(pk=booking_id)
    manager = manager or SessionManager()
    client = manager.client_for(booking.account)
    sent: list[bool] = []

    def book(api: EModalClient, session_id: str) -> dict[str, Any]:
        if sent:
            # The session manager replays a call once after a gone session; a booking is
            # never replayed (the first answer already said nothing was booked).
            raise NotResent
        sent.append(True)
        return api.make_appointment(session_id, **booking.request)

    call_seconds = client.timeouts["make_appointment"] * client.timeout_scale + 30
    outcome: Outcome
    answer: dict[str, Any]
    busy = False
    try:
        body = manager.run(booking.account, book, call_seconds=call_seconds)
    except NotResent:
        outcome = Outcome(
            Booking.State.FAILED,
            "The E-Modal session had ended before the booking reached the page: nothing was "
            "booked. Book again.",
        )
        answer = {"status": 400, "error": "session gone"}
    except CircuitOpen as error:
        outcome = Outcome(
            Booking.State.FAILED,
            f"Not sent: E-Modal is failing right now ({error.readable()}). Book again later.",
        )
        answer = {"error": error.readable()}
    except UpstreamError as error:
        answer = {"status": error.status, "error": error.readable(), **_kept(error.payload)}
        outcome = _failure_outcome(error, sent=bool(sent))
        # No answer in time: the server goes on with the booking in that browser for minutes
        # more, and a read now would drive the same browser at once. The sweep reads later.
        busy = isinstance(error, UpstreamTimeout)
    except Exception as error:  # noqa: BLE001 - whatever broke, the request may have left
        logger.exception("booking %s: the call broke", booking_id)
        answer = {"error": type(error).__name__}
        outcome = (
            Outcome(Booking.State.UNKNOWN, UNKNOWN_NOTE)
            if sent
            else Outcome(Booking.State.FAILED, "Not sent: the portal could not get a session.")
        )
    else:
        answer = {"status": 200, **_kept(body)}
        outcome = Outcome(
            Booking.State.SENDING,
            "E-Modal answered 200 (which proves nothing): reading the account's appointments.",
        )
    verify = outcome.state in (Booking.State.SENDING, Booking.State.UNKNOWN) and not busy
    with transaction.atomic():
        changes: dict[str, Any] = {
            "state": outcome.state,
            "note": outcome.note[:500],
            "answer": answer,
            "answered_at": timezone.now(),
        }
        if verify:
            changes["verify_query"], _ = start_query(account=booking.account, kind="appointments")
            changes["reads"] = 1
        Booking.objects.filter(pk=booking_id).update(**changes, updated_at=timezone.now())
        if outcome.state == Booking.State.UNKNOWN:
            _tell_container(booking_id)
    logger.info("booking %s: %s", booking_id, outcome.state)
    return f"booking {booking_id}: {outcome.state}"


class NotResent(Exception):
    """A second `make_appointment` for one confirmation was about to go out: refused."""


UNKNOWN_NOTE = (
    "The outcome is unknown: the request reached E-Modal and failed or timed out after that, "
    "so the appointment may have been booked. Do not book again before you have looked in "
    "E-Modal; the next read of the account's appointments settles it."
)


def _failure_outcome(error: UpstreamError, *, sent: bool) -> Outcome:
    if not sent:
        return Outcome(Booking.State.FAILED, f"Not sent: {error.readable()}"[:500])
    if error.status == 400 and error.message.startswith(MISSING_FIELDS):
        return Outcome(
            Booking.State.FAILED, f"E-Modal refused it before booking: {error.readable()}"
        )
    return Outcome(Booking.State.UNKNOWN, f"{UNKNOWN_NOTE} ({error.readable()})")


def _kept(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in ANSWER_FIELDS if key in body}


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
    _move(booking, booking.state, **changes)


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
            asked += _move(booking, Booking.State.UNKNOWN, verify_query=query, reads=F("reads") + 1)
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
            count += _move(
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
    return _move(
        booking,
        Booking.SETTLEABLE_STATES,
        state=Booking.State.BOOKED if booked else Booking.State.FAILED,
        settled_by=user,
        verified_at=timezone.now() if booked else None,
        note=f"Settled by {who}: {text}."[:500],
    )


# -- helpers --------------------------------------------------------------------------------


def _move(booking: Booking, from_states: Any, **changes: Any) -> bool:
    """A conditional UPDATE: the change happens only if the booking is still in one of
    `from_states` (exactly one caller wins a race). A booking that was sent and reaches a new
    state is told on its container (the board's appointment, the container's history)."""
    states = [from_states] if isinstance(from_states, str) else list(from_states)
    changes["updated_at"] = timezone.now()
    moved = bool(Booking.objects.filter(Q(pk=booking.pk), Q(state__in=states)).update(**changes))
    new_state = changes.get("state")
    if moved and new_state is not None and new_state != booking.state and booking.sent_at_known:
        _tell_container(booking.pk)
    return moved


# What the board shows of a sent booking, by its state ("" clears it).
BOARD_WORDS = {
    Booking.State.BOOKED: "{slot}",
    Booking.State.UNKNOWN: "{slot} (outcome unknown)",
    Booking.State.NOT_CONFIRMED: "{slot} (not confirmed)",
    Booking.State.UNVERIFIED: "{slot} (unverified)",
    Booking.State.FAILED: "",
}


# The events of a sent booking's verdicts (one per booking and verdict: its key).
EVENTS = {
    Booking.State.BOOKED: EventType.APPOINTMENT_BOOKED,
    Booking.State.NOT_CONFIRMED: EventType.APPOINTMENT_NOT_CONFIRMED,
    Booking.State.UNKNOWN: EventType.APPOINTMENT_UNKNOWN,
}


def _tell_container(booking_id: int) -> None:
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
