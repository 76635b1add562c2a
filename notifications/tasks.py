"""django-q2 entry points of notifications (the delivery cluster). No arguments, no secrets."""

from __future__ import annotations

from api_app.tasks import sweep_webhooks
from containers_app.alerts import send_due_alerts

from .dispatcher import dispatch


def dispatch_events() -> str:
    """Woken after a commit that recorded events: dispatch what is waiting."""
    return f"{dispatch()} events dispatched"


def sweep() -> str:
    """Every minute (a schedule made by migration): events whose dispatch was lost, webhook
    deliveries and e-mail alerts whose (re)try is due."""
    dispatched = dispatch()
    webhooks = sweep_webhooks()
    mails = send_due_alerts()
    return (
        f"{dispatched} events dispatched, {webhooks['enqueued']} webhooks and "
        f"{mails['enqueued']} alerts to send, {mails['stuck']} alerts stuck, "
        f"{webhooks['deliveries_deleted']} old deliveries deleted"
    )
