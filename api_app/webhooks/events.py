"""A webhook event's body and the waking of its delivery's sender. Which endpoints hear an
event is the webhook channel's (`notifications.channels.webhook`), under the access rules of
every channel (`notifications.audience`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from notifications.models import WebhookEndpoint

from ..models import WebhookDelivery

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
