"""django-q2 entry points of the containers board. They take ids, never anything secret."""

from __future__ import annotations

from datetime import datetime

from . import alerts, board, recurring


def update_board(query_id: int) -> str:
    """A query ended: bring its account's board up to date, record and announce its events,
    plan and send their alerts."""
    done = board.update_board(query_id)
    return f"{done.changed} changed, {done.created} new, {len(done.events)} events, " + (
        f"{len(done.alerts)} alerts"
    )


def record_logins_stopped(account_id: int, stopped_at: datetime) -> str:
    """An account's logins stopped (its credentials rejected, or too many failed logins)."""
    done = board.record_logins_stopped(account_id, stopped_at)
    return f"{len(done.events)} events, {len(done.alerts)} alerts"


def send_alert(alert_id: int) -> str:
    return alerts.send_alert(alert_id)


def send_due_alerts() -> str:
    """Every minute (a schedule made by migration): sends whose retry is due."""
    swept = alerts.send_due_alerts()
    return f"{swept['enqueued']} alerts to send, {swept['stuck']} stuck"


def record_due_dates() -> str:
    """Hourly (a schedule made by migration): the day's last-free-day-due events and alerts of
    containers no run has looked at today."""
    done = board.record_due_dates()
    return f"{len(done.events)} due-date events, {len(done.alerts)} alerts"


def run_recurring_query(run_id: int) -> str:
    """A recurring run's schedule fired."""
    return recurring.fire(run_id)
