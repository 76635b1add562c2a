"""Signed webhooks: a delivery per enabled endpoint that takes the event's type and whose owner
may hear of it (`notifications.audience`), sent by the delivery cluster (`api_app.webhooks`: the
body, the signature, the sending). A delivery is one row per endpoint and event id (a unique
constraint): an event handed over twice is delivered once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from api_app.models import WebhookDelivery
from api_app.webhooks.events import body_for, enqueue_deliveries
from outbox.models import Event
from outbox.vocabulary import EventType
from sessions_app.models import Account

from ..audience import Audience
from ..models import WebhookEndpoint


def record_deliveries(events: Iterable[dict[str, Any]]) -> list[int]:
    """A delivery for every enabled endpoint that takes each event's type and whose owner may
    hear of it; each is sent by a task after commit. Returns the new deliveries' ids.

    A person whose endpoints already have WEBHOOK_MAX_PENDING_PER_USER deliveries waiting (a
    receiver down or slow) gets the rest recorded as not sent, with the reason, rather than
    queued: the delivery log says what was dropped, and the events stay on the board and in
    the API for the receiver to catch up from."""
    events = [e for e in events if e.get("id") and e.get("type") in EventType.values]
    if not events:
        return []
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(enabled=True).only("id", "user_id", "events")
        if any(event["type"] in endpoint.events for event in events)
    ]
    if not endpoints:
        return []
    account_ids: set[int] = {e["account_id"] for e in events if e.get("account_id")}
    owners_of: dict[Any, int] = dict(
        Account.objects.filter(pk__in=account_ids).values_list("pk", "user_id")
    )
    audience = Audience()
    rows = [
        WebhookDelivery(
            endpoint_id=endpoint.pk,
            event_id=str(event["id"])[:100],
            event_type=event["type"],
            body=body_for(event),
            next_attempt_at=timezone.now(),
        )
        for event in events
        for endpoint in endpoints
        if event["type"] in endpoint.events
        and audience.may_hear(
            endpoint.user_id,
            event_type=event["type"],
            account_user_id=owners_of.get(event.get("account_id")),
        )
    ]
    if not rows:
        return []
    drop_over_limit(rows)
    with transaction.atomic():
        # An event announced again finds its delivery there: nothing is sent twice.
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
        fresh = list(
            WebhookDelivery.objects.filter(
                event_id__in={row.event_id for row in rows},
                endpoint_id__in={row.endpoint_id for row in rows},
                status=WebhookDelivery.Status.PENDING,
                attempts=0,
                enqueued_at=None,
            ).values_list("pk", flat=True)
        )
        enqueue_deliveries(fresh)
    return fresh


def drop_over_limit(rows: list[WebhookDelivery]) -> None:
    """Mark the new deliveries past their owner's limit of waiting ones as not sent."""
    limit = settings.WEBHOOK_MAX_PENDING_PER_USER
    if not limit:
        return
    owner_of = dict(
        WebhookEndpoint.objects.filter(pk__in={row.endpoint_id for row in rows}).values_list(
            "pk", "user_id"
        )
    )
    waiting = Counter(
        dict(
            WebhookDelivery.objects.filter(
                status=WebhookDelivery.Status.PENDING,
                is_test=False,
                endpoint__user_id__in=set(owner_of.values()),
            )
            .values("endpoint__user_id")
            .annotate(count=Count("pk"))
            .values_list("endpoint__user_id", "count")
        )
    )
    now = timezone.now()
    for row in rows:
        owner = owner_of[row.endpoint_id]
        if waiting[owner] < limit:
            waiting[owner] += 1
            continue
        row.status = WebhookDelivery.Status.CANCELLED
        row.next_attempt_at = None
        row.finished_at = now
        row.error = (
            f"Not sent: {limit} deliveries to this person's endpoints were already waiting "
            "(a receiver down or slow); the event is on the board and in the API."
        )[:255]


class WebhookChannel:
    name = "webhook"

    def record(self, events: list[Event]) -> int:
        return len(record_deliveries([event.as_dict() for event in events]))


CHANNEL = WebhookChannel()
