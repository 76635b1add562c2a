"""A glitchy day on E-Modal (docs/upstream-contract.md, "Failures: final or transient"): a page
not rendered yet fails one container's check, resumed once with its workflow, never re-sent;
the account is not flagged; an appointments export that fails at the end of a run is a note on
the run; a browser a held workflow is about to close gets no new work."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from queries_app.models import AppointmentCheck, Query
from queries_app.services import start_query
from sessions_app.models import Account, SessionEvent

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries

pytestmark = pytest.mark.django_db(transaction=True)


def run(account: Account, queue: TaskQueue, kind: str = "availability") -> Query:
    return run_through_retries(start_query(account=account, kind=kind)[0], queue)


def check_calls(sim: SimControl, since: int = 0) -> list[dict[str, Any]]:
    return [c for c in sim.calls("/check_appointments") if c["id"] > since]


def container_of(call: dict[str, Any]) -> str:
    params = call["params"] or {}
    return str(params.get("container_id") or params.get("booking_number"))


def sent(query: Query) -> list[AppointmentCheck]:
    return list(query.checks.exclude(outcome=AppointmentCheck.Outcome.NOT_SENT).order_by("pk"))


def test_a_page_not_rendered_fails_one_check_and_the_run_goes_on(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    # The first check, and its resume, find the Trucking dropdown not rendered yet.
    sim.glitch("/check_appointments", "dropdown_missing", step="trucking", count=2)
    query = run(alice, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    checks = sent(query)
    assert len(checks) >= 3
    first, others = checks[0], checks[1:]
    assert first.outcome == AppointmentCheck.Outcome.FAILED
    assert first.error == (
        "E-Modal's page failed (and its resume): Phase 1 failed - Trucking company: "
        "Dropdown 'Trucking' not found"
    )
    assert all(c.outcome != AppointmentCheck.Outcome.FAILED for c in others)
    # Two calls for that container, the second resuming its workflow; one for each other.
    calls = check_calls(sim)
    mine = [c for c in calls if container_of(c) == first.container_number]
    assert [c["resumed"] for c in mine] == [False, True]
    assert len(calls) == len(checks) + 1
    alice.refresh_from_db()
    assert alice.appointment_error == ""  # a glitch is not a wrong value
    assert alice.held_workflows == 1  # the failed workflow is still held on the browser

    # The next run sends every check it plans: nothing waits for a person.
    last = calls[-1]["id"]
    again = run(alice, task_queue)
    assert again.status == Query.Status.SUCCEEDED, again.error
    assert len(sent(again)) >= 3
    # (The held workflow has closed the old browser by now: a check finding its session gone
    # is sent again once on a new one, still no more than two calls for a container.)
    per_container = Counter(container_of(c) for c in check_calls(sim, last))
    assert len(per_container) == len(sent(again)) and max(per_container.values()) <= 2
    assert all(c.outcome != AppointmentCheck.Outcome.FAILED for c in sent(again))


def test_a_glitch_is_resumed_once_with_its_workflow_and_the_check_is_answered(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    sim.glitch("/check_appointments", "stale", step="checkbox")
    query = run(alice, task_queue, kind="availability")
    assert query.status == Query.Status.SUCCEEDED, query.error
    first = sent(query)[0]
    assert first.outcome in (AppointmentCheck.Outcome.AVAILABLE, AppointmentCheck.Outcome.NONE)
    mine = [c for c in check_calls(sim) if container_of(c) == first.container_number]
    assert [(c["status"], c["resumed"]) for c in mine] == [(500, False), (200, True)]
    # Never more than two calls for any container.
    assert max(Counter(container_of(c) for c in check_calls(sim)).values()) == 2
    alice.refresh_from_db()
    assert (alice.held_workflows, alice.browser_closes_at) == (0, None)
    assert sim.workflows() == []  # the resumed check dropped its workflow


def test_a_check_glitch_without_a_workflow_is_recorded_after_one_try(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    sim.glitch("/check_appointments", "html500")  # a crash page: no workflow named
    query = run(alice, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    first = sent(query)[0]
    assert first.outcome == AppointmentCheck.Outcome.FAILED
    assert first.error.startswith("E-Modal's page failed: The upstream answered")
    mine = [c for c in check_calls(sim) if container_of(c) == first.container_number]
    assert len(mine) == 1


def test_an_export_file_not_found_at_the_end_is_a_note_on_a_run_that_succeeded(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    sim.glitch("/get_appointments", "excel_missing", count=3)
    query = run(alice, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    assert query.notes == (
        "The account's appointments were not read: Gave up after 3 tries: "
        "Excel file not found after download"
    )
    assert sent(query) and not query.appointments.exists()
    client = Client()
    client.force_login(alice.user)
    page = client.get(reverse("queries:detail", args=[query.pk])).content.decode()
    assert "Excel file not found after download" in page


def test_a_browser_a_held_workflow_is_about_to_close_is_replaced_before_new_work(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    settings.EMODAL_POISON_SECONDS = 0  # known poisoned as soon as a check fails
    sim.glitch("/check_appointments", "dropdown_missing", step="terminal", count=2)
    query = run(alice, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    replaced = SessionEvent.objects.filter(account=alice, kind=SessionEvent.Kind.POISONED)
    assert replaced.count() == 1
    assert replaced.get().detail == "1 failed check held on its browser"
    # The poisoned browser was closed by the portal and the rest ran on a new one.
    assert sim.stats()["deleted"] == 1
    assert sim.stats()["poisoned_browsers"] == 0
    sessions = {c["session_id"] for c in check_calls(sim)[2:]}
    assert len(sessions) == 1 and check_calls(sim)[0]["session_id"] not in sessions


def test_a_single_check_that_glitches_twice_fails_saying_so_after_one_resume(
    alice: Account, sim: SimControl, task_queue: TaskQueue, sim_server: Any
) -> None:
    from emodal_sim.data import containers_for

    rows = containers_for(str(alice.emodal_username), sim_server.config)
    number = next(r["Container #"] for r in rows if r["Trade Type"] == "IMPORT")
    sim.glitch("/check_appointments", "dropdown_missing", step="move", count=2)
    params = {
        "container_type": "import",
        "container_id": number,
        "terminal": "TTI",
        "move_type": "PICK FULL",
    }
    query = run_through_retries(
        start_query(account=alice, kind="appointment_check", params=params)[0], task_queue
    )
    assert query.status == Query.Status.FAILED
    assert query.error == (
        "Appointment check failed: E-Modal's page failed (and its resume): Phase 1 failed - "
        "Move type: Dropdown 'Move' not found"
    )
    assert [c["resumed"] for c in check_calls(sim)] == [False, True]
    alice.refresh_from_db()
    assert alice.appointment_error == "" and alice.held_workflows == 1
