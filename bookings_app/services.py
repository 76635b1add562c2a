"""Booking a slot: a fresh check, a person's choice and confirmation, exactly one
`make_appointment`, and a verdict read from E-Modal's own appointments (design.md, invariant 14;
the verdict and the states it moves through are `verdicts`).

The faces (pages, API, admin) call these functions; only `send_booking` (a task) ever calls
`make_appointment`, and only for a booking it moved from "confirmed, not sent" to "sent" with a
conditional UPDATE. Nothing retries it: not the engine, not the broker (a redelivered task finds
`sent_at` set and stops), not this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from containers_app.models import Container
from containers_app.verdict import NEEDS_PICKUP
from queries_app.models import AppointmentCheck, Query
from queries_app.services import TriggerLimitReached, start_query
from sessions_app.models import Account
from sessions_app.services import SessionManager
from sessions_app.upstream import CircuitOpen, EModalClient, UpstreamError, UpstreamTimeout

from .models import Booking
from .verdicts import UNKNOWN_NOTE, move_booking, tell_container

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
    if container.terminal is None or not container.terminal.name:
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
    assert container.terminal is not None  # bookable: it has a named terminal
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
    move_booking(booking, Booking.State.CHECKING, **changes)
    booking.refresh_from_db()
    return booking


def cancel_booking(*, booking: Booking, user: Any) -> Booking:
    """Give up before confirming (nothing was sent)."""
    require_booker(user, booking.account)
    if not move_booking(
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
        moved = move_booking(
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
        if move_booking(booking, Booking.State.CHOOSE_SLOT, state=Booking.State.CHECKING, slots=[]):
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

    allowance = client.timeouts["make_appointment"] * client.timeout_scale
    call_seconds = allowance + 30
    outcome: Outcome
    answer: dict[str, Any]
    busy = False
    try:
        # No answer in time (or a connection dropped after the request left): the server goes
        # on with the booking in that browser, so the account's lease stays held for the
        # call's allowance once more, and lapses by itself (README, "Booking a slot").
        body = manager.run(
            booking.account, book, call_seconds=call_seconds, hold_on_timeout=allowance
        )
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
        # more (its lease is held meanwhile), and a read now would only wait for it. The
        # sweep reads later.
        busy = isinstance(error, UpstreamTimeout) or error.may_still_run
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
            tell_container(booking_id)
    logger.info("booking %s: %s", booking_id, outcome.state)
    return f"booking {booking_id}: {outcome.state}"


class NotResent(Exception):
    """A second `make_appointment` for one confirmation was about to go out: refused."""


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
