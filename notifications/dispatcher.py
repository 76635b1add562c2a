"""The dispatcher: claims events not dispatched yet (`portal.claims`), has every channel record
the deliveries they call for, and marks them dispatched — in one transaction, so an event is
dispatched once whatever crashes: a dispatcher that dies before its commit leaves the event
undispatched (its claim lapses and the next sweep takes it), and a channel's deliveries are
unique per subscriber and event in any case."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from outbox.models import Event
from portal.claims import CLAIM, new_token

from .channels import CHANNELS

logger = logging.getLogger(__name__)

# Events taken per transaction.
BATCH = 200
# A batch is recorded in well under this; past it, its claim lapses.
CLAIM_SECONDS = 120


def dispatch(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Dispatch the events waiting, a batch at a time, up to `limit`; returns how many."""
    done = 0
    while done < limit:
        count = dispatch_batch(now=now)
        if not count:
            break
        done += count
    return done


def dispatch_batch(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    token = new_token()
    free = Event.objects.filter(dispatched_at=None).filter(CLAIM.free(now))
    first = list(free.order_by("pk").values_list("pk", "query_id")[:BATCH])
    if not first:
        return 0
    # A run's events go together, however many (its e-mail is one digest per person), and
    # they are claimed in one UPDATE: a second dispatcher listing the same events takes none
    # of them rather than some.
    runs = {query_id for _, query_id in first if query_id is not None}
    CLAIM.take_all(
        free.filter(Q(pk__in=[pk for pk, _ in first]) | Q(query_id__in=runs)),
        token=token,
        seconds=CLAIM_SECONDS,
        now=now,
    )
    claimed = list(Event.objects.filter(claim_token=token).values_list("pk", flat=True))
    if not claimed:
        return 0
    try:
        with transaction.atomic():
            events = list(Event.objects.filter(pk__in=claimed, claim_token=token).order_by("pk"))
            for channel in CHANNELS:
                channel.record(events)
            Event.objects.filter(pk__in=[e.pk for e in events], claim_token=token).update(
                dispatched_at=timezone.now(), **CLAIM.released()
            )
    except Exception:
        logger.exception("%d event(s) could not be dispatched; the sweep tries again", len(claimed))
        Event.objects.filter(pk__in=claimed, claim_token=token).update(**CLAIM.released())
        return 0
    return len(events)
