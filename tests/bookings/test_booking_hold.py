"""A booking whose answer never came keeps its browser: the server goes on booking in it, so
the account's lease stays held for the call's allowance once more, and nothing else drives
that browser until it lapses by itself (over HTTP against the simulator)."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.db import connections
from django.utils import timezone

from bookings_app import services
from bookings_app.models import Booking
from emodal_sim import DEFAULT_LATENCIES
from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account
from sessions_app.services import SessionManager
from sessions_app.upstream import UpstreamTimeout
from sessions_app.upstream.transport import request_left

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks
from .conftest import Board, settle

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_timed_out_booking_holds_the_browser_until_its_allowance_lapses(
    board: Board, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    booking, _ = services.start_booking(
        user=board.account.user, account=board.account, container_number=board.number
    )
    booking = settle(task_queue, booking, Booking.State.CHOOSE_SLOT)
    # The portal's allowance for a booking: 300 s x 0.005 = 1.5 s; the server books for 2.2 s
    # (past the timeout, within the hold).
    settings.EMODAL_TIMEOUT_SCALE = 0.005
    allowance = 1.5
    sim.configure(latencies={**DEFAULT_LATENCIES, "make_appointment": 2_200})
    services.confirm_booking(booking=booking, user=board.account.user, slot=booking.slots[0])
    booking = settle(task_queue, booking, Booking.State.UNKNOWN)
    assert "time limit" in booking.answer["error"]
    settings.EMODAL_TIMEOUT_SCALE = 1.0

    # The lease was not given back: it is held the allowance from the timeout on.
    account = Account.objects.get(pk=board.account.pk)
    assert account.lease_token
    assert account.lease_expires_at is not None and booking.answered_at is not None
    held = account.lease_expires_at - booking.answered_at
    assert timedelta(seconds=allowance - 0.5) < held <= timedelta(seconds=allowance)
    booked = sim.calls("/make_appointment")
    assert len(booked) == 1
    seen = len(sim.calls())

    # A query of the same account, started at once, waits for the lease.
    query, _ = start_query(account=account, kind="appointments")
    failures: list[BaseException] = []

    def run_query() -> None:
        try:
            run_queued_tasks(
                task_queue,
                until=lambda: (
                    Query.objects.get(pk=query.pk).status
                    in (Query.Status.SUCCEEDED, Query.Status.FAILED)
                ),
            )
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            failures.append(exc)
        finally:
            connections.close_all()

    worker = threading.Thread(target=run_query)
    worker.start()

    def lapsed_with_no_call_meanwhile() -> bool:
        calls = sim.calls()  # first the calls, then the time: a call seen began before `now`
        now = timezone.now()
        if now < account.lease_expires_at:
            assert len(calls) == seen, f"the upstream was called while held: {calls[seen:]}"
            return False
        return True

    sim.wait_for(lapsed_with_no_call_meanwhile, timeout=10)
    # After the hold, the query proceeds, with the same session.
    worker.join(timeout=30)
    assert not worker.is_alive() and not failures, failures
    query.refresh_from_db()
    assert query.status == Query.Status.SUCCEEDED, query.error
    read = sim.calls("/get_appointments")
    assert read and read[-1]["session_id"] == booked[0]["session_id"]
    assert len(sim.calls("/make_appointment")) == 1


def test_other_calls_give_the_lease_back_at_once_after_a_timeout(
    board: Board, sim: SimControl, settings: Any
) -> None:
    settings.EMODAL_TIMEOUT_SCALE = 0.002  # get_appointments' read timeout of well under 1 s
    sim.configure(latencies={**DEFAULT_LATENCIES, "get_appointments": 3_000})
    with pytest.raises(UpstreamTimeout):
        SessionManager().run(
            board.account, lambda api, session_id: api.get_appointments(session_id)
        )
    account = Account.objects.get(pk=board.account.pk)
    assert account.lease_token == "" and account.lease_expires_at is None


def test_a_connection_dropped_after_the_booking_left_holds_the_browser_too(
    board: Board, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    booking, _ = services.start_booking(
        user=board.account.user, account=board.account, container_number=board.number
    )
    booking = settle(task_queue, booking, Booking.State.CHOOSE_SLOT)
    settings.EMODAL_TIMEOUT_SCALE = 0.005  # an allowance of 1.5 s
    sim.fault("/make_appointment", mode="close")
    services.confirm_booking(booking=booking, user=board.account.user, slot=booking.slots[0])
    booking = settle(task_queue, booking, Booking.State.UNKNOWN)
    assert "Could not reach" in booking.answer["error"]
    # Not read at once (it would wait for the lease): the sweep reads later.
    assert booking.verify_query_id is None
    account = Account.objects.get(pk=board.account.pk)
    assert account.lease_token and account.lease_expires_at and booking.answered_at
    held = account.lease_expires_at - booking.answered_at
    assert timedelta(seconds=1.0) < held <= timedelta(seconds=1.5)


def test_a_refused_connection_never_left() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(requests.exceptions.ConnectionError) as refused:
        requests.post(f"http://127.0.0.1:{port}/make_appointment", json={}, timeout=5)
    assert not request_left(refused.value)
