"""A booking: one person's request to book one import container's pickup slot in E-Modal.

Its life (the README's "Booking a slot" draws it):

    checking ─▶ choose_slot ─confirm─▶ sending ─200, seen in the appointments─▶ booked
                (old slots: checking)     │      200, not seen ─▶ not_confirmed
                                          │      200, sheet unreadable ─▶ unverified
                                          ├─ 400 missing fields, or never sent ─▶ failed
                                          └─ anything else ─▶ unknown ─seen in a later read─▶ booked
    checking, choose_slot ─▶ cancelled;   checking ─no slot─▶ failed
    unknown, unverified, not_confirmed ─a person settles it─▶ booked / failed

`make_appointment` is sent only by the one worker that moves a `sending` booking's `sent_at` from
empty to now (a conditional UPDATE), so nothing can send it twice for one confirmation.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from queries_app.models import Query, QueryFile
from sessions_app.models import Account


class BookingQuerySet(models.QuerySet["Booking"]):
    def open(self) -> BookingQuerySet:
        return self.filter(state__in=Booking.OPEN_STATES)

    def visible_to(self, user: Any) -> BookingQuerySet:
        if user.is_staff and user.has_perm("bookings_app.view_booking"):
            return self
        return self.filter(account__user=user)


class Booking(models.Model):
    class State(models.TextChoices):
        CHECKING = "checking", "Checking the slots"
        CHOOSE_SLOT = "choose_slot", "Choose a slot"
        SENDING = "sending", "Sent to E-Modal, being verified"
        BOOKED = "booked", "Booked (verified)"
        NOT_CONFIRMED = "not_confirmed", "Not confirmed: look in E-Modal"
        UNKNOWN = "unknown", "Outcome unknown: look in E-Modal"
        UNVERIFIED = "unverified", "Unverified: the appointments could not be read"
        FAILED = "failed", "Not booked"
        CANCELLED = "cancelled", "Cancelled"

    # One of these at a time per container of an account (a constraint, so that a double
    # click, a second tab or a second person finds the booking under way): an unknown or
    # unverified booking may have booked, so it blocks another until it is settled.
    OPEN_STATES = (
        State.CHECKING,
        State.CHOOSE_SLOT,
        State.SENDING,
        State.UNKNOWN,
        State.UNVERIFIED,
    )
    # What a person may settle by looking in E-Modal.
    SETTLEABLE_STATES = (State.UNKNOWN, State.UNVERIFIED, State.NOT_CONFIRMED)

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="bookings")
    container_number = models.CharField(max_length=20)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.CHECKING)
    # What the page will be given (the account's and the board's values when it was asked).
    terminal_code = models.CharField(max_length=20)
    terminal = models.CharField("terminal (E-Modal name)", max_length=120)
    move_type = models.CharField(max_length=20)
    trucking_company = models.CharField(max_length=120)
    truck_plate = models.CharField(max_length=20)
    own_chassis = models.BooleanField(default=False)
    pin_code = models.CharField("PIN", max_length=20, blank=True)
    # The fresh check and the slots it offered, exactly as E-Modal wrote them.
    check_query = models.ForeignKey(
        Query, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    slots = models.JSONField(default=list, blank=True)
    slots_seen_at = models.DateTimeField(null=True, blank=True)
    # The confirmation and the one request.
    slot = models.CharField(max_length=200, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    # The fields sent (no session, no secret) and the upstream's answer (status and body,
    # secrets removed).
    request = models.JSONField(default=dict, blank=True)
    answer = models.JSONField(default=dict, blank=True)
    # The verification: the appointments read, its sheet, and what it found.
    verify_query = models.ForeignKey(
        Query, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sheet = models.ForeignKey(
        QueryFile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    # Appointments reads asked for this booking (an unknown outcome is read again, a few times).
    reads = models.PositiveSmallIntegerField(default=0)
    appointment_number = models.CharField(max_length=40, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BookingQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("book_appointments", "Can book appointments")]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "container_number"],
                condition=Q(
                    state__in=["checking", "choose_slot", "sending", "unknown", "unverified"]
                ),
                name="booking_one_open_per_container",
            ),
            models.CheckConstraint(
                condition=~Q(state="sending") | ~Q(slot=""),
                name="booking_sent_with_a_slot",
            ),
        ]
        indexes = [
            # A container's bookings (its page, the board), newest first.
            models.Index(
                fields=["account", "container_number", "created_at"], name="booking_container"
            ),
        ]

    def __str__(self) -> str:
        return f"Booking #{self.pk} {self.container_number} ({self.state})"

    @property
    def sent_at_known(self) -> bool:
        """Whether the request went out (as far as this instance was read): only then does a
        new state concern the container's appointment."""
        return self.sent_at is not None or self.state in (
            self.State.SENDING,
            *self.SETTLEABLE_STATES,
        )

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    def sent_fields(self) -> list[tuple[str, str]]:
        """Every value that is (or will be) sent, as the confirmation step shows it."""
        return [
            ("Container", self.container_number),
            ("Terminal", f"{self.terminal} ({self.terminal_code})"),
            ("Move type", self.move_type),
            ("Trucking company", self.trucking_company),
            ("Truck plate", self.truck_plate),
            ("PIN", self.pin_code or "none (E-Modal fills in 1111)"),
            ("Own chassis", "yes" if self.own_chassis else "no"),
        ]
