"""Waking the delivery cluster's sender of a delivery (`notifications.tasks.send_delivery`)."""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from .models import Delivery


def enqueue(delivery_ids: list[int]) -> None:
    """Mark them asked for and wake a worker of the delivery cluster for each, after commit
    (the delivery cluster's queue: a slow receiver or mail server never holds up a query's
    steps)."""
    if not delivery_ids:
        return
    Delivery.objects.filter(pk__in=delivery_ids).update(enqueued_at=timezone.now())
    for delivery_id in delivery_ids:
        transaction.on_commit(partial(wake, delivery_id))


def wake(delivery_id: int) -> None:
    async_task(
        "notifications.tasks.send_delivery",
        delivery_id,
        task_name=f"delivery-{delivery_id}",
        cluster=settings.DELIVERY_CLUSTER,
    )
