"""The query engine against the simulator over real HTTP: steps, results, recovery."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from emodal_sim.data import (
    appointments_for,
    booking_number_for,
    containers_for,
    has_pregate_milestone,
)
from queries_app import parsing, slots
from queries_app.engine import run_query_step, sweep_queries
from queries_app.models import (
    AppointmentCheck,
    AppointmentRow,
    ContainerInfo,
    ContainerRow,
    Query,
)
from queries_app.services import cancel_query, start_query
from sessions_app.models import Account

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def run_to_end(query: Query, queue: TaskQueue) -> Query:
    run_queued_tasks(queue, until=lambda: not Query.objects.get(pk=query.pk).is_live)
    query.refresh_from_db()
    return query


def served_containers(sim_server: Any, account: Account) -> list[dict[str, str]]:
    return containers_for(account.emodal_username, sim_server.config)


def test_availability_run_stores_exactly_what_the_simulator_served(
    alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue, settings: Any
) -> None:
    # One step per task, so that the row can be read between every two steps.
    settings.QUERY_CHAIN_SECONDS = 0
    query, _ = start_query(account=alice, kind="availability")
    progress = []
    run_queued_tasks(
        task_queue,
        until=lambda: (
            progress.append(
                Query.objects.values_list("step", "progress_done", "progress_total").get(
                    pk=query.pk
                )
            )
            or not Query.objects.get(pk=query.pk).is_live
        ),
    )
    query.refresh_from_db()
    assert query.status == Query.Status.SUCCEEDED, query.error

    served = served_containers(sim_server, alice)
    stored = {row.container_number: row for row in query.containers.all()}
    assert len(stored) == len(served)
    for raw in served:
        row = stored[raw["Container #"]]
        assert row.raw == raw
        assert row.trade_type == parsing.cell(raw["Trade Type"])
        assert row.holds is {"YES": True, "NO": False}.get(raw["Holds"])
        assert row.pregate_ticket == parsing.cell(raw["Pregate Ticket#"])
        assert (row.last_free_day, row.good_through) == parsing.parse_date_range(raw["LFD/GTD"])
        assert row.fees == parsing.cell(raw["Fees"])

    candidates = [
        c for c in served if parsing.is_availability_candidate(parsing.container_fields(c))
    ]
    assert len(candidates) >= 3
    infos = {i.container_number: i for i in query.infos.all()}
    assert set(infos) == {c["Container #"] for c in candidates}
    checks = {c.container_number: c for c in query.checks.all()}
    assert set(checks) == set(infos)
    for number, check in checks.items():
        if check.outcome == AppointmentCheck.Outcome.NOT_SENT:
            continue
        if check.trade_type == "IMPORT":
            assert check.slot_count == len(check.slot_texts)
            if check.slot_texts:
                assert check.earliest_slot == min(
                    slots.parse_slot_start(text) for text in check.slot_texts
                )
        else:
            assert check.booking_number == infos[number].booking_number
    sheet = appointments_for(alice.emodal_username, served, sim_server.config)
    assert [a.appointment_number for a in query.appointments.all()] == [
        r["Appointment #"] for r in sheet
    ]
    assert {f.name for f in query.files.all()} >= {"containers.xlsx", "appointments.xlsx"}
    # Progress was readable on the row while the run went on, one container at a time.
    checking = [done for step, done, total in progress if step == "appointment_check"]
    assert checking == list(range(len(candidates)))
    assert query.progress_done == query.progress_total == len(candidates)
    assert sim.stats()["appointments_booked"] == 0
    assert sim.stats()["collisions"] == 0


def test_one_container_failing_leaves_the_others_intact(
    alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    sim.fault("/check_appointments", count=1, status=500, error="Phase 1 failed - not found")
    query = run_to_end(start_query(account=alice, kind="availability")[0], task_queue)
    assert query.status == Query.Status.SUCCEEDED
    failed = query.checks.filter(outcome=AppointmentCheck.Outcome.FAILED)
    assert [c.error for c in failed] == ["E-Modal's page failed: Phase 1 failed - not found"]
    # The others were checked (or, lacking a terminal name or booking number, not sent).
    assert query.checks.count() == query.progress_total
    assert query.checks.exclude(outcome=AppointmentCheck.Outcome.FAILED).count() == (
        query.progress_total - 1
    )


def test_a_step_that_fails_for_a_passing_reason_is_retried_after_a_back_off(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    sim.fault("/get_appointments", count=1, status=500, error="Excel download failed")
    query, _ = start_query(account=alice, kind="appointments")
    run_queued_tasks(
        task_queue,
        until=lambda: (
            task_queue.size() == 0 and Query.objects.get(pk=query.pk).retry_at is not None
        ),
    )
    query.refresh_from_db()
    assert query.status == Query.Status.RUNNING
    assert "Excel download failed" in query.error
    assert sweep_queries()["retries"] == 0  # not yet due
    assert sweep_queries(now=query.retry_at + timedelta(seconds=1))["retries"] == 1
    query = run_to_end(query, task_queue)
    assert query.status == Query.Status.SUCCEEDED
    assert query.error == ""
    assert query.appointments.exists()


def test_a_step_failing_every_time_fails_the_query_with_its_reason(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    sim.fault("/get_appointments", count=10, status=500, error="Excel download failed")
    query, _ = start_query(account=alice, kind="appointments")
    for _ in range(3):
        run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
        query.refresh_from_db()
        if not query.is_live:
            break
        sweep_queries(now=query.retry_at + timedelta(seconds=1))
    assert query.status == Query.Status.FAILED
    assert query.error == "Excel download failed (gave up after 3 tries)"
    assert len(sim.calls("/get_appointments")) == 3


def test_rejected_credentials_fail_the_query_with_what_to_fix(
    db: Any, sim: SimControl, task_queue: TaskQueue
) -> None:
    account = make_account("dora", password="wrong-password")
    query = run_to_end(start_query(account=account, kind="containers")[0], task_queue)
    assert query.status == Query.Status.FAILED
    # In a dispatcher's words: who can fix it, no upstream code, no command.
    assert "refused the account's user name or password" in query.error
    assert "ask your portal administrator" in query.error
    assert "LoginErrorType" not in query.error and "manage.py" not in query.error


def test_a_worker_that_died_mid_step_is_detected_and_the_step_rerun_once(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    query, _ = start_query(account=alice, kind="containers")
    task_queue.drain()  # the task is lost with its worker
    # The worker claimed the query and died in the middle of its step.
    Query.objects.filter(pk=query.pk).update(
        status=Query.Status.RUNNING,
        claim_token="dead-worker",
        claim_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert sweep_queries()["dead_workers"] == 1
    query = run_to_end(query, task_queue)
    assert query.status == Query.Status.SUCCEEDED
    assert query.step_failures == 0
    assert query.containers.count() == ContainerRow.objects.filter(query=query).count() > 0


def test_a_lost_task_is_enqueued_again(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    query, _ = start_query(account=alice, kind="appointments")
    task_queue.drain()  # e.g. the Redis broker restarted
    assert sweep_queries()["lost_tasks"] == 0
    later = timezone.now() + timedelta(seconds=settings.QUERY_LOST_AFTER_SECONDS + 1)
    assert sweep_queries(now=later)["lost_tasks"] == 1
    assert run_to_end(query, task_queue).status == Query.Status.SUCCEEDED


def test_a_redelivered_task_never_runs_a_step_twice(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    query, _ = start_query(account=alice, kind="containers")
    run_queued_tasks(task_queue, until=lambda: Query.objects.get(pk=query.pk).step != "containers")
    # The broker hands the first task out once more (it was never acknowledged).
    run_query_step(query.pk)
    run_query_step(query.pk)
    query.refresh_from_db()
    assert query.status == Query.Status.SUCCEEDED
    assert len(sim.calls("/get_containers")) == 1
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    assert len(sim.calls("/get_containers")) == 1


def test_cancel_a_pending_query(alice: Account, sim: SimControl, task_queue: TaskQueue) -> None:
    query, _ = start_query(account=alice, kind="containers")
    assert cancel_query(query=query) is True
    assert query.status == Query.Status.CANCELLED
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    assert sim.calls() == []
    assert cancel_query(query=query) is False


def test_cancel_a_running_query_stops_between_steps(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_CHAIN_SECONDS = 0  # one step per task: stop after the first
    query, _ = start_query(account=alice, kind="availability")
    run_queued_tasks(task_queue, until=lambda: Query.objects.get(pk=query.pk).step == "bulk_info")
    Query.objects.filter(pk=query.pk).update(
        claim_token="someone", claim_expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert cancel_query(query=query) is True
    assert query.status == Query.Status.RUNNING and query.cancel_requested
    Query.objects.filter(pk=query.pk).update(claim_token="", claim_expires_at=None)
    query = run_to_end(query, task_queue)
    assert query.status == Query.Status.CANCELLED
    assert sim.calls("/get_info_bulk") == []


def test_cancel_stops_a_worker_running_steps_back_to_back(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    query, _ = start_query(account=alice, kind="availability")
    # The first appointment check is slow; it is cancelled while that call is in flight.
    sim.fault("/check_appointments", mode="delay", delay=500)

    def cancel_during_first_check() -> None:
        sim.wait_for(lambda: any(c["end"] is None for c in sim.calls("/check_appointments")))
        cancel_query(query=Query.objects.get(pk=query.pk))

    canceller = threading.Thread(target=cancel_during_first_check)
    canceller.start()
    query = run_to_end(query, task_queue)
    canceller.join()
    assert query.status == Query.Status.CANCELLED
    assert len(sim.calls("/check_appointments")) == 1
    assert sim.calls("/get_appointments") == []
    assert query.checks.count() == 1  # the step in flight finished and kept its result


def test_changes_since_the_previous_run_are_what_the_board_observed(
    alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    def merged(query: Query) -> Query:
        """The run, once the board merged it (its own task, queued when the run ended)."""
        query = run_to_end(query, task_queue)
        run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
        return query

    first = merged(start_query(account=alice, kind="containers")[0])
    assert not first.changes.exists()  # the board's first run: nothing to compare with
    before = {c["Container #"]: c for c in served_containers(sim_server, alice)}
    sim.advance(alice.emodal_username)
    second = merged(start_query(account=alice, kind="containers")[0])
    after = {
        c["Container #"]: c
        for c in containers_for(alice.emodal_username, sim_server.config, generation=1)
    }
    changes = {c.container_number: c for c in second.changes.all()}
    assert {n for n, c in changes.items() if c.change == "new"} == after.keys() - before.keys()
    assert {n for n, c in changes.items() if c.change == "gone"} == before.keys() - after.keys()
    compared = ("Status", "Holds", "LFD/GTD", "Pregate Ticket#")
    expected_changed = {
        n
        for n in after.keys() & before.keys()
        if any(after[n][col] != before[n][col] for col in compared)
    }
    # The board also follows what the sheet's places say (the terminal) and the good-through day.
    changed = {n for n, c in changes.items() if c.change == "changed"}
    assert expected_changed <= changed and all(changes[n].fields for n in changed)
    assert all(c.previous_query_id == first.pk for c in changes.values())


def test_account_wide_kind_returns_the_live_query(alice: Account, task_queue: TaskQueue) -> None:
    first, _ = start_query(account=alice, kind="containers")
    assert start_query(account=alice, kind="containers")[0] == first
    assert task_queue.size() == 1


def test_single_container_kinds(
    alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    served = served_containers(sim_server, alice)
    config = sim_server.config
    export = next(
        c
        for c in served
        if c["Trade Type"] == "EXPORT"
        and booking_number_for(c, config)
        and has_pregate_milestone(c["Container #"], config)
    )["Container #"]
    imported = next(c for c in served if c["Trade Type"] == "IMPORT")

    timeline = run_to_end(
        start_query(account=alice, kind="timeline", params={"container_id": export})[0], task_queue
    )
    assert timeline.status == Query.Status.SUCCEEDED
    assert timeline.infos.get().milestones
    booking = run_to_end(
        start_query(account=alice, kind="booking_number", params={"container_id": export})[0],
        task_queue,
    )
    assert booking.infos.get().booking_number
    bulk = run_to_end(
        start_query(
            account=alice,
            kind="bulk_info",
            params={"import_containers": [imported["Container #"], "NOTF0000000"]},
        )[0],
        task_queue,
    )
    outcomes = dict(bulk.infos.values_list("container_number", "success"))
    assert outcomes == {imported["Container #"]: True, "NOTF0000000": False}
    check = run_to_end(
        start_query(
            account=alice,
            kind="appointment_check",
            params={
                "container_type": "import",
                "container_id": imported["Container #"],
                "terminal": "TTI",
                "move_type": "PICK FULL",
            },
        )[0],
        task_queue,
    )
    assert check.status == Query.Status.SUCCEEDED
    assert AppointmentCheck.objects.get(query=check).success


def test_container_not_found_fails_with_a_readable_reason(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    query = run_to_end(
        start_query(account=alice, kind="timeline", params={"container_id": "NOTF0000000"})[0],
        task_queue,
    )
    assert query.status == Query.Status.FAILED
    assert query.error == (
        "Container NOTF0000000: Search failed: Container 'NOTF0000000' not found after scrolling"
    )


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("timeline", {"container_id": "12345"}, "is not a container number"),
        ("timeline", {}, "A container number is required"),
        ("bulk_info", {}, "at least one import or export"),
        (
            "appointment_check",
            {"container_type": "export", "terminal": "LBCT", "move_type": "DROP FULL"},
            "needs the booking number",
        ),
        ("appointment_check", {"container_type": "both"}, "Choose import or export"),
        ("containers", {"container_id": "MSCU1234567"}, "takes no parameter container_id"),
        ("everything", {}, "Unknown query kind"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_error(
    alice: Account, kind: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        start_query(account=alice, kind=kind, params=params)
    assert message in " ".join(caught.value.messages)
    assert not Query.objects.exists()


def test_availability_needs_trucking_details(db: Any) -> None:
    account = make_account("eve", truck_plate="")
    with pytest.raises(ValidationError, match="trucking company and truck plate"):
        start_query(account=account, kind="availability")


def test_result_models_are_unique_per_query() -> None:
    # A retried step deletes its own rows before writing; the constraints back that up.
    for model in (ContainerRow, ContainerInfo, AppointmentCheck, AppointmentRow):
        names = [c.name for c in model._meta.constraints]
        assert any("unique" in name for name in names), model


def test_a_spent_captcha_budget_makes_the_query_wait_without_using_up_its_tries(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    from sessions_app.models import SessionEvent

    settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = 1
    SessionEvent.objects.create(account=alice, kind=SessionEvent.Kind.CREATED, captcha_spent=True)
    query, _ = start_query(account=alice, kind="appointments")
    for _ in range(4):  # more rounds than a step has tries
        run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
        query.refresh_from_db()
        assert query.status == Query.Status.RUNNING
        assert query.step_failures == 0
        assert query.error == ""
        assert "budget" in query.waiting_for
        sweep_queries(now=query.retry_at + timedelta(seconds=1))
    assert sim.calls("/get_session") == []
    settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = 2
    assert run_to_end(query, task_queue).status == Query.Status.SUCCEEDED
