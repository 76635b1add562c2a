"""Subscriptions — who wants to hear of which events, and how: a person's alert preferences (the
e-mail channel; the containers they watch are the board's `Watch`). Who *may* hear is
`audience`'s; what was sent is the delivery log's."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from containers_app.models import LFD_DUE_MAX_DAYS
from outbox.vocabulary import EventType

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
