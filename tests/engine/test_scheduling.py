"""Which step a worker runs next (`queries_app.services.run_queries`), against the simulator."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from emodal_sim.data import containers_for
from queries_app.engine import run_queries
from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue

pytestmark = pytest.mark.django_db(transaction=True)


def container_of(account: Account, sim_server: Any, index: int = 0) -> str:
    return containers_for(account.emodal_username, sim_server.config)[index]["Container #"]


def order_of_accounts(sim: SimControl, endpoint: str) -> list[str]:
    return [c["username"] for c in sorted(sim.calls(endpoint), key=lambda c: c["start"])]


def test_one_task_runs_a_whole_query_without_handing_its_steps_to_the_broker(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    query, _ = start_query(account=alice, kind="availability")
    task_queue.drain()  # the task start_query enqueued: run it here
    summary = run_queries(first=query.pk)
    query.refresh_from_db()
    assert query.status == Query.Status.SUCCEEDED, query.error
    steps = 2 + query.progress_total + 1  # containers, bulk info, checks, appointments
    assert summary == f"{steps} steps: #{query.pk} x{steps}"
    assert query.attempts == steps  # every step counted on the row
    # No step went through the broker (the end of the query set the board's update going, and
    # the dispatch of its event).
    assert sorted(task_queue.funcs()) == [
        "containers_app.tasks.update_board",
        "notifications.tasks.dispatch_events",
    ]


def test_queries_a_person_started_run_before_batches(
    sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    batch_account, person_account = make_account("batchy"), make_account("person")
    start_query(account=batch_account, kind="containers", batch="nightly")
    params = {"container_id": container_of(person_account, sim_server)}
    start_query(
        account=person_account,
        kind="timeline",
        params=params,
        started_by=person_account.user,
    )
    run_queries()
    assert order_of_accounts(sim, "/get_session") == ["person-emodal", "batchy-emodal"]


@pytest.mark.parametrize(
    ("who", "first"),
    [("batch", "/get_containers"), ("person", "/get_container_timeline")],
)
def test_in_a_batch_the_longest_run_goes_first_and_for_a_person_the_shortest(
    who: str, first: str, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    short, long = make_account("short"), make_account("long")
    params = {"container_id": container_of(short, sim_server)}
    plans = [(short, "timeline", params), (long, "containers", {})]
    if who == "person":
        plans.reverse()  # the one to go second is always started first
    for account, kind, kind_params in plans:
        origin = {"batch": "nightly"} if who == "batch" else {"started_by": account.user}
        start_query(account=account, kind=kind, params=kind_params, **origin)
    run_queries()
    work = [
        c["endpoint"]
        for c in sorted(sim.calls(), key=lambda c: c["start"])
        if c["endpoint"] in ("/get_containers", "/get_container_timeline")
    ]
    assert work[0] == first and len(work) == 2


def test_a_persons_query_arriving_mid_run_is_taken_between_two_steps(
    sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    runner, person = make_account("runner"), make_account("person")
    batch, _ = start_query(account=runner, kind="availability", batch="nightly")
    # The batch's first appointment check is slow; a person's query arrives during it.
    sim.fault("/check_appointments", mode="delay", delay=300)
    params = {"container_id": container_of(person, sim_server)}

    def start_during_the_first_check() -> None:
        sim.wait_for(lambda: any(c["end"] is None for c in sim.calls("/check_appointments")))
        start_query(account=person, kind="timeline", params=params, started_by=person.user)

    arrival = threading.Thread(target=start_during_the_first_check)
    arrival.start()
    run_queries()
    arrival.join()
    batch.refresh_from_db()
    assert batch.status == Query.Status.SUCCEEDED
    timeline = sim.calls("/get_container_timeline")[0]
    checks = sorted(c["start"] for c in sim.calls("/check_appointments"))
    # Right after the slow check, before the batch's second one.
    assert checks[0] < timeline["start"] < checks[1]


def test_a_worker_does_not_take_a_query_of_an_account_another_worker_is_running(
    alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    first, second = (
        start_query(
            account=alice,
            kind="timeline",
            params={"container_id": container_of(alice, sim_server, index)},
        )[0]
        for index in (0, 1)
    )
    Query.objects.filter(pk=first.pk).update(claim_token="other-worker")
    Query.objects.filter(pk=first.pk).update(
        claim_expires_at=Query.objects.get(pk=first.pk).created_at.replace(year=2100)
    )
    assert run_queries(first=second.pk) == "0 steps"
    assert sim.calls() == []
    Query.objects.filter(pk=first.pk).update(claim_token="", claim_expires_at=None)
    # Its own query first, then the other.
    assert run_queries(first=second.pk) == f"2 steps: #{second.pk} x1, #{first.pk} x1"
    # Both ran (a timeline without a Pregate milestone is a passing failure: it waits for its
    # retry, not for a worker).
    assert not Query.objects.live().filter(retry_at__isnull=True).exists()


def test_a_worker_waits_for_a_retry_due_soon_instead_of_leaving_it_to_the_sweep(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0.2
    sim.fault("/get_containers", count=1, status=500, error="Automation failed")
    query, _ = start_query(account=alice, kind="containers")
    # The containers step fails, waits out its back-off on this worker, then runs again.
    assert run_queries() == f"2 steps: #{query.pk} x2"
    query.refresh_from_db()
    assert query.status == Query.Status.SUCCEEDED
    assert len(sim.calls("/get_containers")) == 2


def test_a_retry_due_later_is_left_to_the_sweep(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 60
    sim.fault("/get_containers", count=1, status=500, error="Automation failed")
    query, _ = start_query(account=alice, kind="containers")
    assert run_queries() == f"1 step: #{query.pk} x1"
    query.refresh_from_db()
    assert query.is_live and query.retry_at is not None
