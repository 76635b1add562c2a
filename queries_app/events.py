"""What happens to containers and queries that people and other systems may want to hear about:
the one vocabulary of event types that alerts (e-mail) and webhooks share, and the signal that
announces recorded events.

Container events are recorded once per container, run and type (their `id` is stable, so that
nothing is ever announced or delivered twice for one event); listeners hear them after the
commit that recorded them, from `events_recorded`, and do slow work (e-mail, HTTP) in tasks of
their own, never in the query's path.
"""

from __future__ import annotations

from django.db import models
from django.dispatch import Signal


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


# Sent after the commit that recorded events. Keyword argument `events`: a list of dicts, each
# {"id": str (stable, unique per event), "type": EventType value, "account_id": int,
#  "container_number": str or "", "query_id": int or None, "data": dict (JSON: e.g.
#  {"before": ..., "after": ...}), "occurred_at": ISO 8601 str}. Listeners must be quick and
# must not raise (sent with send_robust).
events_recorded = Signal()
