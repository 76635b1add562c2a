"""Recurring runs people set: the next run at the right local time (a fixed clock, across a
change to summer time), their django-q2 schedule firing it then and not before, and re-armed
for the time after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils.module_loading import import_string
from django_q.models import Schedule
from django_q.scheduler import scheduler

from queries_app.models import Query
from queries_app.recurring import fire, next_run_time, save_recurring_run, set_paused
from sessions_app.models import Account

from ..taskqueue import TaskQueue
from .clock import clock

pytestmark = pytest.mark.django_db

TASK = "queries_app.tasks.run_recurring_query"
# Friday 8 March 2030, noon in New York (EST); the clocks go forward on Sunday the 10th.
FRIDAY_NOON = datetime(2030, 3, 8, 17, 0, tzinfo=UTC)
MONDAY_0730_EDT = datetime(2030, 3, 11, 11, 30, tzinfo=UTC)
WEDNESDAY_0730_EDT = datetime(2030, 3, 13, 11, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _only_these_schedules(db: Any) -> None:
    """The portal's own recurring tasks (the sweeps) are not what these tests are about, and
    django-q2 would step them minute by minute to the fixed clock's year."""
    Schedule.objects.all().delete()


def scheduled(queue: TaskQueue) -> list[dict[str, Any]]:
    return [task for task in queue.drain() if task["func"] == TASK]


# django-q2's scheduler closes the database connection first, as a cluster process does:
# these tests run outside a wrapping transaction.
@pytest.mark.django_db(transaction=True)
def test_a_persons_schedule_fires_at_the_right_local_time(
    alice: Account, task_queue: TaskQueue
) -> None:
    run = save_recurring_run(
        account=alice,
        kind="containers",
        params={},
        weekdays=[0, 2],
        times="7:30",
        time_zone="America/New_York",
        created_by=alice.user,
        now=FRIDAY_NOON,
    )
    assert run.next_run_at == MONDAY_0730_EDT
    schedule = run.schedule
    assert (schedule.func, schedule.args, schedule.schedule_type, schedule.repeats) == (
        TASK,
        f"({run.pk},)",
        Schedule.ONCE,
        1,
    )
    assert schedule.next_run == MONDAY_0730_EDT

    # A minute before: django-q2's scheduler starts nothing.
    with clock(MONDAY_0730_EDT - timedelta(minutes=1)):
        scheduler(task_queue.broker)
    assert scheduled(task_queue) == []

    # At 07:30 New York time: one task, with the run's id and nothing else.
    with clock(MONDAY_0730_EDT + timedelta(seconds=5)):
        scheduler(task_queue.broker)
        [task] = scheduled(task_queue)
        assert task["args"] == (run.pk,)
        assert set(task["kwargs"]) <= {"q_options"}
        schedule.refresh_from_db()
        assert schedule.repeats == 0  # fired: nothing more until the task arms it
        assert import_string(task["func"])(*task["args"]).startswith("query ")

    query = Query.objects.get()
    assert (query.account, query.kind, query.batch, query.started_by) == (
        alice,
        "containers",
        f"recurring-{run.pk}",
        None,
    )
    run.refresh_from_db()
    schedule.refresh_from_db()
    assert run.last_query == query
    assert run.next_run_at == schedule.next_run == WEDNESDAY_0730_EDT
    assert schedule.repeats == 1

    # Once fired, not again before Wednesday.
    with clock(MONDAY_0730_EDT + timedelta(minutes=2)):
        scheduler(task_queue.broker)
    assert scheduled(task_queue) == []


@pytest.mark.django_db(transaction=True)
def test_a_paused_schedule_does_not_fire_and_resumes_at_its_next_time(
    alice: Account, task_queue: TaskQueue
) -> None:
    run = save_recurring_run(
        account=alice,
        kind="containers",
        params={},
        weekdays=[0, 2],
        times=["07:30"],
        time_zone="America/New_York",
        now=FRIDAY_NOON,
    )
    set_paused(run=run, paused=True, now=FRIDAY_NOON)
    with clock(MONDAY_0730_EDT + timedelta(seconds=5)):
        scheduler(task_queue.broker)
    assert scheduled(task_queue) == []
    set_paused(run=run, paused=False, now=MONDAY_0730_EDT + timedelta(hours=1))
    assert run.next_run_at == WEDNESDAY_0730_EDT


def test_a_run_that_can_no_longer_start_says_why_and_stays_armed(alice: Account) -> None:
    run = save_recurring_run(
        account=alice,
        kind="availability",
        params={},
        weekdays=list(range(7)),
        times="06:00",
        time_zone="UTC",
        now=FRIDAY_NOON,
    )
    Account.objects.filter(pk=alice.pk).update(truck_plate="")
    due = run.next_run_at
    assert fire(run.pk, now=due + timedelta(seconds=3)).startswith("not started")
    run.refresh_from_db()
    assert "truck plate" in run.last_error
    assert run.next_run_at == due + timedelta(days=1)
    assert not Query.objects.exists()


@pytest.mark.parametrize(
    ("weekdays", "times", "zone", "after", "expected"),
    [
        # Later the same day, local.
        ([4], ["06:00", "18:00"], "America/Los_Angeles", FRIDAY_NOON, "2030-03-09T02:00"),
        # The local time the clock skips (02:30 on 10 March in New York) comes at the first
        # minute after the jump: 03:00 EDT.
        ([6], ["02:30"], "America/New_York", FRIDAY_NOON, "2030-03-10T07:00"),
        # After the last time of the only day: a week later.
        ([4], ["06:00"], "UTC", FRIDAY_NOON, "2030-03-15T06:00"),
        # Autumn: 01:30 happens twice in New York on 3 November 2030; the first one counts.
        ([6], ["01:30"], "America/New_York", datetime(2030, 11, 2, tzinfo=UTC), "2030-11-03T05:30"),
    ],
    ids=["same-day", "spring-gap", "next-week", "autumn-fold"],
)
def test_the_next_run_time(
    weekdays: list[int], times: list[str], zone: str, after: datetime, expected: str
) -> None:
    moment = next_run_time(weekdays=weekdays, times=times, time_zone=zone, after=after)
    assert moment == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_a_task_queued_under_the_boards_old_name_still_runs_the_recurring_run(
    alice: Account, task_queue: TaskQueue
) -> None:
    run = save_recurring_run(
        account=alice, kind="containers", params={}, weekdays=[0], times="06:00", time_zone="UTC"
    )
    Schedule.objects.filter(pk=run.schedule_id).update(repeats=0)  # fired: no repeat left
    run.next_run_at = datetime.now(UTC)
    run.save(update_fields=["next_run_at"])
    result = import_string("containers_app.tasks.run_recurring_query")(run.pk)
    assert result.startswith("query ")
    run.refresh_from_db()
    assert run.next_run_at > datetime.now(UTC)
    assert Schedule.objects.get(pk=run.schedule_id).repeats == 1  # armed again
