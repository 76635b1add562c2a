"""The one vocabulary of event types that e-mail alerts and webhooks share.

Adding an event type is one line here and one explicit `outbox.record` call in its producer's
transaction; subscribers choose it by its value (webhook endpoints, alert preferences)."""

from __future__ import annotations

from django.db import models


class EventType(models.TextChoices):
    LFD_CHANGED = "container.lfd_changed", "Last free day set or changed"
    LFD_DUE = "container.lfd_due", "Last free day within a few days"
    HOLDS_RELEASED = "container.holds_released", "Holds released"
    PREGATE_DONE = "container.pregate_done", "Pregate done"
    SLOT_APPEARED = "container.slot_appeared", "Appointment slot appeared"
    CONTAINER_NEW = "container.new", "New container"
    CONTAINER_GONE = "container.gone", "Container gone from the list"
    QUERY_FINISHED = "query.finished", "Query finished"
    QUERY_FAILED = "query.failed", "Query failed"
    CREDENTIALS_REJECTED = "account.credentials_rejected", "E-Modal credentials rejected"
    APPOINTMENT_BOOKED = "appointment.booked", "Appointment booked (verified)"
    APPOINTMENT_NOT_CONFIRMED = "appointment.not_confirmed", "Appointment not confirmed"
    APPOINTMENT_UNKNOWN = "appointment.unknown", "Appointment outcome unknown"
