"""Deliveries: one table for every channel. A delivery is one message to one recipient — an
e-mail to a person (a digest of one run's events), or one event's signed POST to a webhook
endpoint — with its state, its attempts and when it is next tried. The events it tells of are
its links (`DeliveryEvent`): a recipient is never told twice of one event (a unique constraint
per channel, recipient and event). Each attempt is one row of the log (`DeliveryAttempt`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from outbox.models import Event
from queries_app.models import Query
from sessions_app.models import Account


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


# Who a delivery goes to, by channel: exactly one recipient, of the channel's kind.
ONE_RECIPIENT = Q(channel=Channel.EMAIL, user__isnull=False, endpoint__isnull=True) | Q(
    channel=Channel.WEBHOOK, user__isnull=True, endpoint__isnull=False
)


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def emails(self) -> DeliveryQuerySet:
        return self.filter(channel=Channel.EMAIL)

    def webhooks(self) -> DeliveryQuerySet:
        return self.filter(channel=Channel.WEBHOOK)


class Delivery(models.Model):
    """One message on one channel to one recipient: what, to whom, its state, its attempts and
    when the next is due. Sent by one sender at a time (`portal.claims`); a webhook whose
    sender died is sent again (receivers drop a repeated `webhook-id`), an e-mail is not (in
    case it went out)."""

    Channel = Channel

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Not sent"

    channel = models.CharField(max_length=10, choices=Channel.choices)
    # The recipient: a person (e-mail) or an endpoint (webhook).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    endpoint = models.ForeignKey(
        "api_app.WebhookEndpoint",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
        db_index=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a task was last asked to send it (the sweep asks again for a lost one).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # The worker sending it now (`portal.claims`), so that two never send it at once.
    claim_token = models.CharField(max_length=32, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Delivered, failed for good or dropped (an e-mail's "sent at" when delivered).
    finished_at = models.DateTimeField(null=True, blank=True)

    # E-mail: the address it went to, its subject, the account and run it tells of.
    recipient = models.EmailField(max_length=254, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    query = models.ForeignKey(
        Query, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    event_count = models.PositiveIntegerField(default=0)
    # An alert's id from before deliveries were one table: its Message-ID stays the same.
    legacy_id = models.PositiveIntegerField(null=True, blank=True, editable=False)

    # Webhook: the event's id and type, the exact JSON text signed and sent on every attempt,
    # a test (one attempt, never counted against the endpoint), the receiver's last status.
    event_id = models.CharField(max_length=100, blank=True)
    event_type = models.CharField(max_length=60, blank=True)
    body = models.TextField(blank=True)
    is_test = models.BooleanField(default=False)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.CheckConstraint(condition=ONE_RECIPIENT, name="delivery_one_recipient"),
            # An event id is sent once per endpoint (test events and events pruned since
            # included), whatever announces it again.
            models.UniqueConstraint(
                fields=["endpoint", "event_id"],
                condition=Q(channel=Channel.WEBHOOK),
                name="delivery_webhook_once_per_event_id",
            ),
        ]
        indexes = [
            # The sweep: deliveries waiting for a (re)try that is due.
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_due"),
            # An endpoint's delivery log, newest first.
            models.Index(fields=["endpoint", "created_at"], name="delivery_endpoint_time"),
            # A person's recent e-mails (the alert settings page).
            models.Index(fields=["user", "created_at"], name="delivery_user_time"),
        ]

    def __str__(self) -> str:
        if self.channel == Channel.EMAIL:
            return f"#{self.pk} to {self.recipient}: {self.subject}"
        return f"{self.event_type} {self.event_id} → {self.endpoint_id}"

    @property
    def sent_at(self) -> datetime | None:
        return self.finished_at if self.status == self.Status.SUCCEEDED else None

    @property
    def status_words(self) -> str:
        """The status as the alert settings page says it of an e-mail."""
        if self.status == self.Status.PENDING and self.attempts:
            return "Waiting to retry"
        if self.status == self.Status.FAILED and self.channel == Channel.EMAIL:
            return "Not delivered"
        return str(self.get_status_display())

    def message_key(self) -> str:
        """What an e-mail's Message-ID is made of: the same for every attempt (mail systems
        drop a duplicate), and an alert's from before kept."""
        return f"alert-{self.legacy_id or self.pk}"


class DeliveryEvent(models.Model):
    """An event a delivery tells of. The recipient is repeated from the delivery for the
    constraints: one person, or one endpoint, is told of one event once."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="links")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="delivery_links")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    endpoint = models.ForeignKey(
        "api_app.WebhookEndpoint",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=ONE_RECIPIENT, name="deliveryevent_one_recipient"),
            # Never told twice of one event, whatever runs twice.
            models.UniqueConstraint(
                fields=["channel", "user", "event"], name="deliveryevent_once_per_person"
            ),
            models.UniqueConstraint(
                fields=["channel", "endpoint", "event"], name="deliveryevent_once_per_endpoint"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id}: {self.event_id}"

    @classmethod
    def of(cls, delivery: Delivery, event: Any) -> DeliveryEvent:
        return cls(
            delivery=delivery,
            event=event,
            channel=delivery.channel,
            user_id=delivery.user_id,
            endpoint_id=delivery.endpoint_id,
        )


class DeliveryAttempt(models.Model):
    """One attempt of a delivery and what came of it (a webhook's HTTP status and the start of
    its answer; an e-mail's mail server's refusal)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # The start of the receiver's answer, for whoever debugs it.
    response_body = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300
