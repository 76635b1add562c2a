"""The webhook channel's side of dispatching: which endpoints hear an event, and the body
they are sent.

Events are the outbox's rows (`outbox.models.Event`), handed over by the dispatcher
(`notifications.dispatcher`) in the transaction that marks them dispatched. A delivery is one
row per endpoint and event id (a unique constraint): an event handed over twice is delivered
once.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django_q.tasks import async_task

from containers_app.models import VIEW_CONTAINERS
from outbox.vocabulary import EventType
from queries_app.access import VIEW_QUERIES, sees_others

from ..models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

TEST_EVENT_TYPE = "webhook.test"


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body_for(event: dict[str, Any]) -> str:
    """The Standard Webhooks payload shape: {"type", "timestamp", "data"}; the event's id
    travels as the `webhook-id` header and in the data."""
    data = {
        "id": event["id"],
        "account_id": event.get("account_id"),
        "container_number": event.get("container_number") or "",
        "query_id": event.get("query_id"),
        **(event.get("data") or {}),
    }
    payload = {"type": event["type"], "timestamp": event["occurred_at"], "data": data}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def permission_for(event_type: str) -> str:
    """The view permission that lets staff hear of any account's events of this type: the
    board's for container events, the bookings' for appointments, the queries' for the rest (as
    on the pages)."""
    if event_type.startswith("appointment."):
        return "bookings_app.view_booking"
    return VIEW_CONTAINERS if event_type.startswith("container.") else VIEW_QUERIES


class _Audience:
    """Whether an endpoint's owner may see an account's events (as they may see its queries or
    its containers on the pages), asked once per owner and permission."""

    def __init__(self) -> None:
        self.owners: dict[int, Any] = {}
        self.everything: dict[tuple[int, str], bool] = {}

    def sees(self, owner_id: int, account_user_id: int | None, event_type: str) -> bool:
        if owner_id not in self.owners:
            self.owners[owner_id] = (
                get_user_model().objects.filter(pk=owner_id, is_active=True).first()
            )
        owner = self.owners[owner_id]
        if owner is None:
            return False
        if owner_id == account_user_id:
            return True
        permission = permission_for(event_type)
        if (owner_id, permission) not in self.everything:
            self.everything[owner_id, permission] = sees_others(owner, permission)
        return self.everything[owner_id, permission]


def record_deliveries(events: Iterable[dict[str, Any]]) -> list[int]:
    """A delivery for every enabled endpoint that takes each event's type and whose owner may
    see its account; each is sent by a task after commit. Returns the new deliveries' ids.

    A person whose endpoints already have WEBHOOK_MAX_PENDING_PER_USER deliveries waiting (a
    receiver down or slow) gets the rest recorded as not sent, with the reason, rather than
    queued: the delivery log says what was dropped, and the events stay on the board and in
    the API for the receiver to catch up from."""
    from sessions_app.models import Account

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
    account_ids = {e.get("account_id") for e in events if e.get("account_id")}
    owners_of = dict(Account.objects.filter(pk__in=account_ids).values_list("pk", "user_id"))
    audience = _Audience()
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
        and audience.sees(endpoint.user_id, owners_of.get(event.get("account_id")), event["type"])
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


def enqueue_deliveries(delivery_ids: list[int]) -> None:
    """Mark them asked for and wake a worker of the delivery cluster for each, after commit."""
    if not delivery_ids:
        return
    WebhookDelivery.objects.filter(pk__in=delivery_ids).update(enqueued_at=timezone.now())
    for delivery_id in delivery_ids:
        transaction.on_commit(
            lambda pk=delivery_id: async_task(
                "api_app.tasks.deliver_webhook",
                pk,
                task_name=f"webhook-{pk}",
                cluster=settings.DELIVERY_CLUSTER,
            )
        )


def test_event(endpoint: WebhookEndpoint) -> dict[str, Any]:
    now = timezone.now()
    return {
        "id": f"evt_test_{endpoint.pk}_{int(now.timestamp() * 1000)}",
        "type": TEST_EVENT_TYPE,
        "account_id": None,
        "container_number": "",
        "query_id": None,
        "data": {"message": "A test event sent from the E-Modal Portal."},
        "occurred_at": iso(now),
    }
