"""One row per event: its `key` is its stable id (the `webhook-id` of its webhooks), unique,
so a second row for the same event cannot be written, whatever runs twice. A row is
dispatched once (its `dispatched_at`): the dispatcher claims it, records its deliveries and
marks it, in one transaction."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from sessions_app.models import Account

from .vocabulary import EventType


class Event(models.Model):
    key = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=40, choices=EventType.choices)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    # The board's container, when the event is about one (named by string: the board is built
    # on the outbox, not the reverse).
    container = models.ForeignKey(
        "containers_app.Container",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
    )
    container_number = models.CharField(max_length=20, blank=True)
    query = models.ForeignKey(
        "queries_app.Query", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # JSON, never a secret (e.g. {"before": "2025-05-01", "after": "2025-05-03"}).
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    # When the dispatcher recorded its deliveries (None: not yet), and its claim meanwhile
    # (portal.claims).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=64, blank=True, default="")
    claim_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            # An account's events over time (the admin).
            models.Index(fields=["account", "occurred_at"], name="outbox_event_account_time"),
            # The dispatcher's look-up: events not dispatched yet.
            models.Index(
                fields=["id"], condition=Q(dispatched_at=None), name="outbox_event_undispatched"
            ),
        ]

    def __str__(self) -> str:
        return self.key

    def as_dict(self) -> dict[str, Any]:
        """The event as the transports read it (a webhook's body is made from this)."""
        return {
            "id": self.key,
            "type": self.type,
            "account_id": self.account_id,
            "container_number": self.container_number,
            "query_id": self.query_id,
            "data": self.data,
            "occurred_at": self.occurred_at.isoformat(),
        }
