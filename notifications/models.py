"""Subscriptions and deliveries.

Who wants to hear of which events, and how: a person's alert preferences (the e-mail channel;
the containers they watch are the board's `Watch`) and the webhook endpoints people register
(the webhook channel). Who *may* hear is `audience`'s.

What was sent: one `Delivery` table for every channel. A delivery is one message to one
recipient — an e-mail to a person (a digest of one run's events), or one event's signed POST to
a webhook endpoint — with its state, its attempts and when it is next tried. The events it
tells of are its links (`DeliveryEvent`): a recipient is never told twice of one event (a
unique constraint per channel, recipient and event). Each attempt is one row of the log
(`DeliveryAttempt`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from containers_app.models import LFD_DUE_MAX_DAYS
from outbox.models import Event
from outbox.vocabulary import EventType
from queries_app.models import Query
from sessions_app.fields import SecretCharField
from sessions_app.models import Account

# The events a person may be alerted about (query.finished is for webhooks only).
ALERT_EVENT_TYPES = [
    EventType.LFD_CHANGED,
    EventType.LFD_DUE,
    EventType.HOLDS_RELEASED,
    EventType.PREGATE_DONE,
    EventType.SLOT_APPEARED,
    EventType.CONTAINER_NEW,
    EventType.CONTAINER_GONE,
    EventType.QUERY_FAILED,
    EventType.CREDENTIALS_REJECTED,
]
DEFAULT_ALERT_EVENTS = [
    EventType.LFD_CHANGED.value,
    EventType.LFD_DUE.value,
    EventType.HOLDS_RELEASED.value,
    EventType.SLOT_APPEARED.value,
    # A dead account must not look healthy: its person hears of it unless they opt out.
    EventType.QUERY_FAILED.value,
    EventType.CREDENTIALS_REJECTED.value,
    # A booking's verdict reaches the person whose account booked (and who watches it).
    EventType.APPOINTMENT_BOOKED.value,
    EventType.APPOINTMENT_NOT_CONFIRMED.value,
    EventType.APPOINTMENT_UNKNOWN.value,
]
ACCOUNT_EVENT_TYPES = {EventType.QUERY_FAILED.value, EventType.CREDENTIALS_REJECTED.value}

# The longest URL a webhook endpoint may have.
URL_MAX_LENGTH = 2000


class AlertPreference(models.Model):
    """What a person wants to hear about, and how. A person without a row has the defaults:
    e-mail (when they have an address) on LFD set or changed, LFD within 2 days, holds
    released, slot appeared, a failed run and credentials rejected, for all their containers."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        OFF = "off", "Off"

    class Scope(models.TextChoices):
        ALL = "all", "All my containers"
        WATCHED = "watched", "Only containers I watch (★)"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_preference"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    events = models.JSONField(default=list, blank=True)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    lfd_due_days = models.PositiveSmallIntegerField(default=2)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Made by the board's app, whose table it keeps (moved without touching its rows).
        db_table = "containers_app_alertpreference"
        constraints = [
            models.CheckConstraint(
                condition=Q(lfd_due_days__lte=LFD_DUE_MAX_DAYS), name="alertpref_lfd_days_max"
            ),
        ]

    def __str__(self) -> str:
        return f"alerts of {self.user}"

    @classmethod
    def defaults_for(cls, user: Any) -> AlertPreference:
        return cls(user=user, events=list(DEFAULT_ALERT_EVENTS))


def preferences_for(user: Any) -> AlertPreference:
    """The person's preferences: their row, or the defaults (not saved)."""
    try:
        return user.alert_preference
    except AlertPreference.DoesNotExist:
        return AlertPreference.defaults_for(user)


class WebhookEndpoint(models.Model):
    """A URL a user registered to be sent events (Standard Webhooks: signed with its secret)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    # Checked by the service (`endpoints.clean_url`): http(s), no credentials, public.
    url = models.CharField("URL", max_length=URL_MAX_LENGTH)
    description = models.CharField(max_length=200, blank=True)
    # The EventType values it receives.
    events = models.JSONField(default=list)
    # "whsec_" + base64 of 32 random bytes: the signing key, shared with the receiver, so it
    # cannot be hashed; stored encrypted (FIELD_ENCRYPTION_KEY) and shown once.
    secret = SecretCharField("signing secret", max_length=100)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Made by the API's app, whose table it keeps (moved without touching its rows).
        db_table = "api_app_webhookendpoint"
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook endpoint"

    SECRET_FIELDS = ("secret",)

    def __str__(self) -> str:
        return self.url


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
        WebhookEndpoint,
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
        WebhookEndpoint,
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
