"""Signed webhooks: a delivery per enabled endpoint that takes the event's type and whose owner
may see its account (`api_app.webhooks`), sent by the delivery cluster."""

from __future__ import annotations

from api_app.webhooks.events import record_deliveries
from outbox.models import Event


class WebhookChannel:
    name = "webhook"

    def record(self, events: list[Event]) -> int:
        return len(record_deliveries([event.as_dict() for event in events]))


CHANNEL = WebhookChannel()
