"""The event types (the outbox's vocabulary, `outbox.vocabulary`), where the query engine's
callers have always found them, and the events the engine produces: a query's end, one
event per query (`query.failed`, or `query.finished` for one that succeeded or was
cancelled), recorded in the transaction that ends it."""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone

from outbox.models import Event
from outbox.record import record
from outbox.vocabulary import EventType

from .models import Query


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def end_event(query: Query) -> Event | None:
    """The event of an ended query, its id derived from the query's: one per query."""
    if query.status == Query.Status.FAILED:
        kind = EventType.QUERY_FAILED
    elif query.status in (Query.Status.SUCCEEDED, Query.Status.CANCELLED):
        kind = EventType.QUERY_FINISHED
    else:
        return None
    return Event(
        key=f"{kind}:{query.pk}",
        type=kind,
        account_id=query.account_id,
        query_id=query.pk,
        data={
            "kind": query.kind,
            "status": query.status,
            "error": query.error,
            "progress_done": query.progress_done,
            "progress_total": query.progress_total,
            "created_at": iso(query.created_at),
            "started_at": iso(query.started_at),
            "finished_at": iso(query.finished_at),
        },
        occurred_at=query.finished_at or timezone.now(),
    )


def record_end(query_id: int) -> list[Event]:
    """Record the end of a query as its event; called in the transaction that ended it (again
    for the same query records nothing)."""
    query = Query.objects.only(
        "pk",
        "account_id",
        "kind",
        "status",
        "error",
        "progress_done",
        "progress_total",
        "created_at",
        "started_at",
        "finished_at",
    ).get(pk=query_id)
    event = end_event(query)
    return record([event]) if event is not None else []


__all__ = ["EventType", "end_event", "record_end"]
