"""What notifications keep about the past, pruned with the board's records
(`containers_app.retention.prune_board`, BOARD_RETENTION_DAYS): finished e-mails (with their
links to events), and the dispatched events no waiting delivery holds. (Finished webhook
deliveries go sooner, after WEBHOOK_LOG_DAYS: `sending.sweep_deliveries`.)

An event's key is what stops it being announced twice; a pruned event's key is free again,
which only matters if the same run's update or the same day's due date were recorded again
after the retention period — not something the board does."""

from __future__ import annotations

from datetime import datetime

from django.db import models

from outbox.models import Event

from .models import Delivery, DeliveryEvent

FINISHED = [Delivery.Status.SUCCEEDED, Delivery.Status.FAILED, Delivery.Status.CANCELLED]


def prunable(cutoff: datetime) -> list[tuple[str, models.QuerySet]]:
    """What goes, in the order it goes (e-mails before the events they hold)."""
    waiting = Delivery.objects.exclude(status__in=FINISHED)
    return [
        (
            "alerts",
            Delivery.objects.emails().filter(status__in=FINISHED, created_at__lt=cutoff),
        ),
        (
            "events",
            Event.objects.filter(occurred_at__lt=cutoff, dispatched_at__isnull=False).exclude(
                pk__in=DeliveryEvent.objects.filter(delivery__in=waiting).values("event_id")
            ),
        ),
    ]
