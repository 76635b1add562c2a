"""Live pages in headless Chromium: "My queries" and the board follow a run while it goes —
new data merged into the page, never a reload — and stop asking once it has ended."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from containers_app import views as board_views
from containers_app.models import Container
from containers_app.verdict import Pickup
from queries_app import views
from queries_app.models import ContainerRow, Query
from sessions_app.models import Account

from .test_e2e_browser import CHROMIUM, browser_page, orm  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
PASSWORD = "live pages password"


def log_in(page: Any, live_server: Any, orm: Callable[..., Any], account: Account) -> None:  # noqa: F811
    def set_password() -> None:
        account.user.set_password(PASSWORD)
        account.user.save()

    orm(set_password)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", account.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def test_my_queries_follow_a_run_without_a_reload(
    live_server: Any,
    alice: Account,
    browser_page: Any,  # noqa: F811
    orm: Callable[..., Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(views, "PROGRESS_POLL_MS", 150)
    query = orm(
        lambda: Query.objects.create(
            account=alice, kind="availability", status=Query.Status.RUNNING, step="containers"
        )
    )
    page = browser_page
    log_in(page, live_server, orm, alice)
    page.goto(f"{live_server.url}/queries/")
    row = page.locator("#queries-table tbody tr").first
    expect(row).to_contain_text("Running")
    expect(row).to_contain_text("0 of 4 steps")
    page.evaluate("window.stillTheSamePage = true")

    def advance(**fields: Any) -> Callable[[], int]:
        return lambda: Query.objects.filter(pk=query.pk).update(**fields)

    orm(advance(step="appointment_check", progress_total=6, progress_done=2))
    expect(row).to_contain_text("4 of 10 steps · 2 of 6 containers checked")
    orm(
        advance(status=Query.Status.SUCCEEDED, step="", progress_done=6, finished_at=timezone.now())
    )
    expect(row).to_contain_text("Succeeded")
    expect(page.locator("#my-queries")).not_to_have_attribute("data-live-url", "/queries/")
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.script_errors == []


def test_the_board_takes_in_a_run_s_containers_without_a_reload(
    live_server: Any,
    alice: Account,
    browser_page: Any,  # noqa: F811
    orm: Callable[..., Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(board_views, "BOARD_POLL_MS", 150)
    today = timezone.localdate()

    def box(number: str) -> Container:
        return Container.objects.create(
            account=alice,
            container_number=number,
            trade_type="IMPORT",
            status="IN YARD",
            holds=False,
            pickup=Pickup.READY,
            last_free_day=today + timedelta(days=1),
            sheet_seen_at=timezone.now(),
        )

    orm(box, "MSCU0000001")
    query = orm(
        lambda: Query.objects.create(
            account=alice, kind="availability", status=Query.Status.RUNNING, step="containers"
        )
    )
    page = browser_page
    log_in(page, live_server, orm, alice)
    expect(page).to_have_url(f"{live_server.url}/containers/")
    expect(page.locator("#board-live-note")).to_contain_text("A run is going")
    expect(page.locator("#board-table tbody tr")).to_have_count(1)
    page.evaluate("window.stillTheSamePage = true")

    # The run stores what it saw: the page takes it in, counts included.
    orm(box, "MSCU0000002")
    expect(page.locator("#board-table tbody tr")).to_have_count(2)
    expect(page.locator("#board-shown")).to_contain_text("2 containers")
    expect(page.locator("#quick-needs")).to_contain_text("2")

    # The run ends (long enough ago that nothing more can come): the page stops asking.
    orm(
        lambda: Query.objects.filter(pk=query.pk).update(
            status=Query.Status.SUCCEEDED,
            step="",
            finished_at=timezone.now() - board_views.BOARD_SETTLING - timedelta(seconds=1),
        )
    )
    expect(page.locator("#board-live-note")).to_have_text("")
    expect(page.locator("[data-live-url]")).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.script_errors == []


def test_a_run_s_page_shows_the_sheet_as_soon_as_it_is_stored(
    live_server: Any,
    alice: Account,
    browser_page: Any,  # noqa: F811
    orm: Callable[..., Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(views, "PROGRESS_POLL_MS", 150)
    query = orm(
        lambda: Query.objects.create(
            account=alice, kind="availability", status=Query.Status.RUNNING, step="containers"
        )
    )
    page = browser_page
    log_in(page, live_server, orm, alice)
    page.goto(f"{live_server.url}/queries/{query.pk}/")
    expect(page.locator("#query-status")).to_contain_text("Running")
    expect(page.locator("#containers-table")).to_have_count(0)
    page.evaluate("window.stillTheSamePage = true")

    def sheet_stored() -> None:
        ContainerRow.objects.create(query=query, container_number="MSCU0000001")
        Query.objects.filter(pk=query.pk).update(step="bulk_info", progress_total=1)

    orm(sheet_stored)
    # The sheet shows while the run goes on to its details.
    expect(page.locator("#containers-table")).to_contain_text("MSCU0000001")
    expect(page.locator("#query-status")).to_contain_text("Running")
    expect(page.locator("#query-status")).to_contain_text("Reading container details")
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.script_errors == []
