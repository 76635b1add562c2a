"""Writing events: called by each producer inside its own transaction (the engine when a
query ends, the board when it merges a run, the stop of an account's logins), so that an event
exists exactly when what it tells of was committed. After that commit the delivery cluster is
woken to dispatch it; if that wake-up is lost (a crash, a broker down), the sweep dispatches it
within a minute. Nothing else relays it."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

from .models import Event

# Keys looked up per statement (SQLite allows 999 parameters in older builds).
KEY_CHUNK = 500

DISPATCH_TASK = "notifications.tasks.dispatch_events"


def record(candidates: Iterable[Event]) -> list[Event]:
    """Insert the events whose key is not recorded yet; returns those inserted (in order).
    The caller serialises writers of the same keys (the board holds the account's lock; a
    query ends once) — the unique key refuses a second row in any case."""
    candidates = list(candidates)
    keys = [event.key for event in candidates]
    existing: set[str] = set()
    for start in range(0, len(keys), KEY_CHUNK):
        chunk = keys[start : start + KEY_CHUNK]
        existing.update(Event.objects.filter(key__in=chunk).values_list("key", flat=True))
    seen: set[str] = set()
    new = []
    for event in candidates:
        if event.key not in existing and event.key not in seen:
            seen.add(event.key)
            new.append(event)
    if not new:
        return []
    with transaction.atomic():
        created = Event.objects.bulk_create(new, batch_size=1000)
        transaction.on_commit(wake_dispatcher)
    return created


def wake_dispatcher() -> None:
    """Ask a worker of the delivery cluster to dispatch what is waiting (named by its path:
    the outbox does not know who dispatches)."""
    async_task(DISPATCH_TASK, task_name="dispatch-events", cluster=settings.DELIVERY_CLUSTER)
