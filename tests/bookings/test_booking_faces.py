"""The booking's faces (pages, API, admin, commands) against the simulator over HTTP: who may
book, one request per confirmation whatever is clicked twice, and no `make_appointment` from
anything but a confirmation."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from bookings_app.models import Booking

from ..api.conftest import api_client
from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks
from .conftest import Board, allow_booking, settle

pytestmark = pytest.mark.django_db(transaction=True)


def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_calls(sim: SimControl) -> int:
    return len(sim.calls("/make_appointment"))


def test_the_api_books_with_the_pages_rules(
    board: Board, sim: SimControl, task_queue: TaskQueue
) -> None:
    api = api_client(board.account.user)
    started = api.post(
        "/api/v1/bookings/", {"container_number": board.number}, content_type="application/json"
    )
    assert started.status_code == 201, started.json()
    assert started.json()["state"] == "checking" and started.json()["slots"] == []
    pk = started.json()["id"]
    again = api.post(
        "/api/v1/bookings/", {"container_number": board.number}, content_type="application/json"
    )
    assert (again.status_code, again.json()["id"]) == (200, pk)

    settle(task_queue, Booking.objects.get(pk=pk), Booking.State.CHOOSE_SLOT)
    shown = api.get(f"/api/v1/bookings/{pk}/").json()
    assert shown["state"] == "choose_slot" and shown["slots"]
    slot = shown["slots"][0]
    not_offered = api.post(
        f"/api/v1/bookings/{pk}/confirm/",
        {"slot": slot[:10]},  # a prefix would partial-match upstream: refused here
        content_type="application/json",
    )
    assert not_offered.status_code == 400
    sent = api.post(
        f"/api/v1/bookings/{pk}/confirm/", {"slot": slot}, content_type="application/json"
    )
    assert sent.status_code == 200 and sent.json()["state"] == "sending"
    twice = api.post(
        f"/api/v1/bookings/{pk}/confirm/", {"slot": slot}, content_type="application/json"
    )
    assert twice.status_code == 409
    settle(task_queue, Booking.objects.get(pk=pk), Booking.State.BOOKED)
    assert api.get(f"/api/v1/bookings/{pk}/").json()["state"] == "booked"
    assert [b["id"] for b in api.get("/api/v1/bookings/").json()["results"]] == [pk]
    assert make_calls(sim) == 1
    assert sim.calls("/make_appointment")[0]["params"]["appointment_time"] == slot


def test_two_tabs_and_two_people_give_one_request(
    board: Board, sim: SimControl, task_queue: TaskQueue, staff: Any
) -> None:
    allow_booking(staff)
    tab1, tab2 = browser(board.account.user), browser(board.account.user)
    other = browser(staff)  # staff book for any account
    start = {"container_number": board.number}
    first = tab1.post("/bookings/start/", start)
    second = tab2.post("/bookings/start/", start)
    third = other.post("/bookings/start/", {**start, "account": board.account.pk})
    assert first["Location"] == second["Location"] == third["Location"]
    booking = Booking.objects.get()
    settle(task_queue, booking, Booking.State.CHOOSE_SLOT)
    slot = booking.slots[0]
    page = tab1.get(f"/bookings/{booking.pk}/", {"slot": slot})
    assert b"This books a real appointment" in page.content
    for client in (tab1, tab2, other, tab1):
        client.post(f"/bookings/{booking.pk}/confirm/", {"slot": slot})
    settle(task_queue, booking, Booking.State.BOOKED)
    assert make_calls(sim) == 1
    assert booking.confirmed_by == board.account.user


def test_a_person_without_the_permission_cannot_book(
    board: Board, sim: SimControl, task_queue: TaskQueue
) -> None:
    erin = board.account.user
    erin.user_permissions.clear()
    erin = type(erin).objects.get(pk=erin.pk)  # no cached permissions
    page = browser(erin)
    answer = page.post("/bookings/start/", {"container_number": board.number}, follow=True)
    assert "Can book appointments" in answer.content.decode()
    container = page.get(f"/containers/{board.number}/")
    assert b"Book a slot" not in container.content
    api = api_client(erin)
    refused = api.post(
        "/api/v1/bookings/", {"container_number": board.number}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert not Booking.objects.exists()

    # A booking someone else started: still no confirm for her.
    allow_booking(erin)
    booking = Booking.objects.get(
        pk=api_client(erin)
        .post(
            "/api/v1/bookings/",
            {"container_number": board.number},
            content_type="application/json",
        )
        .json()["id"]
    )
    settle(task_queue, booking, Booking.State.CHOOSE_SLOT)
    erin.user_permissions.clear()
    erin = type(erin).objects.get(pk=erin.pk)
    no = api_client(erin).post(
        f"/api/v1/bookings/{booking.pk}/confirm/",
        {"slot": booking.slots[0]},
        content_type="application/json",
    )
    assert no.status_code == 403
    browser(erin).post(f"/bookings/{booking.pk}/confirm/", {"slot": booking.slots[0]})
    # Another person's account is not hers to see.
    dora = make_account("dora")
    allow_booking(dora.user)
    assert browser(dora.user).get(f"/bookings/{booking.pk}/").status_code == 404
    assert api_client(dora.user).get(f"/api/v1/bookings/{booking.pk}/").status_code == 404
    assert (
        browser(dora.user)
        .post(f"/bookings/{booking.pk}/confirm/", {"slot": booking.slots[0]})
        .status_code
        == 404
    )
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    booking.refresh_from_db()
    assert booking.state == Booking.State.CHOOSE_SLOT
    assert make_calls(sim) == 0


def test_no_entry_point_sends_without_a_confirmation(
    board: Board, sim: SimControl, task_queue: TaskQueue, staff: Any
) -> None:
    """Every page, API call, admin page and action, and command that touches a booking, short
    of "Confirm booking": not one `make_appointment`."""
    allow_booking(staff)
    user = board.account.user
    page, admin, api = browser(user), browser(staff), api_client(user)
    page.post("/bookings/start/", {"container_number": board.number})
    booking = Booking.objects.get()
    settle(task_queue, booking, Booking.State.CHOOSE_SLOT)
    slot = booking.slots[0]
    pk = booking.pk
    visits = [
        page.get("/bookings/"),
        page.get(f"/bookings/{pk}/"),
        page.get(f"/bookings/{pk}/", {"slot": slot}),  # the confirmation step itself
        page.get(f"/bookings/{pk}/confirm/"),  # a GET of the confirm URL
        page.get(f"/containers/{board.number}/"),
        page.get("/containers/"),
        api.get("/api/v1/bookings/"),
        api.get(f"/api/v1/bookings/{pk}/"),
        api.get(f"/api/v1/bookings/{pk}/confirm/"),
        api.post(f"/api/v1/bookings/{pk}/confirm/", {}, content_type="application/json"),
        admin.get("/admin/bookings_app/booking/"),
        admin.get(f"/admin/bookings_app/booking/{pk}/change/"),
        admin.get("/admin/bookings_app/booking/?q=" + board.number),
    ]
    assert [v.status_code for v in visits] == [
        200, 200, 200, 405, 200, 200, 200, 200, 405, 400, 200, 200, 200,
    ]  # fmt: skip
    for action in ("settle_booked", "settle_not_booked"):
        admin.post(
            "/admin/bookings_app/booking/",
            {"action": action, "_selected_action": [pk]},
        )
    call_command("run_queries", "--kind", "appointments", "--all", verbosity=0)
    from bookings_app.tasks import sweep_bookings

    sweep_bookings()
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    page.post(f"/bookings/{pk}/recheck/")
    settle(task_queue, booking, Booking.State.CHOOSE_SLOT)
    page.post(f"/bookings/{pk}/cancel/")
    booking.refresh_from_db()
    assert booking.state == Booking.State.CANCELLED
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    assert make_calls(sim) == 0
    assert sim.bookings() == []


def test_staff_settle_an_unknown_outcome_in_the_admin(
    board: Board, sim: SimControl, task_queue: TaskQueue, staff: Any, settings: Any
) -> None:
    api = api_client(board.account.user)
    pk = api.post(
        "/api/v1/bookings/", {"container_number": board.number}, content_type="application/json"
    ).json()["id"]
    booking = settle(task_queue, Booking.objects.get(pk=pk), Booking.State.CHOOSE_SLOT)
    settings.EMODAL_TIMEOUT_SCALE = 0.002  # a booking's read timeout of 0.6 s
    sim.fault("/make_appointment", mode="delay", delay=2_000)
    api.post(
        f"/api/v1/bookings/{pk}/confirm/",
        {"slot": booking.slots[0]},
        content_type="application/json",
    )
    booking = settle(task_queue, booking, Booking.State.UNKNOWN)
    settings.EMODAL_TIMEOUT_SCALE = 1.0
    # While unknown it blocks another booking of the container (it may have booked).
    again = api.post(
        "/api/v1/bookings/", {"container_number": board.number}, content_type="application/json"
    )
    assert (again.status_code, again.json()["id"]) == (200, pk)
    admin = browser(staff)
    changelist = admin.get("/admin/bookings_app/booking/?state__exact=unknown")
    assert board.number in changelist.content.decode()
    admin.post(
        "/admin/bookings_app/booking/", {"action": "settle_booked", "_selected_action": [pk]}
    )
    booking.refresh_from_db()
    assert booking.state == Booking.State.BOOKED and booking.settled_by == staff
    assert "Settled by charlie" in booking.note
    assert api.get(f"/api/v1/bookings/{pk}/").json()["state"] == "booked"
    assert make_calls(sim) == 1


@pytest.mark.django_db
def test_bad_input_is_a_readable_refusal_never_a_500(booker: Any, sim: SimControl) -> None:
    api, page = api_client(booker.user), browser(booker.user)
    for body in (
        {},
        {"container_number": ["MSCU1234567"]},
        {"container_number": "X" * 300},
        {"container_number": "MSCU1234567", "account": "abc"},
        {"container_number": "NOTONBOARD1"},
    ):
        answer = api.post("/api/v1/bookings/", body, content_type="application/json")
        assert answer.status_code == 400, (body, answer.content)
    assert api.post("/api/v1/bookings/", "{", content_type="application/json").status_code == 400
    assert api.post("/api/v1/bookings/1/confirm/", {"slot": "x"}).status_code == 404
    assert api.get("/api/v1/bookings/99999999999999999999/").status_code == 400  # not an id
    for form in (
        {},
        {"container_number": "NOTONBOARD1", "account": "abc"},
        {"container_number": "A" * 99},
    ):
        answer = page.post("/bookings/start/", form, follow=True)
        assert answer.status_code in (200, 404), form
    assert page.get("/bookings/99999/").status_code == 404
    assert not Booking.objects.exists()
    assert make_calls(sim) == 0
