"""Booking against the simulator over HTTP: a fresh check, the person's choice, exactly one
`make_appointment` with the exact slot text, and a verdict read from the appointments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from bookings_app import services, verdicts
from bookings_app.models import Booking
from containers_app.models import Container
from containers_app.words import describe_change
from emodal_sim import DEFAULT_LATENCIES
from history.models import HistoryEntry
from outbox.models import Event
from outbox.vocabulary import EventType
from queries_app.services import start_query

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks, run_through_retries
from .conftest import Board, settle

pytestmark = pytest.mark.django_db(transaction=True)


def checked(board: Board, queue: TaskQueue) -> Booking:
    booking, created = services.start_booking(
        user=board.account.user, account=board.account, container_number=board.number
    )
    assert created and booking.state == Booking.State.CHECKING
    return settle(queue, booking, Booking.State.CHOOSE_SLOT)


def booking_calls(sim: SimControl) -> list[dict[str, Any]]:
    return sim.calls("/make_appointment")


def test_a_confirmed_booking_sends_one_request_with_the_exact_slot_and_is_verified(
    board: Board, sim: SimControl, task_queue: TaskQueue
) -> None:
    board.account.user.email = "erin@example.com"
    board.account.user.save()
    booking = checked(board, task_queue)
    assert booking.slots and booking_calls(sim) == []
    slot = booking.slots[-1]  # not the first: the exact text must travel

    services.confirm_booking(booking=booking, user=board.account.user, slot=slot)
    booking = settle(task_queue, booking, Booking.State.BOOKED)

    calls = booking_calls(sim)
    assert len(calls) == 1
    assert calls[0]["params"]["appointment_time"] == slot
    assert calls[0]["params"]["container_id"] == board.number
    assert calls[0]["params"]["truck_plate"] == board.account.truck_plate
    assert booking.verified_at is not None and booking.appointment_number
    assert booking.answer["status"] == 200 and "session_id" not in booking.answer
    assert booking.sheet is not None
    assert [b["row"]["Container #"] for b in sim.bookings()] == [board.number]
    # The board shows the appointment; the container's history records it.
    container = Container.objects.get(account=board.account, container_number=board.number)
    assert container.appointment == slot
    # Told through the one road for events: the outbox (webhooks), and the account's person
    # by e-mail.
    event = Event.objects.get(key=f"appointment.booked:{booking.pk}")
    assert (event.type, event.data["slot"], event.container_id) == (
        EventType.APPOINTMENT_BOOKED,
        slot,
        container.pk,
    )
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    [message] = [m for m in mail.outbox if m.to == ["erin@example.com"]]
    assert slot in message.body and "booked" in message.body
    # Told on its own: the read that verified it is not a run its person started.
    assert message.subject == "E-Modal: 1 appointment booked (verified)"
    entry = container.history.get(change=HistoryEntry.Change.BOOKING)
    assert describe_change({"change": entry.change, "fields": entry.fields}) == (
        f"appointment set to booked (verified), {slot} (booking #{booking.pk})"
    )


def test_a_double_confirm_sends_one_request(
    board: Board, sim: SimControl, task_queue: TaskQueue
) -> None:
    booking = checked(board, task_queue)
    user = board.account.user
    services.confirm_booking(booking=booking, user=user, slot=booking.slots[0])
    with pytest.raises(services.BookingConflict):
        services.confirm_booking(booking=booking, user=user, slot=booking.slots[0])
    settle(task_queue, booking, Booking.State.BOOKED)
    # A redelivered send task (its worker killed) sends nothing either.
    assert "not sent" in services.send_booking(booking.pk)
    assert len(booking_calls(sim)) == 1


def test_a_slot_older_than_the_limit_forces_a_new_check(
    board: Board, sim: SimControl, task_queue: TaskQueue
) -> None:
    booking = checked(board, task_queue)
    first_check = booking.check_query_id
    Booking.objects.filter(pk=booking.pk).update(
        slots_seen_at=timezone.now() - timedelta(minutes=6)
    )
    with pytest.raises(services.SlotsTooOld):
        services.confirm_booking(booking=booking, user=board.account.user, slot=booking.slots[0])
    booking.refresh_from_db()
    assert booking.state == Booking.State.CHECKING and booking.check_query_id != first_check
    booking = settle(task_queue, booking, Booking.State.CHOOSE_SLOT)
    services.confirm_booking(booking=booking, user=board.account.user, slot=booking.slots[0])
    settle(task_queue, booking, Booking.State.BOOKED)
    assert len(booking_calls(sim)) == 1
    assert len(sim.calls("/check_appointments")) >= 2


def test_a_submit_that_fails_after_booking_is_unknown_and_the_read_finds_it(
    board: Board, sim: SimControl, task_queue: TaskQueue
) -> None:
    booking = checked(board, task_queue)
    sim.fault("/make_appointment", mode="book_then_fail")
    services.confirm_booking(booking=booking, user=board.account.user, slot=booking.slots[0])
    booking = settle(task_queue, booking, Booking.State.BOOKED, Booking.State.UNKNOWN)
    assert len(booking_calls(sim)) == 1
    assert "Phase 3 - Submit" in booking.answer["error"]
    # The verification read saw it: booked after all, never sent again.
    booking = settle(task_queue, booking, Booking.State.BOOKED)
    assert len(booking_calls(sim)) == 1


def test_a_timeout_is_unknown_with_no_second_request_and_a_later_read_settles_it(
    board: Board, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    booking = checked(board, task_queue)
    # The portal's read timeout of a booking: 300 s x 0.002 = 0.6 s; the server books, then
    # answers 4 s later.
    settings.EMODAL_TIMEOUT_SCALE = 0.002
    sim.fault("/make_appointment", mode="delay", delay=4_000)
    services.confirm_booking(booking=booking, user=board.account.user, slot=booking.slots[0])
    booking = settle(task_queue, booking, Booking.State.UNKNOWN)
    assert "time limit" in booking.answer["error"]
    container = Container.objects.get(account=board.account, container_number=board.number)
    assert container.appointment == f"{booking.slot} (outcome unknown)"
    settings.EMODAL_TIMEOUT_SCALE = 1.0
    # No read at once: the server is still booking in that browser (a read now would drive it
    # at the same time). Nothing is sent again.
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    booking.refresh_from_db()
    assert booking.state == Booking.State.UNKNOWN and booking.verify_query_id is None
    assert len(booking_calls(sim)) == 1
    # The sweep reads the appointments BOOKING_REREAD_SECONDS later, and that read settles it.
    sim.wait_for(lambda: booking_calls(sim)[0]["end"] is not None)
    assert verdicts.reread_unknown() == 0  # too soon
    later = timezone.now() + timedelta(seconds=settings.BOOKING_REREAD_SECONDS + 1)
    assert verdicts.reread_unknown(now=later) == 1
    booking.refresh_from_db()
    assert booking.reads == 1
    read = booking.verify_query_id
    booking = settle(task_queue, booking, Booking.State.BOOKED)
    assert booking.verify_query_id == read
    container.refresh_from_db()
    assert container.appointment == booking.slot
    assert container.history.filter(change=HistoryEntry.Change.BOOKING).count() == 2
    assert list(
        Event.objects.filter(container_number=board.number, type__startswith="appointment.")
        .order_by("pk")
        .values_list("type", flat=True)
    ) == [EventType.APPOINTMENT_UNKNOWN, EventType.APPOINTMENT_BOOKED]
    assert len(booking_calls(sim)) == 1


def test_a_200_the_appointments_do_not_show_is_not_confirmed(
    board: Board, sim: SimControl, task_queue: TaskQueue
) -> None:
    # An earlier export in the browser's folder, then an export click that does nothing: the
    # read gets the old sheet, without the booking.
    sim.configure(latencies={**DEFAULT_LATENCIES, "download_window": 60_000})  # 60 s here
    run_through_retries(start_query(account=board.account, kind="appointments")[0], task_queue)
    booking = checked(board, task_queue)
    sim.fault("/get_appointments", mode="stale_sheet")
    services.confirm_booking(booking=booking, user=board.account.user, slot=booking.slots[0])
    booking = settle(task_queue, booking, Booking.State.NOT_CONFIRMED)
    assert len(booking_calls(sim)) == 1
    assert "does not show it" in booking.note
    assert Event.objects.filter(key=f"appointment.not_confirmed:{booking.pk}").exists()
