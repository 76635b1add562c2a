"""The recurring queries `run_queries --schedule` used to store as bare django-q2 schedules are
moved onto recurring runs by the migration, keeping their schedule row."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_q.models import Schedule

from queries_app.models import RecurringRun
from sessions_app.models import Account

BEFORE = [("containers_app", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_old_command_schedules_become_recurring_runs(alice: Account) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    daily = Schedule.objects.create(
        name=f"query containers for account {alice.pk}",
        func="queries_app.tasks.start_scheduled_query",
        args=repr((alice.pk, "containers")),
        kwargs=repr({"params_json": "{}"}),
        schedule_type=Schedule.DAILY,
        repeats=-1,
        # 06:15 in Los Angeles (TIME_ZONE).
        next_run=datetime(2030, 1, 7, 14, 15, tzinfo=UTC),
    )
    foreign = Schedule.objects.create(name="query x", func="queries_app.tasks.sweep_queries")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    run = RecurringRun.objects.get()
    assert (run.account, run.kind, run.params) == (alice, "containers", {})
    assert (run.weekdays, run.times, run.time_zone) == (
        list(range(7)),
        ["06:15"],
        "America/Los_Angeles",
    )
    daily.refresh_from_db()
    assert run.schedule_id == daily.pk
    assert (daily.func, daily.args, daily.schedule_type, daily.repeats) == (
        "queries_app.tasks.run_recurring_query",
        f"({run.pk},)",
        Schedule.ONCE,
        1,
    )
    assert daily.next_run == run.next_run_at
    foreign.refresh_from_db()
    assert foreign.func == "queries_app.tasks.sweep_queries"  # not the command's: left alone
