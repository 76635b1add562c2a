"""An e-mail alert's message: one run's (or account's) events told to one person, in the
board's words (the containers app's words, money and account health), what costs money first.
Who hears what is `notifications.channels.email`'s; sending is `notifications.sending`'s."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.text import Truncator

from containers_app.health import account_health
from containers_app.money import money_words
from containers_app.words import describe_event
from outbox.models import Event
from queries_app.events import EventType
from queries_app.models import Query
from queries_app.parsing import is_container_number

from ..models import Delivery

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


def message_context(alert: Delivery) -> dict[str, Any]:
    items = (
        Event.objects.filter(delivery_links__delivery=alert)
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


def build_message(alert: Delivery) -> EmailMultiAlternatives:
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
        headers={"Message-ID": f"<{alert.message_key()}@{domain}>"},
        connection=get_connection(fail_silently=False),
    )
    message.attach_alternative(html, "text/html")
    return message
