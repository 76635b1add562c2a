"""Sending a delivery, whatever its channel: claim it (`portal.claims`), make one attempt by
its channel's transport, record the attempt and plan the next one (`notifications.retry`); and
the one sweep over deliveries.

A delivery is claimed before it is sent, so two workers never send it at once, and a delivered
one is never sent again. A sender that dies mid-attempt leaves its claim to lapse: a webhook is
then sent again (the receiver sees the same `webhook-id` and drops it, as the spec asks of
receivers); an e-mail is not — it is marked undelivered, saying why, in case it went out.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.claims import CLAIM, new_token

from . import retry
from .channels import BY_NAME, Channel, Outcome
from .models import Delivery, DeliveryAttempt
from .queue import enqueue

logger = logging.getLogger(__name__)

NOT_DUE = "not due, taken or finished"
STOPPED = "The sender stopped while sending: not sent again, in case it went out."


def claimable(channel: Channel, now: datetime) -> Q:
    """Deliveries a sender may take: a webhook's lapsed claim may be taken over, an e-mail's
    may not (the sweep marks it undelivered)."""
    if channel.name == Delivery.Channel.EMAIL:
        return Q(claim_token="")
    return CLAIM.free(now)


def send(delivery_id: int, *, now: datetime | None = None) -> str:
    """One attempt of a delivery, if it is due and nobody else is sending it."""
    now = now or timezone.now()
    name = Delivery.objects.filter(pk=delivery_id).values_list("channel", flat=True).first()
    if name is None:
        return NOT_DUE
    channel = BY_NAME[name]
    token = new_token()
    due = Delivery.objects.filter(
        claimable(channel, now),
        pk=delivery_id,
        status=Delivery.Status.PENDING,
        next_attempt_at__lte=now,
    )
    if not CLAIM.take(due, token=token, seconds=channel.claim_seconds(), now=now):
        return NOT_DUE
    delivery = Delivery.objects.select_related("account", "user").get(pk=delivery_id)
    outcome = channel.send(delivery, now)
    return record(delivery, channel, token, outcome, started=now)


def record(
    delivery: Delivery, channel: Channel, token: str, outcome: Outcome, *, started: datetime
) -> str:
    """The attempt's outcome on the delivery's row and in its log, in one transaction with the
    channel's after-effects — only if the sender still holds the delivery."""
    rows = Delivery.objects.filter(pk=delivery.pk)
    if outcome.cancelled:
        CLAIM.give_back(
            rows,
            token=token,
            status=Delivery.Status.CANCELLED,
            error=outcome.error,
            next_attempt_at=None,
            finished_at=started,
        )
        return outcome.error
    finished = started + timedelta(seconds=outcome.seconds)
    number = delivery.attempts + 1
    retry_at = retry.next_attempt(delivery, outcome, attempts=number, at=finished)
    if outcome.ok:
        status = Delivery.Status.SUCCEEDED
    else:
        status = Delivery.Status.PENDING if retry_at else Delivery.Status.FAILED
    error = "" if outcome.ok else channel.error_words(outcome, number, again=bool(retry_at))
    with transaction.atomic():
        updated = CLAIM.give_back(
            rows,
            token=token,
            status=status,
            attempts=number,
            next_attempt_at=retry_at,
            enqueued_at=None,
            response_code=outcome.response_code,
            error=error[:500],
            finished_at=None if retry_at else finished,
        )
        if not updated:
            return "claim lost"
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=int(outcome.seconds * 1000),
            response_code=outcome.response_code,
            error=outcome.error[:500],
            response_body=outcome.response_body[:200],
        )
        channel.settle(delivery, outcome, status=status, at=finished)
    if outcome.ok:
        return f"attempt {number}: delivered"
    if retry_at:
        logger.warning("Delivery %s: try %s failed, retrying: %s", delivery.pk, number, error)
    else:
        logger.error("Delivery %s not delivered: %s", delivery.pk, error)
    return f"attempt {number}: failed ({outcome.error or outcome.response_code})"


def lost(now: datetime) -> Q:
    """Asked for so long ago (by channel) that the task was lost, or never asked for."""
    asked_long_ago = Q()
    for channel in BY_NAME.values():
        asked_long_ago |= Q(channel=channel.name, enqueued_at__lt=now - channel.lost_after())
    return Q(enqueued_at=None) | asked_long_ago


def due_deliveries(now: datetime, limit: int = 500) -> list[int]:
    """Pending deliveries whose attempt is due and that no task is about to send: never asked
    for since their last attempt, or asked for so long ago that the task was lost."""
    return list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(lost(now))
        .filter(CLAIM.free(now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def sweep_deliveries(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """The sweep (every minute): mark undelivered the e-mails whose sender died mid-send; set
    due (re)tries going, and lost ones again; drop the finished webhook deliveries past
    WEBHOOK_LOG_DAYS (e-mails are kept with the board's records: `notifications.retention`)."""
    now = now or timezone.now()
    stuck = (
        Delivery.objects.emails()
        .filter(status=Delivery.Status.PENDING, claim_expires_at__lt=now)
        .exclude(claim_token="")
        .update(
            status=Delivery.Status.FAILED,
            next_attempt_at=None,
            finished_at=now,
            error=STOPPED,
            **CLAIM.released(),
        )
    )
    due = due_deliveries(now, limit)
    enqueue(due)
    pruned = 0
    if settings.WEBHOOK_LOG_DAYS:
        before = now - timedelta(days=settings.WEBHOOK_LOG_DAYS)
        _, deleted = (
            Delivery.objects.webhooks()
            .exclude(status=Delivery.Status.PENDING)
            .filter(created_at__lt=before)
            .delete()
        )
        pruned = deleted.get(Delivery._meta.label, 0)  # not counting their attempts
    return {"enqueued": len(due), "stuck": stuck, "deliveries_deleted": pruned}
