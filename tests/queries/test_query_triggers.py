"""Starting queries: one live query per account, kind and parameters, and the per-person
trigger limit (QUERY_TRIGGER_LIMIT per QUERY_TRIGGER_WINDOW_SECONDS)."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from queries_app.models import Query, RecurringRun, params_key
from queries_app.recurring import fire, save_recurring_run
from queries_app.services import TriggerLimitReached, cancel_query, start_query
from sessions_app.models import Account

from ..taskqueue import TaskQueue
from ..threads import in_threads

pytestmark = pytest.mark.django_db


def start(account: Account, number: str, by: Any = None) -> tuple[Query, bool]:
    return start_query(
        account=account, kind="timeline", params={"container_id": number}, started_by=by
    )


def timeline(account: Account, number: str, by: Any = None) -> Query:
    return start(account, number, by)[0]


def containers(count: int) -> list[str]:
    return [f"MSCU{i:07d}" for i in range(1, count + 1)]


@pytest.fixture
def limit(settings: Any) -> Any:
    def set_limit(count: int, window: int = 600) -> None:
        settings.QUERY_TRIGGER_LIMIT = count
        settings.QUERY_TRIGGER_WINDOW_SECONDS = window

    return set_limit


# -- one live query per account, kind and parameters -----------------------------------------------


def test_a_second_identical_timeline_returns_the_live_one(
    alice: Account, task_queue: TaskQueue, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first, first_new = start(alice, "MSCU1234567")
        # The same container written another way cleans to the same parameters.
        second, second_new = start(alice, "mscu-1234567")
    assert second == first
    assert (first_new, second_new) == (True, False)
    assert Query.objects.count() == 1
    assert task_queue.size() == 1


def test_different_parameters_kinds_or_accounts_start_new_queries(
    alice: Account, bob: Account, task_queue: TaskQueue, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        started = [
            timeline(alice, "MSCU1234567"),
            timeline(alice, "MSCU7654321"),
            timeline(bob, "MSCU1234567"),
            start_query(
                account=alice,
                kind="booking_number",
                params={"container_id": "MSCU1234567"},
            )[0],
            start_query(
                account=alice,
                kind="bulk_info",
                params={"import_containers": ["MSCU1234567"], "export_containers": []},
            )[0],
            start_query(
                account=alice,
                kind="bulk_info",
                params={"import_containers": [], "export_containers": ["MSCU1234567"]},
            )[0],
        ]
    assert len({query.pk for query in started}) == 6
    assert task_queue.size() == 6


def test_an_ended_query_does_not_stand_in_for_a_new_one(
    alice: Account, task_queue: TaskQueue
) -> None:
    first = timeline(alice, "MSCU1234567")
    cancel_query(query=first)
    second, created = start(alice, "MSCU1234567")
    assert second.pk != first.pk
    assert created


def test_account_wide_kinds_still_run_once_at_a_time(alice: Account, task_queue: TaskQueue) -> None:
    first, _ = start_query(account=alice, kind="availability")
    again, created = start_query(account=alice, kind="availability", started_by=alice.user)
    assert again == first
    assert not created


def test_a_bulk_info_list_too_long_for_an_index_row_is_still_merged(
    alice: Account, task_queue: TaskQueue
) -> None:
    # 200 containers: several kilobytes of parameters, beyond PostgreSQL's index row limit
    # had the parameters themselves been indexed.
    params = {"import_containers": containers(200), "export_containers": []}
    first, _ = start_query(account=alice, kind="bulk_info", params=params)
    assert start_query(account=alice, kind="bulk_info", params=params)[0] == first


def test_the_database_refuses_a_second_live_query_with_the_same_parameters(
    alice: Account,
) -> None:
    key = params_key({"container_id": "MSCU1234567"})
    same = {"account": alice, "kind": "timeline", "params_key": key}
    Query.objects.create(**same, status=Query.Status.SUCCEEDED)
    Query.objects.create(**same, status=Query.Status.FAILED)
    Query.objects.create(**same)
    with pytest.raises(IntegrityError), transaction.atomic():
        Query.objects.create(**same, status=Query.Status.RUNNING)
    # Rows without a key (not started by start_query) are outside the constraint.
    Query.objects.create(account=alice, kind="timeline")
    Query.objects.create(account=alice, kind="timeline")


@pytest.mark.django_db(transaction=True)
def test_two_processes_starting_the_same_query_at_once_get_one_query(
    alice: Account, task_queue: TaskQueue
) -> None:
    """The first creates its query and holds its transaction open; the second, started by
    someone else (so no lock is shared), looks, finds nothing committed and inserts. On
    PostgreSQL that insert waits on the unique index until the first commits, then fails,
    and the second returns the first's query. (On SQLite the second waits at the start of
    its transaction, then finds the first's query.)"""
    created, may_commit = threading.Event(), threading.Event()

    def first() -> Query:
        with transaction.atomic():
            query = timeline(alice, "MSCU1234567")
            created.set()
            assert may_commit.wait(30)
        return query

    def second() -> Query:
        assert created.wait(30)
        return start(alice, "MSCU1234567", by=alice.user)

    def referee() -> None:
        assert created.wait(30)
        try:
            if connection.vendor == "postgresql":
                wait_until_a_connection_waits_for_a_lock()
        finally:
            may_commit.set()

    results = in_threads(3, lambda i: (first, second, referee)[i]())
    assert not any(isinstance(r, BaseException) for r in results), results
    started, (returned, created), _ = results
    assert returned.pk == started.pk
    assert not created
    assert Query.objects.count() == 1


def wait_until_a_connection_waits_for_a_lock(seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
    raise AssertionError("the second insert never waited for the first")


# -- the trigger limit ---------------------------------------------------------------------------


def test_a_person_may_start_only_the_limit_of_queries_per_window(
    alice: Account, limit: Any, task_queue: TaskQueue, django_capture_on_commit_callbacks: Any
) -> None:
    limit(3, window=600)
    with django_capture_on_commit_callbacks(execute=True):
        started = [timeline(alice, number, by=alice.user) for number in containers(3)]
        with pytest.raises(TriggerLimitReached) as refused:
            timeline(alice, "MSCU7777777", by=alice.user)
    assert Query.objects.count() == 3
    assert task_queue.size() == 3
    # The oldest of the three leaves the window first.
    oldest = Query.objects.get(pk=started[0].pk).created_at
    assert refused.value.retry_at == oldest + timedelta(seconds=600)
    assert 0 < refused.value.retry_after_seconds() <= 600
    text = refused.value.readable()
    assert "You have started 3 queries in the last 10\xa0minutes, the most allowed." in text
    assert timezone.localtime(refused.value.retry_at).strftime("%H:%M:%S") in text


def test_a_trigger_that_returns_a_running_query_neither_counts_nor_is_refused(
    alice: Account, limit: Any, task_queue: TaskQueue
) -> None:
    limit(2)
    first = timeline(alice, "MSCU0000001", by=alice.user)
    assert timeline(alice, "MSCU0000001", by=alice.user) == first  # not counted
    timeline(alice, "MSCU0000002", by=alice.user)
    # At the limit, the running one is still shown; a new one is refused.
    assert start(alice, "MSCU0000001", by=alice.user)[1] is False
    with pytest.raises(TriggerLimitReached):
        timeline(alice, "MSCU0000003", by=alice.user)


def test_queries_that_leave_the_window_make_room_again(
    alice: Account, limit: Any, task_queue: TaskQueue
) -> None:
    limit(2, window=600)
    first, _ = (timeline(alice, number, by=alice.user) for number in containers(2))
    with pytest.raises(TriggerLimitReached):
        timeline(alice, "MSCU0000003", by=alice.user)
    Query.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(seconds=601))
    assert start(alice, "MSCU0000003", by=alice.user)[1] is True
    with pytest.raises(TriggerLimitReached):
        timeline(alice, "MSCU0000004", by=alice.user)


def test_ended_queries_count_too(alice: Account, limit: Any, task_queue: TaskQueue) -> None:
    limit(1)
    cancel_query(query=timeline(alice, "MSCU0000001", by=alice.user))
    with pytest.raises(TriggerLimitReached):
        timeline(alice, "MSCU0000002", by=alice.user)


def test_the_limit_is_per_person_across_accounts(
    alice: Account, bob: Account, staff: Any, limit: Any, task_queue: TaskQueue
) -> None:
    limit(2)
    timeline(alice, "MSCU0000001", by=staff)
    timeline(bob, "MSCU0000001", by=staff)
    with pytest.raises(TriggerLimitReached):
        start_query(account=bob, kind="containers", started_by=staff)
    # Alice's own limit is untouched by what staff started for her account.
    timeline(alice, "MSCU0000002", by=alice.user)
    timeline(alice, "MSCU0000003", by=alice.user)


def test_commands_and_schedules_are_not_limited(
    alice: Account, limit: Any, task_queue: TaskQueue
) -> None:
    limit(1)
    timeline(alice, "MSCU0000001", by=alice.user)
    out = io.StringIO()
    call_command("run_queries", "--kind", "containers", "--user", "alice", stdout=out)
    assert "query #" in out.getvalue()
    run = save_recurring_run(
        account=alice,
        kind="timeline",
        params={"container_id": "MSCU0000002"},
        weekdays=list(range(7)),
        times="06:00",
        time_zone="UTC",
    )
    RecurringRun.objects.filter(pk=run.pk).update(next_run_at=timezone.now())
    assert fire(run.pk).startswith("query ")
    assert Query.objects.count() == 3


def test_a_limit_of_zero_turns_it_off(alice: Account, limit: Any, task_queue: TaskQueue) -> None:
    limit(0)
    for number in containers(40):
        timeline(alice, number, by=alice.user)
    assert Query.objects.count() == 40


@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_of_one_person_never_pass_the_limit(
    alice: Account, limit: Any, task_queue: TaskQueue
) -> None:
    limit(3)
    numbers = containers(6)
    results = in_threads(6, lambda i: timeline(alice, numbers[i], by=alice.user))
    refused = [r for r in results if isinstance(r, TriggerLimitReached)]
    started = [r for r in results if isinstance(r, Query)]
    assert (len(started), len(refused)) == (3, 3), results
    assert Query.objects.count() == 3


# -- the migration ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_keys_live_queries_and_leaves_older_duplicates_unkeyed(
    alice: Account,
) -> None:
    before, after = (
        [("queries_app", "0002_sweep_schedule")],
        [("queries_app", "0003_one_live_query_and_trigger_limit")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("queries_app", "Query")
    params = {"container_id": "MSCU1234567"}
    older = old.objects.create(account_id=alice.pk, kind="timeline", params=params)
    newer = old.objects.create(account_id=alice.pk, kind="timeline", params=params)
    ended = old.objects.create(
        account_id=alice.pk, kind="timeline", params=params, status="succeeded"
    )
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    migrated = executor.loader.project_state(after).apps.get_model("queries_app", "Query")
    keys = dict(migrated.objects.values_list("pk", "params_key"))
    assert keys == {older.pk: params_key(params), newer.pk: None, ended.pk: None}
    # Back to the latest schema (every app's: going back unapplied those that depend on
    # queries_app): the keyed live query is found by the next identical trigger.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert timeline(alice, "MSCU1234567").pk == older.pk
