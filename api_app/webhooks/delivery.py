"""Sending a delivery: claim it, sign it, POST it, record the attempt, plan the next one.

Attempts follow WEBHOOK_RETRY_SECONDS (the delays before the 2nd, 3rd, … attempt; by default
1 min, 5 min, 30 min, 2 h, 5 h, 10 h: seven attempts over about 18 hours). django-q2 cannot
enqueue a task for later, so a failed delivery keeps its next attempt's time on its row and
the sweep (every minute) sets due ones going. A delivery whose attempts are all spent fails;
if its endpoint has not answered any delivery with success since that delivery was made —
it has been failing for the whole retry schedule — the endpoint is disabled, its pending
deliveries are dropped, and its owner is told by e-mail.

A delivery is claimed (`portal.claims`) before it is sent, so two workers never send
it at once, and a delivered one is never sent again. (A worker killed between the receiver's
answer and the commit leaves it to be sent once more: the receiver sees the same
`webhook-id` and drops it, as the spec asks of receivers.)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from notifications.models import WebhookEndpoint
from portal.claims import CLAIM, new_token
from sessions_app.fields import SecretUnreadable

from ..models import DeliveryAttempt, WebhookDelivery
from . import transport

logger = logging.getLogger(__name__)


def retry_delays() -> list[int]:
    return [int(seconds) for seconds in settings.WEBHOOK_RETRY_SECONDS]


def max_attempts(delivery: WebhookDelivery) -> int:
    return 1 if delivery.is_test else len(retry_delays()) + 1


def claim_seconds() -> float:
    # A send takes at most the connect and read timeouts; past this the claim is stale.
    return 2 * settings.WEBHOOK_TIMEOUT_SECONDS + 60


def signed_headers(secret: str, event_id: str, body: str, at: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(event_id, at.astimezone(UTC), body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def claim(delivery_id: int, now: datetime) -> str | None:
    token = new_token()
    due = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    )
    return token if CLAIM.take(due, token=token, seconds=claim_seconds(), now=now) else None


def deliver(delivery_id: int, *, now: datetime | None = None) -> str:
    """One attempt of a delivery, if it is due and nobody else is sending it."""
    now = now or timezone.now()
    token = claim(delivery_id, now)
    if token is None:
        return "not due, taken or finished"
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled and not delivery.is_test:
        CLAIM.give_back(
            WebhookDelivery.objects.filter(pk=delivery_id),
            token=token,
            status=WebhookDelivery.Status.CANCELLED,
            error="The endpoint is disabled.",
            next_attempt_at=None,
            finished_at=now,
        )
        return "endpoint disabled"
    try:
        headers = signed_headers(str(endpoint.secret), delivery.event_id, delivery.body, now)
    except SecretUnreadable:
        answer = transport.Answer(
            None, "The signing secret cannot be decrypted: rotate the endpoint's secret.", "", 0
        )
    else:
        answer = transport.post(endpoint.url, delivery.body.encode(), headers)
    return record(delivery, token, answer, started=now)


def record(
    delivery: WebhookDelivery, token: str, answer: transport.Answer, *, started: datetime
) -> str:
    finished = started + timedelta(seconds=answer.seconds)
    number = delivery.attempts + 1
    last = number >= max_attempts(delivery)
    if answer.ok:
        status, next_at = WebhookDelivery.Status.SUCCEEDED, None
    elif last:
        status, next_at = WebhookDelivery.Status.FAILED, None
    else:
        delay = retry_delays()[number - 1]
        status, next_at = WebhookDelivery.Status.PENDING, finished + timedelta(seconds=delay)
    disabled = False
    with transaction.atomic():
        updated = CLAIM.give_back(
            WebhookDelivery.objects.filter(pk=delivery.pk),
            token=token,
            status=status,
            attempts=number,
            next_attempt_at=next_at,
            enqueued_at=None,
            response_code=answer.status,
            error=answer.error,
            finished_at=None if next_at else finished,
        )
        if not updated:
            return "claim lost"
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=int(answer.seconds * 1000),
            response_code=answer.status,
            error=answer.error,
            response_body=answer.body,
        )
        if not delivery.is_test:
            endpoints = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
            if answer.ok:
                endpoints.update(last_success_at=finished)
            else:
                endpoints.update(last_failure_at=finished)
                if status == WebhookDelivery.Status.FAILED:
                    disabled = disable_if_failing(delivery, finished)
    if disabled:
        transaction.on_commit(lambda: alert_owner(delivery.endpoint_id))
    outcome = "delivered" if answer.ok else f"failed ({answer.error or answer.status})"
    return f"attempt {number}: {outcome}"


def disable_if_failing(delivery: WebhookDelivery, now: datetime) -> bool:
    """Disable the endpoint when nothing was delivered to it since this delivery was made:
    every attempt over the whole retry schedule failed."""
    reason = (
        f"Disabled at {now:%Y-%m-%d %H:%M} UTC: every attempt to deliver event "
        f"{delivery.event_id} failed over {max_attempts(delivery)} attempts "
        f"(last: {delivery_error(delivery.pk)}), and nothing was delivered in between."
    )[:255]
    disabled = (
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, enabled=True)
        .filter(Q(last_success_at=None) | Q(last_success_at__lt=delivery.created_at))
        .update(enabled=False, disabled_at=now, disabled_reason=reason)
    )
    if disabled:
        WebhookDelivery.objects.filter(
            endpoint_id=delivery.endpoint_id, status=WebhookDelivery.Status.PENDING, is_test=False
        ).update(
            status=WebhookDelivery.Status.CANCELLED,
            error="The endpoint was disabled.",
            next_attempt_at=None,
            finished_at=now,
        )
    return bool(disabled)


def delivery_error(delivery_id: int) -> str:
    return (
        WebhookDelivery.objects.filter(pk=delivery_id).values_list("error", flat=True).first()
        or "no answer"
    )


def alert_owner(endpoint_id: int) -> None:
    """Tell the endpoint's owner it was disabled (Django's mail API; logged either way)."""
    endpoint = WebhookEndpoint.objects.select_related("user").get(pk=endpoint_id)
    logger.warning("Webhook endpoint %s disabled: %s", endpoint.pk, endpoint.disabled_reason)
    address = endpoint.user.email
    if not address:
        logger.warning(
            "Webhook endpoint %s: its owner %s has no e-mail address to tell",
            endpoint.pk,
            endpoint.user.get_username(),
        )
        return
    try:
        send_mail(
            subject="E-Modal Portal: a webhook endpoint was disabled",
            message=(
                f"Hello {endpoint.user.get_username()},\n\n"
                f"The portal stopped sending events to your webhook endpoint\n\n    "
                f"{endpoint.url}\n\n{endpoint.disabled_reason}\n\n"
                "Once the receiver answers again (any 2xx status), enable the endpoint on the "
                "portal's Webhooks page or with PATCH /api/v1/webhooks/"
                f'{endpoint.pk}/ {{"enabled": true}}; use “Send test event” to check it first.\n'
            ),
            from_email=None,
            recipient_list=[address],
        )
    except Exception:
        logger.exception("Webhook endpoint %s: the alert e-mail could not be sent", endpoint.pk)


def due_deliveries(now: datetime, limit: int = 500) -> list[int]:
    """Pending deliveries whose attempt is due and that no task is about to send: never asked
    for since their last attempt, or asked for so long ago that the task was lost."""
    lost = now - timedelta(seconds=settings.WEBHOOK_LOST_AFTER_SECONDS)
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__lte=now,
        )
        .filter(Q(enqueued_at=None) | Q(enqueued_at__lt=lost))
        .filter(CLAIM.free(now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
