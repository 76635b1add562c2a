"""Events made up by a test, written in the outbox and dispatched at once in this process (what
a producer's `outbox.record` and the worker it wakes do, without the wake-up task)."""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime

from notifications.dispatcher import dispatch
from outbox.models import Event


def as_row(event: dict[str, Any]) -> Event:
    return Event(
        key=event["id"],
        type=event["type"],
        account_id=event["account_id"],
        container_number=event.get("container_number") or "",
        query_id=event.get("query_id"),
        data=event.get("data") or {},
        occurred_at=parse_datetime(event["occurred_at"]),
    )


def recorded(events: list[dict[str, Any]]) -> list[Event]:
    """These events written in the outbox (not dispatched): a channel's `record` reads them."""
    return Event.objects.bulk_create([as_row(event) for event in events])


def announce(events: list[dict[str, Any]]) -> list[Event]:
    """Record these events (those not recorded yet) and dispatch what is waiting."""
    rows = [as_row(event) for event in events]
    known = set(
        Event.objects.filter(key__in=[row.key for row in rows]).values_list("key", flat=True)
    )
    recorded = Event.objects.bulk_create([row for row in rows if row.key not in known])
    dispatch()
    return recorded
