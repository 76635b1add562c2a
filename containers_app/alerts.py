"""Alerts: the message of one run's (or account's) events to one person, and sending it.

Planned by the e-mail channel of the dispatcher (`notifications.channels.email`: who hears what)
in the transaction that marks the events dispatched, sent by a task after the commit, retried
with back-off on a passing SMTP failure by the task cluster's sweep (`send_due_alerts`). A
person is never alerted twice about one event (AlertItem's constraint), and an alert is sent by
one sender at a time (a conditional UPDATE claims it); one whose sender died mid-send is not
sent again, in case it went out — it is marked undelivered, saying why.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.text import Truncator
from django_q.tasks import async_task

from queries_app.events import EventType
from queries_app.models import Query
from queries_app.parsing import is_container_number

from .health import account_health
from .models import Alert, Event
from .money import money_words
from .words import describe_event

logger = logging.getLogger(__name__)

# The order events are listed in a message: what costs money first.
EVENT_ORDER = [
    EventType.APPOINTMENT_UNKNOWN,
    EventType.APPOINTMENT_NOT_CONFIRMED,
    EventType.APPOINTMENT_BOOKED,
    EventType.LFD_DUE,
    EventType.LFD_CHANGED,
    EventType.HOLDS_RELEASED,
    EventType.SLOT_APPEARED,
    EventType.PREGATE_DONE,
    EventType.CONTAINER_NEW,
    EventType.CONTAINER_GONE,
    EventType.QUERY_FAILED,
    EventType.CREDENTIALS_REJECTED,
]


def subject(events: list[Event], query: Query | None) -> str:
    counts: dict[str, int] = defaultdict(int)
    overdue = 0
    for event in events:
        if event.type == EventType.LFD_DUE and event.data.get("days_left", 0) < 0:
            overdue += 1  # told first, on its own
            continue
        counts[event.type] += 1
    parts = [f"{overdue} overdue"] if overdue else []
    for kind in EVENT_ORDER:
        if counts.get(kind):
            parts.append(f"{counts[kind]} {EventType(kind).label.lower()}")
    source = f" (run #{query.pk})" if query is not None else ""
    return Truncator(f"E-Modal: {'; '.join(parts)}{source}").chars(200)


def enqueue_sends(alert_ids: list[int]) -> None:
    # The delivery cluster's queue: a slow mail server never holds up a query's steps.
    for alert_id in alert_ids:
        async_task(
            "containers_app.tasks.send_alert",
            alert_id,
            task_name=f"alert-{alert_id}",
            cluster=settings.DELIVERY_CLUSTER,
        )


def portal_url(path: str) -> str:
    return settings.PORTAL_URL.rstrip("/") + path


def container_url(number: str, account_id: int | None, *, owner: bool) -> str:
    """The link to a container's page, or "" when none can be made (a number that is not a
    container number, recorded before the portal refused them): that item goes without its
    link, the message still goes."""
    if not is_container_number(number):
        return ""
    try:
        path = reverse("containers:detail", args=[number])
    except NoReverseMatch:
        return ""
    if not owner and account_id:
        path += "?" + urlencode({"account": account_id})
    return portal_url(path)


def message_context(alert: Alert) -> dict[str, Any]:
    items = (
        Event.objects.filter(alert_items__alert=alert)
        .select_related("query")
        .order_by("container_number", "id")
    )
    owner = alert.account is not None and alert.account.user_id == alert.user_id
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    zone = timezone.get_default_timezone()
    for event in items:
        groups[event.type].append(
            {
                "event": event,
                "words": describe_event(event.type, event.data, zone=zone),
                "url": container_url(event.container_number, alert.account_id, owner=owner)
                if event.container_number
                else "",
            }
        )

    # What costs money leads: the overdue containers still to pull (most days first), then the
    # due dates (soonest first), then the rest.
    def left(item: dict[str, Any]) -> int:
        return item["event"].data.get("days_left", 0)

    due = sorted(groups.pop(EventType.LFD_DUE, []), key=left)
    overdue = [item for item in due if left(item) < 0]
    groups[EventType.LFD_DUE] = [item for item in due if item not in overdue]
    sections = []
    if overdue:
        owed = [
            Decimal(item["event"].data["charges_to_date"])
            for item in overdue
            if item["event"].data.get("charges_to_date")
        ]
        label = "Overdue, still to pick up"
        if owed:
            label += f": {money_words(sum(owed, Decimal(0)))} so far"
        sections.append({"label": label, "items": overdue})
    sections += [
        {"label": EventType(kind).label, "items": groups[kind]}
        for kind in EVENT_ORDER
        if groups.get(kind)
    ]
    return {
        "alert": alert,
        "sections": sections,
        "board_url": portal_url(reverse("containers:board")),
        "settings_url": portal_url(reverse("notifications:alerts")),
        "query_url": portal_url(reverse("queries:detail", args=[alert.query_id]))
        if alert.query_id and owner
        else "",
        "zone": zone,
        # The account's updates stopped: said first, to the account's own person.
        "health": account_health(alert.account_id) if owner else None,
    }


def build_message(alert: Alert) -> EmailMultiAlternatives:
    context = message_context(alert)
    text = render_to_string("containers/email/alert.txt", context)
    html = render_to_string("containers/email/alert.html", context)
    domain = settings.PORTAL_URL.split("//")[-1].split("/")[0].split(":")[0] or "localhost"
    message = EmailMultiAlternatives(
        subject=alert.subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[alert.recipient],
        # The same alert always has the same Message-ID: mail systems drop a duplicate.
        headers={"Message-ID": f"<alert-{alert.pk}@{domain}>"},
        connection=get_connection(fail_silently=False),
    )
    message.attach_alternative(html, "text/html")
    return message


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
    return words[:480]


def retry_delay(attempts: int) -> float:
    base = settings.ALERT_RETRY_BASE_SECONDS
    return min(base * 2 ** max(attempts - 1, 0), settings.ALERT_RETRY_MAX_SECONDS)


def send_alert(alert_id: int, *, now: datetime | None = None) -> str:
    """Send one alert if it is waiting and due; record how it went."""
    now = now or timezone.now()
    claim = now + timedelta(seconds=settings.EMAIL_TIMEOUT * 4 + 60)
    claimed = (
        Alert.objects.due(now)
        .filter(pk=alert_id)
        .update(status=Alert.Status.SENDING, claimed_until=claim, attempts=F("attempts") + 1)
    )
    if not claimed:
        return "not due, or sent already"
    alert = Alert.objects.select_related("account").get(pk=alert_id)
    try:
        build_message(alert).send()
    except Exception as exc:
        words = reason(exc)
        if transient(exc) and alert.attempts < settings.ALERT_MAX_ATTEMPTS:
            retry_at = timezone.now() + timedelta(seconds=retry_delay(alert.attempts))
            Alert.objects.filter(pk=alert_id, status=Alert.Status.SENDING).update(
                status=Alert.Status.RETRYING,
                next_attempt_at=retry_at,
                claimed_until=None,
                error=f"Try {alert.attempts} failed: {words}",
            )
            logger.warning("Alert %s: try %s failed, retrying: %s", alert_id, alert.attempts, words)
            return f"will retry at {retry_at:%H:%M:%S}"
        Alert.objects.filter(pk=alert_id, status=Alert.Status.SENDING).update(
            status=Alert.Status.FAILED,
            claimed_until=None,
            next_attempt_at=None,
            error=f"Not delivered after {alert.attempts} tries: {words}",
        )
        logger.error("Alert %s not delivered: %s", alert_id, words)
        return "failed"
    Alert.objects.filter(pk=alert_id, status=Alert.Status.SENDING).update(
        status=Alert.Status.SENT,
        sent_at=timezone.now(),
        claimed_until=None,
        next_attempt_at=None,
        error="",
    )
    return "sent"


# An alert whose first send task was lost (a broker that dropped it) is sent by the sweep
# once it has waited this long.
LOST_AFTER = timedelta(minutes=2)


def send_due_alerts(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """The sweep (every minute): enqueue the sends of alerts whose retry is due (and of new
    ones whose task was lost); mark undelivered those whose sender died mid-send."""
    now = now or timezone.now()
    stuck = Alert.objects.filter(status=Alert.Status.SENDING, claimed_until__lt=now).update(
        status=Alert.Status.FAILED,
        claimed_until=None,
        error="The sender stopped while sending: not sent again, in case it went out.",
    )
    due = list(
        Alert.objects.filter(
            Q(status=Alert.Status.RETRYING, next_attempt_at__lte=now)
            | Q(status=Alert.Status.PENDING, next_attempt_at__lte=now - LOST_AFTER)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    enqueue_sends(due)
    return {"enqueued": len(due), "stuck": stuck}
