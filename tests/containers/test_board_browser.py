"""The board in headless Chromium: a dispatcher logs in and lands on it, filters the containers
due within 2 days, stars one, and opens a container's history — under the strict policy, with
no script error and nothing refused. Screenshots go to test-artifacts/screenshots/ (the ones in
docs/screenshots/ come from here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from containers_app.models import Container, Watch
from containers_app.verdict import NEEDS_PICKUP, Pickup
from queries_app.models import Query, Terminal
from queries_app.services import start_query
from sessions_app.models import Account

from ..queries.test_e2e_browser import CHROMIUM, browser_page, orm, shot  # noqa: F401 - fixtures
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
PASSWORD = "board browser password"


def last_run() -> int:
    return Query.objects.latest("created_at").pk


def test_a_dispatcher_filters_the_board_stars_a_container_and_reads_its_history(
    live_server: Any,
    sim: SimControl,
    task_queue: TaskQueue,
    alice: Account,
    browser_page: Any,  # noqa: F811 - the fixture imported above
    orm: Callable[..., Any],  # noqa: F811
) -> None:
    def two_runs() -> str:
        alice.user.set_password(PASSWORD)
        alice.user.email = "alice@example.com"  # alerts go to Django's test outbox here
        alice.user.save()
        for step in range(2):
            query = run_through_retries(
                start_query(account=alice, kind="availability")[0], task_queue
            )
            assert query.status == Query.Status.SUCCEEDED, query.error
            if step == 0:
                changes = sim.changes(alice.emodal_username)
                sim.advance(alice.emodal_username)
        return changes["lfd"][0]

    moved = orm(two_runs)
    today = timezone.localdate()
    due = orm(
        lambda: set(
            Container.objects.filter(
                account=alice,
                gone_at__isnull=True,
                pickup__in=NEEDS_PICKUP,
                last_free_day__lte=today + timedelta(days=2),
            ).values_list("container_number", flat=True)
        )
    )
    assert due
    page = browser_page

    # Log in: the board is where a dispatcher lands, on what still needs a pickup.
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/containers/")
    expect(page.locator("#board-table tbody tr")).to_have_count(
        orm(
            lambda: Container.objects.filter(
                account=alice, gone_at__isnull=True, pickup__in=NEEDS_PICKUP
            ).count()
        )
    )
    shot(page, "08-board")

    # Filter: due within 2 days (overdue ones included).
    page.fill("#id_due_within", "2")
    page.click("#board-filters button[type=submit]")
    expect(page).to_have_url(
        f"{live_server.url}/containers/?q=&pickup=needs&due=&due_within=2&holds=&slot=&terminal=&changed_since=&watched=&show=&sort=lfd"
    )
    shown = page.eval_on_selector_all(
        "#board-table tbody th[scope=row] a", "links => links.map(a => a.textContent.trim())"
    )
    assert set(shown) == due
    assert page.locator("#board-table .due").count() >= 1
    shot(page, "09-board-due-within-2-days")

    # Star the first of them: the page comes back with it starred, the filter kept.
    first = shown[0]
    row = page.locator("#board-table tbody tr", has=page.locator(f"th >> text={first}"))
    row.locator("button.star").click()
    expect(page).to_have_url(
        f"{live_server.url}/containers/?q=&pickup=needs&due=&due_within=2&holds=&slot=&terminal=&changed_since=&watched=&show=&sort=lfd"
    )
    row = page.locator("#board-table tbody tr", has=page.locator(f"th >> text={first}"))
    expect(row.locator("button.star")).to_have_attribute("aria-pressed", "true")
    assert orm(
        lambda: Watch.objects.filter(user=alice.user, container__container_number=first).exists()
    )

    # Open the history of a container whose last free day moved between the runs.
    page.goto(f"{live_server.url}/containers/?q={moved}&pickup=")
    page.click(f"#board-table th[scope=row] a >> text={moved}")
    expect(page).to_have_url(f"{live_server.url}/containers/{moved}/")
    expect(page.locator("#container-number")).to_have_text(moved)
    expect(page.locator("#history-list")).to_contain_text("last free day moved from")
    expect(page.locator("#runs-table tbody tr")).to_have_count(2)
    shot(page, "10-container-history")

    page.click("nav >> text=Alerts")
    expect(page.locator("#alerts-form")).to_be_visible()
    expect(page.locator("#alerts-table")).to_contain_text(f"(run #{orm(last_run)})")
    shot(page, "11-alert-settings")
    assert page.script_errors == []


def seed_board(account: Account) -> list[str]:
    """A morning's board without a run: containers due, on hold, with a slot, at a terminal."""
    terminal, _ = Terminal.objects.update_or_create(
        code="LBCT", defaults={"name": "Long Beach Container Terminal"}
    )
    today = timezone.localdate()
    slot = timezone.now().replace(hour=15, minute=0, second=0, microsecond=0) + timedelta(days=1)
    rows = []
    for n, (days, holds, slots) in enumerate(
        [(-2, False, 0), (0, True, 0), (1, False, 2), (3, False, 1), (6, True, 0)]
    ):
        rows.append(
            Container.objects.create(
                account=account,
                container_number=f"MSCU{n + 1:07d}",
                trade_type="IMPORT",
                status="IN YARD",
                pickup=Pickup.ON_HOLD if holds else Pickup.READY,
                holds=holds,
                last_free_day=today + timedelta(days=days),
                terminal=terminal,
                terminal_code="LBCT",
                slot_count=slots or None,
                earliest_slot=slot if slots else None,
                earliest_slot_text=f"{slot:%m/%d/%Y %H:%M} - {slot:%H}:59" if slots else "",
                check_outcome="available" if slots else "",
                sheet_seen_at=timezone.now(),
            ).container_number
        )
    return rows


def test_on_a_phone_the_board_is_cards_and_the_filters_fold_behind_one_button(
    live_server: Any,
    alice: Account,
    browser_page: Any,  # noqa: F811 - the fixture imported above
    orm: Callable[..., Any],  # noqa: F811
) -> None:
    def prepare() -> list[str]:
        alice.user.set_password(PASSWORD)
        alice.user.save()
        return seed_board(alice)

    numbers = orm(prepare)
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/containers/")
    # On a desktop: a table with its header, the filters open, no fold button.
    expect(page.locator("#board-table thead")).to_be_visible()
    expect(page.locator("#board-filters")).to_be_visible()
    expect(page.locator("#filters-toggle")).to_be_hidden()
    shot(page, "12-board-desktop")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    # The filters fold behind one button, which opens and closes them.
    toggle = page.locator("#filters-toggle")
    expect(toggle).to_be_visible()
    expect(page.locator("#board-filters")).to_be_hidden()
    toggle.click()
    expect(page.locator("#board-filters")).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(page.locator("#board-filters")).to_be_hidden()

    # Each row is a card within the screen's width: number, pickup, last free day with days
    # left, holds, slot, terminal — and nothing to scroll sideways for.
    rows = page.locator("#board-table tbody tr")
    expect(rows).to_have_count(len(numbers))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for index in range(len(numbers)):
        card = rows.nth(index)
        box = card.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        for part in ("th[scope=row]", "td.pickup", "td.lfd", "td.c-holds", "td.c-terminal"):
            cell = card.locator(part)
            expect(cell).to_be_visible()
            inside = cell.bounding_box()
            assert inside["x"] + inside["width"] <= box["x"] + box["width"] + 1, part
        # The table's other columns wait on the container's page.
        expect(card.locator("td.c-seen")).to_be_hidden()
    overdue = rows.filter(has=page.locator(f"th >> text={numbers[0]}"))
    expect(overdue.locator("td.lfd")).to_contain_text("overdue by 2 days")
    with_slot = rows.filter(has=page.locator(f"th >> text={numbers[2]}"))
    expect(with_slot.locator("td.c-slot")).to_be_visible()
    expect(with_slot.locator("td.c-slot")).to_contain_text("2 slots")
    expect(with_slot.locator("td.c-terminal")).to_have_text("Long Beach Container Terminal")
    # The header is still read out (visually hidden, not removed).
    assert page.locator("#board-table thead").count() == 1
    shot(page, "13-board-phone")
    assert page.script_errors == []
