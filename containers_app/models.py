"""The containers board: each container's latest known state (merged from the runs that saw
it), who watches it. (What runs observed changing is the `history` app's entries; what people
want to hear of and the alerts sent are the notifications app's; the recurring runs people set
on the board are the queries app's.) Its events are the outbox's rows (`outbox.models.Event`,
named here too)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from outbox.models import Event  # noqa: F401  (the outbox's, named here too)
from queries_app.access import sees_others
from queries_app.models import Query, Terminal
from sessions_app.models import Account

from .verdict import Pickup

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

# Container events whose last free day is this many days away or less (today included) are
# recorded as `container.lfd_due`; each person's alert takes those within their own N.
LFD_DUE_MAX_DAYS = 7


# Staff with this permission see every account's board (queries_app.access has the rules).
VIEW_CONTAINERS = "containers_app.view_container"


def days_left(last_free_day: date | None, today: date) -> int | None:
    return None if last_free_day is None else (last_free_day - today).days


class ContainerQuerySet(models.QuerySet["Container"]):
    def visible_to(self, user: Any) -> ContainerQuerySet:
        """Staff with the permission see every account's containers; anyone else only those of
        their own account."""
        return self if sees_others(user, VIEW_CONTAINERS) else self.filter(account__user=user)

    def present(self) -> ContainerQuerySet:
        return self.filter(gone_at__isnull=True)


class Container(models.Model):
    """One container of one account as the portal last knew it: the sheet's fields from the
    latest containers or availability run, pregate and booking from the latest details (bulk
    info, timeline, booking number), slots from the latest appointment check — each with the
    run that saw it and when. Maintained when runs end (`board.update_board`), so that the
    board is one indexed read."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="board_containers")
    container_number = models.CharField(max_length=20)

    # From the containers sheet.
    trade_type = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=60, blank=True)
    holds = models.BooleanField(null=True)
    last_free_day = models.DateField(null=True, blank=True)
    good_through = models.DateField("good through", null=True, blank=True)
    pregate_ticket = models.CharField(max_length=40, blank=True)
    pregate_status = models.CharField(max_length=60, blank=True)
    gate_status = models.CharField(max_length=40, blank=True)
    origin = models.CharField(max_length=80, blank=True)
    destination = models.CharField(max_length=80, blank=True)
    current_location = models.CharField(max_length=80, blank=True)
    line = models.CharField(max_length=40, blank=True)
    size_type = models.CharField(max_length=20, blank=True)
    vessel_name = models.CharField(max_length=80, blank=True)
    voyage = models.CharField(max_length=20, blank=True)
    # Where it is picked up or dropped, by the operators' rule (see `board.terminal_code`); the
    # name comes from the Terminal table, so a name staff fill in later shows at once.
    terminal_code = models.CharField(max_length=20, blank=True)
    terminal = models.ForeignKey(
        Terminal, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sheet_query = models.ForeignKey(
        Query, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sheet_seen_at = models.DateTimeField(null=True, blank=True)

    # From container details (bulk info, timeline, booking number).
    passed_pregate = models.BooleanField(null=True)
    booking_number = models.CharField(max_length=40, blank=True)
    details_query = models.ForeignKey(
        Query, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    details_seen_at = models.DateTimeField(null=True, blank=True)
    # The latest timeline shows it out of the terminal (Departed Terminal, Arrived at customer,
    # Empty Received completed); None: no timeline read.
    left_terminal = models.BooleanField(null=True)

    # Whether it still needs a pickup (`verdict.pickup_verdict`), kept up to date by the
    # board's merge so that the board filters, counts and sorts by it in the database.
    pickup = models.CharField(max_length=12, choices=Pickup.choices, default=Pickup.UNKNOWN)

    # From the latest appointment check that said something (slots or none).
    check_outcome = models.CharField(max_length=10, blank=True)
    slot_count = models.PositiveIntegerField(null=True, blank=True)
    earliest_slot = models.DateTimeField(null=True, blank=True)
    # The earliest slot as E-Modal wrote it (a local time at the terminal).
    earliest_slot_text = models.CharField(max_length=200, blank=True)
    check_query = models.ForeignKey(
        Query, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    check_seen_at = models.DateTimeField(null=True, blank=True)
    # The appointment booked from the portal, as its booking last knew it (bookings_app writes
    # it): the slot text, and a word when it is not verified.
    appointment = models.CharField(max_length=240, blank=True)

    # What changed last ({"change": new/changed/gone/back, "fields": {name: [before, after]}}).
    last_change = models.JSONField(default=dict, blank=True)
    last_change_at = models.DateTimeField(null=True, blank=True)
    last_change_query = models.ForeignKey(
        Query, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    first_seen_at = models.DateTimeField(default=timezone.now)
    first_seen_query = models.ForeignKey(
        Query, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set when a full containers sheet no longer lists it (cleared if it comes back).
    gone_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ContainerQuerySet.as_manager()

    class Meta:
        ordering = ["container_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "container_number"], name="container_unique_per_account"
            ),
        ]
        indexes = [
            # The board's default order and its "due within N days" filter, per account.
            models.Index(fields=["account", "last_free_day"], name="container_account_lfd"),
            # The board's default: what needs a pickup, soonest last free day first.
            models.Index(
                fields=["account", "pickup", "last_free_day"], name="container_account_pickup"
            ),
            # The board's "changed since" filter and sort.
            models.Index(fields=["account", "last_change_at"], name="container_account_changed"),
        ]

    def __str__(self) -> str:
        return self.container_number

    def days_left(self, today: date) -> int | None:
        return days_left(self.last_free_day, today)


class BoardMarks(TypedDict):
    """What the board's read adds to each container (`selectors.visible_containers`)."""

    watched: bool


if TYPE_CHECKING:
    # A container as the board reads it: with whether the person reading watches it.
    BoardContainer = WithAnnotations[Container, BoardMarks]


class Watch(models.Model):
    """A person's star on a container."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    container = models.ForeignKey(Container, on_delete=models.CASCADE, related_name="watches")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Also the board's "is it starred" look-up (user first).
            models.UniqueConstraint(fields=["user", "container"], name="watch_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ★ {self.container}"


class Tariff(models.Model):
    """A terminal's demurrage tariff from a day on: what each day past the last free day costs
    a container still waiting for its pickup, in tiers (`TariffTier`). A terminal without one
    has no tariff: the board says so and invents no amount. A later tariff of the same terminal
    takes over from its own date (the days before keep the earlier one's rates)."""

    terminal = models.ForeignKey(Terminal, on_delete=models.CASCADE, related_name="tariffs")
    effective_from = models.DateField(
        "applies from", help_text="The first day charged at these rates."
    )
    free_days = models.PositiveSmallIntegerField(
        default=0,
        help_text="Days after E-Modal's last free day that are still free (usually 0: the last "
        "free day already counts the terminal's free time).",
    )
    note = models.CharField(max_length=200, blank=True, help_text="Where the rates come from.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["terminal__code", "effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["terminal", "effective_from"], name="tariff_one_per_terminal_and_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.terminal.code} from {self.effective_from.isoformat()}"


class TariffTier(models.Model):
    """From the `from_day`-th charged day on (1: the first day after the free time), each day
    costs `daily_rate` — until the next tier's first day."""

    tariff = models.ForeignKey(Tariff, on_delete=models.CASCADE, related_name="tiers")
    from_day = models.PositiveSmallIntegerField(
        "from day", help_text="1 for the first charged day, 5 for the fifth, …"
    )
    daily_rate = models.DecimalField("per day", max_digits=10, decimal_places=2)

    class Meta:
        ordering = ["tariff", "from_day"]
        constraints = [
            models.UniqueConstraint(fields=["tariff", "from_day"], name="tariff_tier_unique_day"),
            models.CheckConstraint(condition=Q(from_day__gte=1), name="tariff_tier_from_day_1"),
            models.CheckConstraint(
                condition=Q(daily_rate__gte=0), name="tariff_tier_rate_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"day {self.from_day}+: {self.daily_rate}/day"
