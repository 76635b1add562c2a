"""The legacy scheduled query retired by migration: whatever schedules still name
`start_scheduled_query` become recurring runs (none dropped), recurring runs' schedules call the
queries app's task, permissions given on recurring runs stay given, and the system checks
pass after it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_q.models import Schedule

from queries_app.checks import check_stored_schedules
from queries_app.models import RecurringRun
from sessions_app.models import Account

LEGACY = "queries_app.tasks.start_scheduled_query"
TASK = "queries_app.tasks.run_recurring_query"
BEFORE = [("queries_app", "0011_recurring_run")]


def migrate(targets: list[tuple[str, str]] | None = None) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()


@pytest.mark.django_db(transaction=True)
def test_legacy_schedules_become_recurring_runs(alice: Account, django_user_model: Any) -> None:
    migrate(BEFORE)
    board_run_schedule = Schedule.objects.create(
        name="recurring run of the board",
        func="containers_app.tasks.run_recurring_query",
        args="(1,)",
        schedule_type=Schedule.ONCE,
        repeats=1,
    )
    weekly = Schedule.objects.create(
        name="alice every Monday",  # made in the admin: not the command's name
        func=LEGACY,
        args=f"{alice.pk}, 'containers'",
        kwargs="params_json='{}'",
        schedule_type=Schedule.WEEKLY,
        repeats=-1,
        # Monday 2030-01-07, 06:15 in Los Angeles (TIME_ZONE).
        next_run=datetime(2030, 1, 7, 14, 15, tzinfo=UTC),
    )
    hourly_ish = Schedule.objects.create(
        name="alice every 90 minutes",
        func=LEGACY,
        kwargs=repr({"account_id": alice.pk, "kind": "timeline", "params_json": '{"a": 1}'}),
        schedule_type=Schedule.MINUTES,
        minutes=90,
        repeats=-1,
        next_run=datetime(2030, 1, 8, 15, 0, tzinfo=UTC),
    )
    orphan = Schedule.objects.create(
        name="nobody's", func=LEGACY, args="(999999, 'containers')", repeats=-1
    )
    unreadable = Schedule.objects.create(
        name="typo", func=LEGACY, args=f"{alice.pk}, 'containers'", kwargs="colour='red'"
    )
    viewer = django_user_model.objects.create_user("vera", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="containers_app", codename="view_recurringrun"
        )
    )

    migrate()

    runs = {run.schedule_id: run for run in RecurringRun.objects.all()}
    assert set(runs) == {weekly.pk, hourly_ish.pk}
    kept = runs[weekly.pk]
    assert (kept.account, kept.kind, kept.params) == (alice, "containers", {})
    assert (kept.weekdays, kept.times, kept.time_zone, kept.paused, kept.last_error) == (
        [0],
        ["06:15"],
        "America/Los_Angeles",
        False,
        "",
    )
    weekly.refresh_from_db()
    assert (weekly.func, weekly.args, weekly.kwargs, weekly.schedule_type, weekly.repeats) == (
        TASK,
        f"({kept.pk},)",
        None,
        Schedule.ONCE,
        1,
    )
    assert weekly.next_run == kept.next_run_at
    # A kind of schedule a recurring run has no words for: kept, paused, saying why.
    paused = runs[hourly_ish.pk]
    assert (paused.kind, paused.params, paused.weekdays, paused.times) == (
        "timeline",
        {"a": 1},
        [1],
        ["07:00"],
    )
    assert paused.paused and paused.next_run_at is None
    assert "check its days and times" in paused.last_error
    hourly_ish.refresh_from_db()
    assert (hourly_ish.func, hourly_ish.repeats, hourly_ish.minutes) == (TASK, 0, None)
    # Naming no account left, or arguments the task never took: it never started anything.
    assert not Schedule.objects.filter(pk__in=[orphan.pk, unreadable.pk]).exists()
    board_run_schedule.refresh_from_db()
    assert board_run_schedule.func == TASK
    assert not Schedule.objects.filter(func__startswith="containers_app.tasks.run_recurring")
    viewer = django_user_model.objects.get(pk=viewer.pk)
    assert viewer.has_perm("queries_app.view_recurringrun")
    assert check_stored_schedules() == []  # nothing names a task that is gone
