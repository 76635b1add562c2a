"""django-q2 entry points of notifications (the delivery cluster). They take ids, never a
secret."""

from __future__ import annotations

from .dispatcher import dispatch
from .sending import send, sweep_deliveries


def dispatch_events() -> str:
    """Woken after a commit that recorded events: dispatch what is waiting."""
    return f"{dispatch()} events dispatched"


def send_delivery(delivery_id: int) -> str:
    """One attempt of one delivery, whatever its channel."""
    return send(delivery_id)


def sweep() -> str:
    """Every minute (a schedule made by migration): events whose dispatch was lost, deliveries
    whose (re)try is due or whose task was lost."""
    dispatched = dispatch()
    swept = sweep_deliveries()
    return (
        f"{dispatched} events dispatched, {swept['enqueued']} deliveries to send, "
        f"{swept['stuck']} e-mails stuck, {swept['deliveries_deleted']} old deliveries deleted"
    )
