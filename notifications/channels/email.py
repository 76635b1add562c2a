"""E-mail alerts: one digest per run (or per account, for the hourly due dates) and person,
holding the events each person's preferences ask for and that they were not told of yet
(`containers_app.alerts`: who hears what, the message, sending with retries by the delivery
cluster).

The stop of an account's logins is told once, in the right message: with the failure of the
run it stopped (the engine records both as the run ends); on its own when no run is live or
failed since (a refresh staff forced, a warm-up), or when the run it was left to is cancelled.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from containers_app import alerts
from outbox.models import Event
from outbox.vocabulary import EventType
from queries_app.events import logins_stopped_event
from queries_app.models import Query
from sessions_app.models import Account
from sessions_app.secret_names import account_secrets


def current_stop(account: Account, at: datetime) -> list[Event]:
    """The account's stop, recorded, if its logins are still stopped."""
    if not account.logins_blocked:
        return []
    key = logins_stopped_event(account, query_id=None, at=at).key
    return list(
        Event.objects.filter(key=key).select_related("account").defer(*account_secrets("account"))
    )


def left_to_a_run(account_id: int, stopped_at: datetime) -> bool:
    """A run of the account is live, or failed since the stop: its message tells of it."""
    return (
        Query.objects.filter(account_id=account_id)
        .filter(
            Q(status__in=Query.LIVE_STATUSES)
            | Q(status=Query.Status.FAILED, finished_at__gte=stopped_at)
        )
        .exists()
    )


def told_in(events: list[Event], query: Query | None) -> list[Event]:
    """The events of one run (or none) of one account that its message tells of."""
    chosen: list[Event] = []
    for event in events:
        if event.type == EventType.QUERY_FINISHED:
            # Webhooks only; a cancelled run tells the stop that was left to it.
            if query is not None and query.status == Query.Status.CANCELLED:
                chosen += current_stop(event.account, event.occurred_at)
        elif event.type == EventType.QUERY_FAILED:
            chosen += [event, *current_stop(event.account, event.occurred_at)]
        elif (
            event.type == EventType.CREDENTIALS_REJECTED
            and event.query_id is None
            and left_to_a_run(event.account_id, event.occurred_at)
        ):
            continue
        else:
            chosen.append(event)
    unique = {event.pk: event for event in chosen}
    return list(unique.values())


class EmailChannel:
    name = "email"

    def record(self, events: list[Event]) -> int:
        groups: dict[tuple[int, int | None], list[Event]] = defaultdict(list)
        for event in events:
            groups[event.account_id, event.query_id].append(event)
        queries = Query.objects.defer(*account_secrets("account"), "state").in_bulk(
            {query_id for _, query_id in groups if query_id}
        )
        accounts = Account.objects.defer(*Account.SECRET_FIELDS).in_bulk(
            {account_id for account_id, _ in groups}
        )
        planned = []
        for (account_id, query_id), group in groups.items():
            for event in group:
                event.account = accounts[account_id]
            query = queries.get(query_id) if query_id else None
            told = told_in(group, query)
            if query is not None and query.status == Query.Status.CANCELLED:
                query = None  # the stop left to it, told on its own
            planned += alerts.plan_alerts(told, query=query)
        alert_ids = [alert.pk for alert in planned]
        if alert_ids:
            transaction.on_commit(lambda: alerts.enqueue_sends(alert_ids))
        return len(alert_ids)


CHANNEL = EmailChannel()
