"""Booking in headless Chromium: a dispatcher opens a container's page, clicks "Book a slot",
chooses a slot of the fresh check, reads every value on the confirmation step, confirms, and
sees it booked (verified) — under the strict policy, with no script error and nothing refused.
Screenshots go to test-artifacts/screenshots/ (the ones in docs/screenshots/ come from here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bookings_app.models import Booking
from sessions_app.models import Account

from ..queries.test_e2e_browser import CHROMIUM, browser_page, orm, shot  # noqa: F401 - fixtures
from ..sim import SimControl
from ..taskqueue import TaskQueue
from .conftest import board_with_slots, settle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
PASSWORD = "booking browser password"


def test_a_dispatcher_books_a_slot_from_the_container_page(
    live_server: Any,
    sim: SimControl,
    task_queue: TaskQueue,
    booker: Account,
    browser_page: Any,  # noqa: F811 - the fixture imported above
    orm: Callable[..., Any],  # noqa: F811
) -> None:
    def prepare() -> str:
        booker.user.set_password(PASSWORD)
        booker.user.save()
        return board_with_slots(booker, task_queue).number

    number = orm(prepare)
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", booker.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/containers/")

    # The board's row of a container to pick up, with slots, offers it; the container's page too.
    row = page.locator("#board-table tbody tr", has=page.locator(f"th >> text={number}"))
    expect(row.locator("button.book")).to_have_text("Book a slot")
    page.goto(f"{live_server.url}/containers/{number}/")
    page.click("#book-slot")
    expect(page.locator("#booking-state")).to_have_text("Checking the slots")
    booking = orm(lambda: Booking.objects.get())
    orm(settle, task_queue, booking, Booking.State.CHOOSE_SLOT)
    slots = orm(lambda: Booking.objects.get().slots)

    page.reload()
    expect(page.locator("#booking-state")).to_have_text("Choose a slot")
    expect(page.locator("#slot-form label.slot")).to_have_count(len(slots))
    assert [t.strip() for t in page.locator("#slot-form label.slot").all_text_contents()] == slots
    shot(page, "14-booking-slots")

    chosen = slots[-1]
    page.check(f"#slot-form input[value='{chosen}']")
    page.click("#review-booking")
    expect(page.locator("#booking-warning")).to_contain_text(
        "This books a real appointment in E-Modal"
    )
    expect(page.locator("#confirm-slot")).to_have_text(chosen)
    values = page.locator("#sent-values").inner_text()
    for label in ("Container", "Terminal", "Move type", "Trucking company", "Truck plate"):
        assert label in values
    assert number in values and booker.truck_plate in values and "PICK FULL" in values
    assert booker.trucking_company in values
    shot(page, "15-booking-confirmation")
    assert sim.calls("/make_appointment") == []

    page.click("#confirm-booking")
    expect(page.locator("#booking-state")).to_have_text("Sent to E-Modal, being verified")
    orm(settle, task_queue, booking, Booking.State.BOOKED)
    page.reload()
    expect(page.locator("#booking-state")).to_have_text("Booked (verified)")
    expect(page.locator("#booked-slot")).to_have_text(chosen)
    expect(page.locator("#appointment-number")).not_to_be_empty()
    shot(page, "16-booking-verified")

    page.goto(f"{live_server.url}/containers/{number}/")
    expect(page.locator("#booking-list")).to_contain_text("Booked (verified)")
    expect(page.locator("#history-list")).to_contain_text(f"booked (verified), {chosen}")
    page.goto(f"{live_server.url}/containers/?q={number}")
    row = page.locator("#board-table tbody tr", has=page.locator(f"th >> text={number}"))
    expect(row.locator(".appointment")).to_have_text(f"Appointment {chosen}")
    calls = sim.calls("/make_appointment")
    assert len(calls) == 1 and calls[0]["params"]["appointment_time"] == chosen
    assert page.script_errors == []
