"""What the booking pages tell a person whose step a service refused: the booking shown again
with why (no permission, a conflict, a refusal, a slot not offered), the booking unchanged and
nothing sent."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import constants, get_messages
from django.test import Client
from django.utils import timezone

from bookings_app.models import Booking
from queries_app.models import Query
from sessions_app.models import Account

from ..conftest import make_account
from .conftest import allow_booking

pytestmark = pytest.mark.django_db

SLOT = "12/08/2026 07:00 - 08:00"


@pytest.fixture
def booker() -> Account:
    erin = make_account("erin")
    allow_booking(erin.user)
    return erin


def booking(account: Account, state: str) -> Booking:
    return Booking.objects.create(
        account=account,
        container_number="MSCU1234567",
        state=state,
        terminal_code="TTI",
        terminal="TTI",
        move_type="PICKUP",
        trucking_company="K & R TRANSPORTATION LLC",
        truck_plate="7ABC123",
        slots=[SLOT],
        slots_seen_at=timezone.now(),
    )


def told(user: Any, url: str, form: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """POST as the person: the booking shown again, and what they were told."""
    client = Client()
    client.force_login(user)
    answer = client.post(url, form or {})
    assert answer.status_code == 302 and answer["Location"].startswith("/bookings/")
    return [(m.level, m.message) for m in get_messages(answer.wsgi_request)]


def test_a_slot_the_check_did_not_offer_is_refused(booker: Account) -> None:
    choosing = booking(booker, Booking.State.CHOOSE_SLOT)
    url = f"/bookings/{choosing.pk}/confirm/"
    assert told(booker.user, url, {"slot": "12/08/2026 09:00 - 10:00"}) == [
        (constants.ERROR, "Choose one of the slots the check offered.")
    ]
    choosing.refresh_from_db()
    assert choosing.state == Booking.State.CHOOSE_SLOT and choosing.confirmed_at is None


def test_a_booking_past_a_step_is_a_warning_not_an_error(booker: Account) -> None:
    booked = booking(booker, Booking.State.BOOKED)
    assert told(booker.user, f"/bookings/{booked.pk}/cancel/") == [
        (
            constants.WARNING,
            f"Booking #{booked.pk} can no longer be cancelled (Booked (verified)).",
        )
    ]
    assert told(booker.user, f"/bookings/{booked.pk}/confirm/", {"slot": SLOT}) == [
        (
            constants.WARNING,
            f"Booking #{booked.pk} is past the choice of a slot (Booked (verified)): "
            "nothing was sent again.",
        )
    ]
    booked.refresh_from_db()
    assert booked.state == Booking.State.BOOKED


def test_without_the_permission_each_step_says_so(booker: Account) -> None:
    booker.user.user_permissions.clear()
    choosing = booking(booker, Booking.State.CHOOSE_SLOT)
    for step, form in (("confirm", {"slot": SLOT}), ("recheck", {}), ("cancel", {})):
        [(level, text)] = told(booker.user, f"/bookings/{choosing.pk}/{step}/", form)
        assert level == constants.ERROR and "“Can book appointments” permission" in text
    choosing.refresh_from_db()
    assert choosing.state == Booking.State.CHOOSE_SLOT
    assert not Query.objects.exists()  # no check started


def test_cancelling_a_booking_still_choosing_says_it_is_done(booker: Account) -> None:
    choosing = booking(booker, Booking.State.CHOOSE_SLOT)
    assert told(booker.user, f"/bookings/{choosing.pk}/cancel/") == [
        (constants.INFO, "Cancelled: nothing was sent to E-Modal.")
    ]
    choosing.refresh_from_db()
    assert choosing.state == Booking.State.CANCELLED
