"""Fixtures of the booking tests: an account whose board has an import the simulator offers
slots for (found by a real availability run), and people who may or may not book."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from bookings_app.models import Booking
from containers_app.models import Container
from emodal_sim import data as simdata
from queries_app.models import AppointmentCheck, Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks, run_through_retries


def allow_booking(user: Any) -> None:
    user.user_permissions.add(Permission.objects.get(codename="book_appointments"))


@dataclass
class Board:
    account: Account
    number: str  # an import whose latest check offered slots


def board_with_slots(account: Account, queue: TaskQueue) -> Board:
    """A real availability run for the account, the board brought up to date."""
    query = run_through_retries(start_query(account=account, kind="availability")[0], queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    run_queued_tasks(queue, until=lambda: queue.size() == 0)
    numbers = set(
        AppointmentCheck.objects.filter(
            query=query, outcome=AppointmentCheck.Outcome.AVAILABLE, trade_type="IMPORT"
        ).values_list("container_number", flat=True)
    )
    # Booking has no Line/Equip Size path: a terminal whose page has no container field
    # cannot be booked (its fresh check fails), so the tests book at another.
    container = (
        Container.objects.filter(
            account=account, container_number__in=numbers, check_outcome="available"
        )
        .exclude(terminal__name__in=simdata.NO_CONTAINER_FIELD_TERMINALS)
        .first()
    )
    assert container is not None, "the run found no import with slots"
    return Board(account, container.container_number)


@pytest.fixture
def booker(db: Any) -> Account:
    """Erin: the simulator's data for her holds imports with slots at terminals whose page has
    a container field (TTI, ITS)."""
    erin = make_account("erin")
    allow_booking(erin.user)
    return erin


@pytest.fixture
def board(booker: Account, sim: SimControl, task_queue: TaskQueue) -> Board:
    return board_with_slots(booker, task_queue)


def settle(queue: TaskQueue, booking: Booking, *states: str) -> Booking:
    """Run queued tasks (checks, the send, reads, and what they set going) until the booking
    is in one of `states`."""

    def reached() -> bool:
        booking.refresh_from_db()
        return booking.state in states

    for _ in range(20):
        if reached():
            return booking
        if queue.size() == 0:
            # A query waiting for its retry: let the sweep set it going.
            live = Query.objects.filter(account=booking.account, status__in=["pending", "running"])
            from queries_app.engine import sweep_queries

            for query in live.exclude(retry_at=None):
                sweep_queries(now=query.retry_at + timezone.timedelta(seconds=1))
            if queue.size() == 0:
                break
        run_queued_tasks(queue, until=lambda: reached() or queue.size() == 0)
    assert reached(), f"booking #{booking.pk} is {booking.state}: {booking.note}"
    return booking
