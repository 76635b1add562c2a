"""The event types (the outbox's vocabulary, `outbox.vocabulary`), where the query engine's
callers have always found them, and the events of queries and accounts:

- a query's end, one event per query (`query.failed`, or `query.finished` for one that
  succeeded or was cancelled), recorded by the engine in the transaction that ends it — with
  the account's stop (`account.credentials_rejected`) when that is why it failed;
- the stop of an account's logins, recorded by the one receiver of the session layer's
  `logins_stopped` (the session layer does not know queries), in the transaction that stops
  them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from outbox.models import Event
from outbox.record import record
from outbox.vocabulary import EventType
from sessions_app.models import Account

from .models import Query

logger = logging.getLogger(__name__)


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


def logins_stopped_event(account: Account, *, query_id: int | None, at: datetime) -> Event:
    """`account.credentials_rejected`: once per stop of the account's logins and credentials
    (a new password or key, then rejected again, is news again)."""
    version = int(account.credentials_changed_at.timestamp() * 1_000_000)
    state = account.credential_state
    suffix = "" if state == Account.CredentialState.REJECTED else f":{state}"
    return Event(
        key=f"{EventType.CREDENTIALS_REJECTED}:{account.pk}:{version}{suffix}",
        type=EventType.CREDENTIALS_REJECTED,
        account_id=account.pk,
        query_id=query_id,
        data={"state": str(state), "reason": account.credential_error[:255]},
        occurred_at=at,
    )


def record_end(query_id: int) -> list[Event]:
    """Record the end of a query as its event, and the account's stop if its logins are
    stopped and it failed (not recorded yet when the login that found it was another's);
    called in the transaction that ended it. Again for the same query records nothing."""
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
    if event is None:
        return []
    events = [event]
    if query.status == Query.Status.FAILED:
        account = Account.objects.defer(*Account.SECRET_FIELDS).get(pk=query.account_id)
        if account.logins_blocked:
            events.append(logins_stopped_event(account, query_id=query.pk, at=event.occurred_at))
    return record(events)


def record_logins_stopped(account_id: int, *, at: datetime | None = None) -> list[Event]:
    """Record the stop of the account's logins (once per stop), if its row still says so."""
    account = Account.objects.defer(*Account.SECRET_FIELDS).get(pk=account_id)
    if not account.logins_blocked:
        return []
    return record([logins_stopped_event(account, query_id=None, at=at or timezone.now())])


def on_logins_stopped(account_id: int, **kwargs: Any) -> None:
    """The session layer stopped an account's logins (sent inside the transaction that says
    so): its event is recorded in that transaction, in a savepoint of its own — a failure here
    is logged and never fails the login."""
    try:
        with transaction.atomic():
            record_logins_stopped(account_id)
    except Exception:
        logger.exception("Account %s: the stop of its logins could not be recorded", account_id)


__all__ = [
    "EventType",
    "end_event",
    "logins_stopped_event",
    "on_logins_stopped",
    "record_end",
    "record_logins_stopped",
]
