"""django-q2 entry points of the containers board. They take ids, never anything secret."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from queries_app import tasks as queries_tasks
from queries_app.events import record_logins_stopped as record_stop

from . import board


def update_board(query_id: int) -> str:
    """A run succeeded: bring its account's board up to date and record its events."""
    done = board.update_board(query_id)
    return f"{done.changed} changed, {done.created} new, {len(done.events)} events"


def record_logins_stopped(account_id: int, stopped_at: datetime) -> str:
    """(Tasks enqueued before the stop was recorded where it happens: record it now.)"""
    with transaction.atomic():
        events = record_stop(account_id, at=stopped_at)
    return f"{len(events)} events"


def send_alert(alert_id: int) -> str:
    """(A send queued before alerts became notifications' deliveries: the sweep sends it, as
    `notifications.tasks.send_delivery`.)"""
    return "left to the deliveries' sweep"


def record_due_dates() -> str:
    """Hourly (a schedule made by migration): the day's last-free-day-due events and alerts of
    containers no run has looked at today."""
    done = board.record_due_dates()
    return f"{len(done.events)} due-date events"


def run_recurring_query(run_id: int) -> str:
    """A recurring run's schedule that fired before recurring runs moved to the queries app
    (its task still queued under this name): run it there, so that the run is armed again.
    Schedules no longer name it (not in SCHEDULED_TASK_FUNCS)."""
    return queries_tasks.run_recurring_query(run_id)
