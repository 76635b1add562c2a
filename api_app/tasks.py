"""django-q2 entry points of the API side. They take ids, never a secret."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .models import WebhookDelivery
from .webhooks import delivery, events


def deliver_webhook(delivery_id: int) -> str:
    return delivery.deliver(delivery_id)


def sweep_webhooks(now: datetime | None = None) -> dict[str, int]:
    """Every minute (schedule made by migration 0002): set due retries going, and drop the
    finished deliveries past WEBHOOK_LOG_DAYS."""
    now = now or timezone.now()
    due = delivery.due_deliveries(now)
    events.enqueue_deliveries(due)
    pruned = 0
    if settings.WEBHOOK_LOG_DAYS:
        before = now - timedelta(days=settings.WEBHOOK_LOG_DAYS)
        _, deleted = (
            WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.PENDING)
            .filter(created_at__lt=before)
            .delete()
        )
        pruned = deleted.get(WebhookDelivery._meta.label, 0)  # not counting their attempts
    return {"enqueued": len(due), "deliveries_deleted": pruned}
