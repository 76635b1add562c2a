"""End to end in headless Chromium: log in, start an availability run against the simulator,
watch its progress move without a reload, read and filter the results, export them as CSV.

The query's steps are run by the test itself (one at a time, from the task queue) so that the
page can be checked between them. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string

from queries_app import views
from queries_app.models import ContainerRow, Query
from sessions_app.models import Account

from ..sim import SimControl
from ..taskqueue import TaskQueue

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
WAIT_MS = 15_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture
def orm() -> Iterator[Callable[..., Any]]:
    """Run database work on a thread of its own. Playwright's sync API keeps an event loop
    running on the test's thread, where Django refuses synchronous database calls."""
    executor = ThreadPoolExecutor(max_workers=1)

    def call(function: Callable[..., Any], *args: Any) -> Any:
        return executor.submit(function, *args).result()

    yield call
    call(connections.close_all)
    executor.shutdown()


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1400, "height": 900}
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on(
            "response",
            lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.script_errors = errors
        yield page
        context.close()
        browser.close()


def run_queued_tasks(queue: TaskQueue) -> int:
    """Run what is queued now, oldest first; returns how many tasks ran."""
    tasks = queue.drain()
    for task in tasks:
        import_string(task["func"])(*task["args"], **task["kwargs"])
    return len(tasks)


def run_queued_tasks_until(
    queue: TaskQueue, predicate: Callable[[], bool], *, timeout: float = 60.0
) -> None:
    """Keep running queued tasks until `predicate()` holds, failing after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold before the deadline")
        if not run_queued_tasks(queue):
            time.sleep(0.05)


CELL_TEXTS_JS = """rows => rows.map(
    row => Array.from(row.cells, cell => cell.textContent.trim().replace(/\\s+/g, " "))
)"""


def cell_texts(page: Any, table: str) -> list[list[str]]:
    """What a table shows, row by row (the header row first)."""
    return page.eval_on_selector_all(f"#{table} tr", CELL_TEXTS_JS)


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_dispatcher_runs_follows_filters_and_exports_an_availability_run(
    live_server: Any,
    sim: SimControl,
    task_queue: TaskQueue,
    alice: Account,
    browser_page: Any,
    orm: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    monkeypatch.setattr(views, "PROGRESS_POLL_MS", 150)
    # One step per task: the page is watched between every two steps.
    settings.QUERY_CHAIN_SECONDS = 0
    orm(lambda: (alice.user.set_password(PASSWORD), alice.user.save()))
    page = browser_page

    # Log in and start a run.
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    # A login lands on the containers board; the queries are one click away.
    expect(page).to_have_url(f"{live_server.url}/containers/")
    page.click("nav >> text=My queries")
    expect(page).to_have_url(f"{live_server.url}/queries/")
    expect(page.locator("#id_container_id")).to_be_hidden()
    page.select_option("#id_kind", "timeline")
    expect(page.locator("#id_container_id")).to_be_visible()
    page.select_option("#id_kind", "availability")
    shot(page, "01-my-queries-start")
    page.click("#start-form button[type=submit]")

    query = orm(lambda: Query.objects.get())
    expect(page).to_have_url(f"{live_server.url}/queries/{query.pk}/")
    status = page.locator("#query-status")
    expect(status).to_contain_text("Pending")
    # Survives only as long as the page is not reloaded.
    page.evaluate("window.stillTheSamePage = true")

    def refreshed() -> Query:
        return orm(lambda: Query.objects.get(pk=query.pk))

    # The containers sheet: the run now knows how many containers it will check.
    assert orm(run_queued_tasks, task_queue) == 1
    total = refreshed().progress_total
    assert total > 1
    expect(status).to_contain_text("Running")
    expect(status).to_contain_text(f"1 of {total + 4} steps · 0 of {total} containers checked")
    expect(status).to_contain_text("Reading container details")

    # Bulk info, then the first container's slots.
    orm(run_queued_tasks, task_queue)
    expect(status).to_contain_text("Checking appointment slots")
    orm(run_queued_tasks, task_queue)
    expect(status).to_contain_text(f"1 of {total} containers checked")
    # Every step counts: the sheet, the details, the first check.
    expect(page.locator("#query-status progress")).to_have_attribute("value", "3")
    shot(page, "02-running-query")
    assert page.evaluate("window.stillTheSamePage") is True

    # The rest of the run; the page swaps the results in when it ends.
    # The predicate runs on the database thread already (inside run_queued_tasks_until).
    orm(run_queued_tasks_until, task_queue, lambda: not Query.objects.get(pk=query.pk).is_live)
    assert refreshed().status == Query.Status.SUCCEEDED, refreshed().error
    expect(status).to_contain_text("Succeeded", timeout=WAIT_MS)
    expect(page.locator("#containers-table")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#checks-table")).to_be_visible()
    expect(page.locator("#appointments-table")).to_be_visible()
    expect(page.locator("button", has_text="Cancel query")).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True
    shot(page, "03-results")

    # Read the results: every container the run stored, in container order.
    stored = orm(
        lambda: list(
            ContainerRow.objects.filter(query_id=query.pk)
            .order_by("container_number")
            .values_list("container_number", "holds")
        )
    )
    rows = cell_texts(page, "containers-table")
    header, body = rows[0], rows[1:]
    assert [row[0] for row in body] == [number for number, _ in stored]

    # Filter: containers without holds.
    page.select_option("#id_holds", "no")
    page.click("#container-filters button[type=submit]")
    expect(page).to_have_url(
        f"{live_server.url}/queries/{query.pk}/?holds=no&sort=container_number#containers"
    )
    filtered = cell_texts(page, "containers-table")
    holds = header.index("Holds")
    assert [row[0] for row in filtered[1:]] == [n for n, held in stored if held is False]
    assert {row[holds] for row in filtered[1:]} == {"No"}
    shot(page, "04-filtered-results")

    # Export what is shown.
    with page.expect_download() as download:
        page.click("#export-csv")
    path = download.value.path()
    assert download.value.suggested_filename == f"query-{query.pk}-containers.csv"
    with open(path, newline="") as exported:
        assert list(csv.reader(exported)) == filtered

    # The same results on a phone: the table scrolls sideways inside its wrapper.
    page.set_viewport_size({"width": 390, "height": 844})
    wrapper = page.locator("#containers .table-wrap")
    assert wrapper.evaluate("el => el.scrollWidth > el.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "05-results-phone")

    page.set_viewport_size({"width": 1400, "height": 900})
    page.click("nav >> text=My queries")
    expect(page.locator("#queries-table")).to_contain_text("Succeeded")
    shot(page, "06-my-queries")
    assert page.script_errors == []
