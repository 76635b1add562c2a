"""Signed webhooks: a delivery per enabled endpoint that takes the event's type and whose owner
may hear of it (`notifications.audience`), one row per endpoint and event (a unique
constraint: an event handed over twice is delivered once); its body (the Standard Webhooks
payload), signed with the endpoint's secret and POSTed by `webhook_transport` (public
addresses only, no redirect, a deadline). An endpoint that failed for its whole retry schedule
is disabled and its owner told."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from outbox.models import Event
from outbox.vocabulary import EventType
from sessions_app.fields import SecretUnreadable
from sessions_app.models import Account

from .. import retry
from ..audience import Audience
from ..models import Channel, Delivery, DeliveryEvent, WebhookEndpoint
from ..queue import enqueue
from . import webhook_transport
from .base import Outcome

logger = logging.getLogger(__name__)

TEST_EVENT_TYPE = "webhook.test"


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body_for(event: dict[str, Any]) -> str:
    """The Standard Webhooks payload shape: {"type", "timestamp", "data"}; the event's id
    travels as the `webhook-id` header and in the data."""
    data = {
        "id": event["id"],
        "account_id": event.get("account_id"),
        "container_number": event.get("container_number") or "",
        "query_id": event.get("query_id"),
        **(event.get("data") or {}),
    }
    payload = {"type": event["type"], "timestamp": event["occurred_at"], "data": data}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def test_event(endpoint: Any) -> dict[str, Any]:
    now = timezone.now()
    return {
        "id": f"evt_test_{endpoint.pk}_{int(now.timestamp() * 1000)}",
        "type": TEST_EVENT_TYPE,
        "account_id": None,
        "container_number": "",
        "query_id": None,
        "data": {"message": "A test event sent from the E-Modal Portal."},
        "occurred_at": iso(now),
    }


def record_test(endpoint: Any, event: dict[str, Any]) -> Delivery:
    """A test event's delivery (one attempt, never counted against the endpoint), sent after
    the commit."""
    delivery = Delivery.objects.create(
        channel=Channel.WEBHOOK,
        endpoint=endpoint,
        event_id=event["id"],
        event_type=event["type"],
        body=body_for(event),
        is_test=True,
        next_attempt_at=timezone.now(),
    )
    enqueue([delivery.pk])
    return delivery


def record_deliveries(events: list[Event]) -> list[int]:
    """A delivery for every enabled endpoint that takes each event's type and whose owner may
    hear of it; each is sent by a task after commit. Returns the new deliveries' ids.

    A person whose endpoints already have WEBHOOK_MAX_PENDING_PER_USER deliveries waiting (a
    receiver down or slow) gets the rest recorded as not sent, with the reason, rather than
    queued: the delivery log says what was dropped, and the events stay on the board and in
    the API for the receiver to catch up from."""
    events = [e for e in events if e.key and e.type in EventType.values]
    if not events:
        return []
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(enabled=True).only("id", "user_id", "events")
        if any(event.type in endpoint.events for event in events)
    ]
    if not endpoints:
        return []
    owners_of: dict[Any, int] = dict(
        Account.objects.filter(pk__in={e.account_id for e in events}).values_list("pk", "user_id")
    )
    audience = Audience()
    now = timezone.now()
    pairs = [
        (event, endpoint)
        for event in events
        for endpoint in endpoints
        if event.type in endpoint.events
        and audience.may_hear(
            endpoint.user_id,
            event_type=event.type,
            account_user_id=owners_of.get(event.account_id),
        )
    ]
    if not pairs:
        return []
    rows = [
        Delivery(
            channel=Channel.WEBHOOK,
            endpoint_id=endpoint.pk,
            event_id=event.key[:100],
            event_type=event.type,
            body=body_for(event.as_dict()),
            next_attempt_at=now,
        )
        for event, endpoint in pairs
    ]
    drop_over_limit(rows)
    with transaction.atomic():
        # An event announced again finds its delivery there: nothing is sent twice.
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        made = list(
            Delivery.objects.webhooks()
            .filter(
                event_id__in={row.event_id for row in rows},
                endpoint_id__in={row.endpoint_id for row in rows},
                links=None,
                attempts=0,
                enqueued_at=None,
            )
            .only("pk", "endpoint_id", "event_id", "status")
        )
        by_key = {event.key[:100]: event for event in events}
        DeliveryEvent.objects.bulk_create(
            [DeliveryEvent.of(delivery, by_key[delivery.event_id]) for delivery in made],
            ignore_conflicts=True,
        )
        fresh = [d.pk for d in made if d.status == Delivery.Status.PENDING]
        enqueue(fresh)
    return fresh


def endpoint_of(delivery: Delivery) -> int:
    """The endpoint a webhook delivery goes to (every one has one: `ONE_RECIPIENT`)."""
    if delivery.endpoint_id is None:
        raise ValueError(f"Delivery {delivery.pk} goes to no webhook endpoint.")
    return delivery.endpoint_id


def drop_over_limit(rows: list[Delivery]) -> None:
    """Mark the new deliveries past their owner's limit of waiting ones as not sent."""
    limit = settings.WEBHOOK_MAX_PENDING_PER_USER
    if not limit:
        return
    owner_of = dict(
        WebhookEndpoint.objects.filter(pk__in={row.endpoint_id for row in rows}).values_list(
            "pk", "user_id"
        )
    )
    waiting = Counter(
        dict(
            Delivery.objects.webhooks()
            .filter(
                status=Delivery.Status.PENDING,
                is_test=False,
                endpoint__user_id__in=set(owner_of.values()),
            )
            .values("endpoint__user_id")
            .annotate(count=Count("pk"))
            .values_list("endpoint__user_id", "count")
        )
    )
    now = timezone.now()
    for row in rows:
        owner = owner_of[endpoint_of(row)]
        if waiting[owner] < limit:
            waiting[owner] += 1
            continue
        row.status = Delivery.Status.CANCELLED
        row.next_attempt_at = None
        row.finished_at = now
        row.error = (
            f"Not sent: {limit} deliveries to this person's endpoints were already waiting "
            "(a receiver down or slow); the event is on the board and in the API."
        )[:255]


def signed_headers(secret: str, event_id: str, body: str, at: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(event_id, at.astimezone(UTC), body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


class WebhookChannel:
    name = "webhook"

    def record(self, events: list[Event]) -> int:
        return len(record_deliveries(events))

    def claim_seconds(self) -> float:
        # A send takes at most the connect and read timeouts; past this the claim is stale.
        return float(2 * settings.WEBHOOK_TIMEOUT_SECONDS + 60)

    def lost_after(self) -> timedelta:
        return timedelta(seconds=settings.WEBHOOK_LOST_AFTER_SECONDS)

    def send(self, delivery: Delivery, now: datetime) -> Outcome:
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_of(delivery))
        if not endpoint.enabled and not delivery.is_test:
            return Outcome(ok=False, error="The endpoint is disabled.", cancelled=True)
        try:
            headers = signed_headers(str(endpoint.secret), delivery.event_id, delivery.body, now)
        except SecretUnreadable:
            return Outcome(
                ok=False,
                error="The signing secret cannot be decrypted: rotate the endpoint's secret.",
                transient=True,
            )
        answer = webhook_transport.post(endpoint.url, delivery.body.encode(), headers)
        return Outcome(
            ok=answer.ok,
            error=answer.error,
            transient=True,  # whatever went wrong, the schedule's next attempt may do better
            response_code=answer.status,
            response_body=answer.body,
            seconds=answer.seconds,
        )

    def error_words(self, outcome: Outcome, attempt: int, *, again: bool) -> str:
        return outcome.error

    def settle(self, delivery: Delivery, outcome: Outcome, *, status: str, at: datetime) -> None:
        """The endpoint's last success or failure; after the last attempt failed, the endpoint
        disabled if nothing was delivered to it meanwhile (its owner told after the commit)."""
        if delivery.is_test:
            return
        endpoints = WebhookEndpoint.objects.filter(pk=endpoint_of(delivery))
        if outcome.ok:
            endpoints.update(last_success_at=at)
            return
        endpoints.update(last_failure_at=at)
        if status == Delivery.Status.FAILED and disable_if_failing(delivery, at):
            transaction.on_commit(partial(alert_owner, endpoint_of(delivery)))


def disable_if_failing(delivery: Delivery, now: datetime) -> bool:
    """Disable the endpoint when nothing was delivered to it since this delivery was made:
    every attempt over the whole retry schedule failed."""
    reason = (
        f"Disabled at {now:%Y-%m-%d %H:%M} UTC: every attempt to deliver event "
        f"{delivery.event_id} failed over {retry.max_attempts(delivery)} attempts "
        f"(last: {delivery_error(delivery.pk)}), and nothing was delivered in between."
    )[:255]
    disabled = (
        WebhookEndpoint.objects.filter(pk=endpoint_of(delivery), enabled=True)
        .filter(Q(last_success_at=None) | Q(last_success_at__lt=delivery.created_at))
        .update(enabled=False, disabled_at=now, disabled_reason=reason)
    )
    if disabled:
        Delivery.objects.webhooks().filter(
            endpoint_id=delivery.endpoint_id, status=Delivery.Status.PENDING, is_test=False
        ).update(
            status=Delivery.Status.CANCELLED,
            error="The endpoint was disabled.",
            next_attempt_at=None,
            finished_at=now,
        )
    return bool(disabled)


def delivery_error(delivery_id: int) -> str:
    return (
        Delivery.objects.filter(pk=delivery_id).values_list("error", flat=True).first()
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


CHANNEL = WebhookChannel()
