"""E-mail alerts: one digest per run (or per account, for the hourly due dates and a booking's
verdicts) and person, holding the events each person's preferences ask for, that they may hear
of (`notifications.audience`) and that they were not told of yet; its message is
`email_message`'s, sent over Django's mail API (`send`), retried on a passing failure
(`notifications.retry`).

The stop of an account's logins is told once, in the right message: with the failure of the
run it stopped (the engine records both as the run ends); on its own when no run is live or
failed since (a refresh staff forced, a warm-up), or when the run it was left to is cancelled.
"""

from __future__ import annotations

import smtplib
import socket
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from containers_app.models import Watch
from outbox.models import Event
from outbox.vocabulary import EventType
from queries_app.events import logins_stopped_event
from queries_app.models import Query
from sessions_app.models import Account
from sessions_app.secret_names import account_secrets

from ..audience import Audience
from ..models import (
    ACCOUNT_EVENT_TYPES,
    AlertPreference,
    Channel,
    Delivery,
    DeliveryEvent,
    preferences_for,
)
from ..queue import enqueue
from . import email_message
from .base import Outcome


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


def wants(preference: AlertPreference, event: Event, *, owner: bool, watched: set[int]) -> bool:
    """Whether a person's preferences ask for the event."""
    if event.type not in preference.events:
        return False
    if event.type in ACCOUNT_EVENT_TYPES:
        return owner  # the account's own person; watchers hear about containers only
    watched_only = not owner or preference.scope == AlertPreference.Scope.WATCHED
    if watched_only and event.container_id not in watched:
        return False
    if event.type == EventType.LFD_DUE:
        return bool(event.data.get("days_left", 0) <= preference.lfd_due_days)
    return True


def plan_alerts(events: list[Event], *, query: Query | None) -> list[Delivery]:
    """One alert per person subscribed to these events (the account's person, and anyone who
    watches one of the containers) who may hear of them, holding the events their preferences
    ask for and that they were not alerted about yet. Runs inside the transaction that marks
    the events dispatched."""
    if not events:
        return []
    by_account: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        by_account[event.account_id].append(event)
    users = get_user_model().objects.select_related("alert_preference")
    audience = Audience()
    planned: list[Delivery] = []
    now = timezone.now()
    for account_id, account_events in by_account.items():
        owner_id = account_events[0].account.user_id
        containers = {e.container_id for e in account_events if e.container_id}
        watches: dict[int, set[int]] = defaultdict(set)
        for user_id, container_id in Watch.objects.filter(container_id__in=containers).values_list(
            "user_id", "container_id"
        ):
            watches[user_id].add(container_id)
        for user in users.filter(Q(pk=owner_id) | Q(pk__in=list(watches)), is_active=True):
            audience.know(user)
            preference = preferences_for(user)
            if preference.channel != AlertPreference.Channel.EMAIL or not user.email:
                continue
            owner = user.pk == owner_id
            chosen = [
                e
                for e in account_events
                if wants(preference, e, owner=owner, watched=watches[user.pk])
                and audience.may_hear(user.pk, event_type=e.type, account_user_id=owner_id)
            ]
            already = set(
                DeliveryEvent.objects.filter(
                    channel=Channel.EMAIL, user=user, event__in=chosen
                ).values_list("event_id", flat=True)
            )
            chosen = [e for e in chosen if e.pk not in already]
            if not chosen:
                continue
            alert = Delivery.objects.create(
                channel=Channel.EMAIL,
                user=user,
                recipient=user.email,
                account_id=account_id,
                query=query,
                subject=email_message.subject(chosen, query),
                event_count=len(chosen),
                next_attempt_at=now,
            )
            DeliveryEvent.objects.bulk_create(
                [DeliveryEvent.of(alert, e) for e in chosen], batch_size=1000
            )
            planned.append(alert)
    return planned


def run_of(event: Event) -> int | None:
    """The run whose digest tells of the event. A booking's verdict is told on its own: the
    read that verified it is not a run its person started."""
    return None if event.type.startswith("appointment.") else event.query_id


class EmailChannel:
    name = "email"

    def record(self, events: list[Event]) -> int:
        groups: dict[tuple[int, int | None], list[Event]] = defaultdict(list)
        for event in events:
            groups[event.account_id, run_of(event)].append(event)
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
            planned += plan_alerts(told, query=query)
        enqueue([alert.pk for alert in planned])
        return len(planned)

    def claim_seconds(self) -> float:
        # A send takes at most EMAIL_SEND_SECONDS; past this its sender is taken for dead.
        return float(settings.EMAIL_TIMEOUT * 4 + 60)

    def lost_after(self) -> timedelta:
        return LOST_AFTER

    def send(self, delivery: Delivery, now: datetime) -> Outcome:
        started = time.monotonic()
        try:
            email_message.build_message(delivery).send()
        except Exception as exc:
            return Outcome(
                ok=False,
                error=reason(exc),
                transient=transient(exc),
                seconds=time.monotonic() - started,
            )
        return Outcome(ok=True, seconds=time.monotonic() - started)

    def error_words(self, outcome: Outcome, attempt: int, *, again: bool) -> str:
        if again:
            return f"Try {attempt} failed: {outcome.error}"
        return f"Not delivered after {attempt} tries: {outcome.error}"

    def settle(self, delivery: Delivery, outcome: Outcome, *, status: str, at: datetime) -> None:
        """Nothing: an e-mail's after-effects are its row's."""


# An e-mail whose send task was lost (a broker that dropped it) is asked for again by the
# sweep once it has waited this long.
LOST_AFTER = timedelta(minutes=2)


def transient(exc: BaseException) -> bool:
    """A failure worth another try later: the server unreachable, gone mid-way, timing out, or
    answering 4xx (try again later). A 5xx answer (refused for good) is not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(
        exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError | socket.timeout | OSError
    )


def reason(exc: BaseException) -> str:
    """Why, in words, without anything the settings hold (the SMTP password)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        words = f"the mail server answered {exc.smtp_code} {text}".strip()
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        words = "the mail server refused the recipient"
    else:
        words = f"{type(exc).__name__}: {exc}"
    secret = settings.EMAIL_HOST_PASSWORD
    if secret:
        words = words.replace(secret, "***")
    return words[:450]


CHANNEL = EmailChannel()
