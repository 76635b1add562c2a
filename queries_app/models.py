from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from sessions_app.models import Account

from .recurring_run import WEEKDAYS, RecurringRun  # noqa: F401 - the app's models
from .registry import kind_choices
from .terminal_zones import TERMINAL_TIME_ZONE, terminal_zone, validate_time_zone


def params_key(params: dict[str, Any]) -> str:
    """A fixed-size key of a query's cleaned parameters: equal parameters, equal key. (A unique
    index on the parameters themselves would fail on a bulk-info list longer than PostgreSQL's
    index row limit.)"""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class QueryQuerySet(models.QuerySet["Query"]):
    def live(self) -> QueryQuerySet:
        return self.filter(status__in=Query.LIVE_STATUSES)

    def visible_to(self, user: models.Model) -> QueryQuerySet:
        """Staff allowed to view queries (as in the admin) see every query; anyone else only
        those of their own account."""
        from .access import sees_others

        return self if sees_others(user) else self.filter(account__user=user)


class Query(models.Model):
    """One request for data, run as a sequence of short steps. The row is the source of
    truth: the next step to run, its progress, and who (which task) is running it now."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    LIVE_STATUSES = (Status.PENDING, Status.RUNNING)
    TERMINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="queries")
    # One of the kinds in the registry (`queries_app.kinds`): a callable, so that a kind added
    # there needs no migration.
    kind = models.CharField(max_length=20, choices=kind_choices)
    params = models.JSONField(default=dict, blank=True)
    # Set by `services.start_query`. NULL (rows made any other way, ended duplicates from
    # before the key existed) stays outside the one-live-query constraint below.
    params_key = models.CharField(  # noqa: DJ001 - NULL, unlike "", is never a duplicate
        max_length=64, null=True, blank=True, editable=False
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # the trigger-limit index below starts with it
    )
    batch = models.CharField(
        max_length=64, blank=True, help_text="Set on queries started together."
    )

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    step = models.CharField(max_length=40, blank=True, help_text="The next step to run.")
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    # What later steps need from earlier ones (e.g. the containers to check).
    state = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # What the query's page should say though the query went on (e.g. a part given up on).
    notes = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)

    # Claim on the query while a task runs one of its steps (conditional UPDATE, as for
    # the account lease). A claim past its expiry belongs to a dead worker.
    claim_token = models.CharField(max_length=64, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # A step that failed for a passing reason is retried by the sweep after this moment.
    retry_at = models.DateTimeField(null=True, blank=True)
    # Why the next step was not tried yet (every browser in use, an open breaker, a spent
    # captcha budget): waiting is not one of its tries. Empty when not waiting.
    waiting_for = models.CharField(max_length=255, blank=True)
    step_failures = models.PositiveSmallIntegerField(default=0)
    # Every claim counts, including those of workers that were killed mid-step.
    attempts = models.PositiveIntegerField(default=0)
    # Estimated upstream seconds still to go (`steps.work_left`): which step runs next.
    work_left = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = QueryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "queries"
        permissions = [("run_query", "Can start queries for any account")]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress_done__lte=models.F("progress_total")) | Q(progress_total=0),
                name="query_progress_within_total",
            ),
            # One live query per account, kind and parameters, even when two web processes
            # start the same one at once (start_query then returns the one that won).
            models.UniqueConstraint(
                fields=["account", "kind", "params_key"],
                condition=Q(status__in=["pending", "running"]),  # LIVE_STATUSES
                name="query_one_live_per_account_kind_params",
            ),
        ]
        indexes = [
            # "My queries" and change detection's "previous successful query of this kind".
            models.Index(fields=["account", "kind", "status", "created_at"]),
            # The stale-query sweep.
            models.Index(fields=["status", "claim_expires_at"]),
            # The trigger limit: the queries a person started within the window.
            models.Index(fields=["started_by", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} for {self.account}"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    @property
    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return int(100 * self.progress_done / self.progress_total)


class QueryResult(models.Model):
    """What a query produced (a row with a `query` key to it): retention deletes it with its
    query's results (`ops_app.retention.result_models` finds every subclass)."""

    class Meta:
        abstract = True


class QueryFile(QueryResult):
    """A file the upstream produced for a query (sheet, screenshot), kept with it."""

    class Kind(models.TextChoices):
        CONTAINERS_SHEET = "containers_sheet", "Containers sheet"
        APPOINTMENTS_SHEET = "appointments_sheet", "Appointments sheet"
        SCREENSHOT = "screenshot", "Screenshot"

    # No index of its own: the unique (query, …) index below starts with it, and a second
    # one misleads PostgreSQL's planner on large queries.
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="files", db_index=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200)
    file = models.FileField(upload_to="queries/%Y/%m/")
    size = models.PositiveIntegerField(default=0)
    content_type = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["query", "name"], name="queryfile_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class ContainerRow(QueryResult):
    """One row of the containers sheet, typed."""

    # No index of its own: the unique (query, …) index below starts with it, and a second
    # one misleads PostgreSQL's planner on large queries.
    query = models.ForeignKey(
        Query, on_delete=models.CASCADE, related_name="containers", db_index=False
    )
    container_number = models.CharField(max_length=20)
    trade_type = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=60, blank=True)
    holds = models.BooleanField(null=True)
    pregate_ticket = models.CharField(max_length=40, blank=True)
    pregate_status = models.CharField(max_length=60, blank=True)
    gate_status = models.CharField(max_length=40, blank=True)
    origin = models.CharField(max_length=80, blank=True)
    destination = models.CharField(max_length=80, blank=True)
    current_location = models.CharField(max_length=80, blank=True)
    line = models.CharField(max_length=40, blank=True)
    vessel_name = models.CharField(max_length=80, blank=True)
    vessel_code = models.CharField(max_length=20, blank=True)
    voyage = models.CharField(max_length=20, blank=True)
    size_type = models.CharField(max_length=20, blank=True)
    # E-Modal shows no amount here: `info` (fees exist, in a popup on its page) or nothing.
    fees = models.CharField(max_length=40, blank=True)
    # The LFD/GTD cell is a range: the last free day, then the good-through date.
    last_free_day = models.DateField(null=True, blank=True)
    good_through = models.DateField("good through", null=True, blank=True)
    tags = models.CharField(max_length=200, blank=True)
    raw = models.JSONField(default=dict)

    class Meta:
        ordering = ["container_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["query", "container_number"], name="containerrow_unique_per_query"
            ),
        ]

    def __str__(self) -> str:
        return self.container_number


class ContainerInfo(QueryResult):
    """What the upstream said about one container: bulk info, a timeline or a booking
    number. A per-container failure is kept here with its reason."""

    # No index of its own: the unique (query, …) index below starts with it, and a second
    # one misleads PostgreSQL's planner on large queries.
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="infos", db_index=False)
    container_number = models.CharField(max_length=20)
    trade_type = models.CharField(max_length=10, blank=True)
    success = models.BooleanField(default=True)
    error = models.CharField(max_length=255, blank=True)
    passed_pregate = models.BooleanField(null=True)
    pregate_details = models.CharField(max_length=255, blank=True)
    milestones = models.JSONField(default=list, blank=True)
    manifested_at = models.DateTimeField(null=True, blank=True)
    departed_terminal_at = models.DateTimeField(null=True, blank=True)
    empty_received_at = models.DateTimeField(null=True, blank=True)
    booking_number = models.CharField(max_length=40, blank=True)
    # Timeline labels the portal does not know (kept in `milestones` too): flagged for staff.
    unknown_milestones = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["container_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["query", "container_number"], name="containerinfo_unique_per_query"
            ),
        ]

    def __str__(self) -> str:
        return self.container_number


class AppointmentCheck(QueryResult):
    """Available appointment slots for one container (nothing is ever booked)."""

    class Outcome(models.TextChoices):
        AVAILABLE = "available", "Slots available"
        NONE = "none", "No slots"
        # The page answered, but nothing in the answer could be read as slots or no slots (a
        # calendar not found, only unreadable slot texts): neither available nor none.
        UNKNOWN = "unknown", "Unknown"
        FAILED = "failed", "Failed"
        # The portal did not send it (no terminal name, no booking number, the account's
        # trucking company or plate refused): a failed check would poison the browser.
        NOT_SENT = "not_sent", "Not sent"

    # No index of its own: the unique (query, …) index below starts with it, and a second
    # one misleads PostgreSQL's planner on large queries.
    query = models.ForeignKey(
        Query, on_delete=models.CASCADE, related_name="checks", db_index=False
    )
    # Empty for a single export check by booking number.
    container_number = models.CharField(max_length=20, blank=True)
    trade_type = models.CharField(max_length=10, blank=True)
    move_type = models.CharField(max_length=20, blank=True)
    # The sheet's terminal code and the E-Modal name sent for it.
    terminal_code = models.CharField(max_length=20, blank=True)
    terminal = models.CharField(max_length=120, blank=True)
    booking_number = models.CharField(max_length=40, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.NONE)
    success = models.BooleanField(default=True)
    error = models.CharField(max_length=255, blank=True)
    slots = models.JSONField(default=list, blank=True, help_text="ISO start times.")
    slot_texts = models.JSONField(default=list, blank=True)
    # Texts offered as times that are not slots the portal can read: shown, never counted.
    unreadable_times = models.JSONField(default=list, blank=True)
    slot_count = models.PositiveIntegerField(default=0)
    earliest_slot = models.DateTimeField(null=True, blank=True)
    calendar_found = models.BooleanField(null=True)
    # What a reader of the result should know beside it (unreadable times, a pregate status
    # not known when the move type was chosen).
    note = models.CharField(max_length=255, blank=True)
    screenshot = models.ForeignKey(
        QueryFile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["container_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["query", "container_number"], name="appointmentcheck_unique_per_query"
            ),
        ]

    def __str__(self) -> str:
        return self.container_number

    def outcome_text(self) -> str:
        """The outcome as the check saw it: an export check only finds a calendar (or not),
        it counts no slots."""
        if self.calendar_found is not None and self.outcome in (
            self.Outcome.AVAILABLE,
            self.Outcome.NONE,
            self.Outcome.UNKNOWN,
        ):
            # Not finding the calendar is an automation miss, not "no availability".
            return "Calendar found" if self.calendar_found else "Calendar not found (unknown)"
        return self.get_outcome_display()


class AppointmentRow(QueryResult):
    """One row of the account's appointments sheet."""

    # No index of its own: the unique (query, …) index below starts with it, and a second
    # one misleads PostgreSQL's planner on large queries.
    query = models.ForeignKey(
        Query, on_delete=models.CASCADE, related_name="appointments", db_index=False
    )
    row_number = models.PositiveIntegerField()
    appointment_number = models.CharField(max_length=40, blank=True)
    container_number = models.CharField(max_length=20, blank=True)
    trade_type = models.CharField(max_length=10, blank=True)
    terminal = models.CharField(max_length=80, blank=True)
    move_type = models.CharField(max_length=20, blank=True)
    appointment_date = models.DateField(null=True, blank=True)
    time_slot = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=40, blank=True)
    raw = models.JSONField(default=dict)

    class Meta:
        ordering = ["row_number"]
        constraints = [
            models.UniqueConstraint(fields=["query", "row_number"], name="appointmentrow_unique"),
        ]

    def __str__(self) -> str:
        return self.appointment_number or f"row {self.row_number}"


class TerminalQuerySet(models.QuerySet["Terminal"]):
    def unnamed(self) -> TerminalQuerySet:
        return self.filter(name="")


class Terminal(models.Model):
    """A terminal code as E-Modal's sheets write it (`TTI`), and the name its appointment page
    offers for it (`Total Terminals Intl LLC`): a check is sent with the name, never the code.
    Codes seen in sheets without a name are added with none, for staff to fill in."""

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(
        "E-Modal name",
        max_length=120,
        blank=True,
        help_text="Exactly as the appointment page's terminal list shows it.",
    )
    active = models.BooleanField(
        default=True, help_text="Inactive: checks for this terminal are not sent."
    )
    # E-Modal writes a terminal's appointment slots in the terminal's own local time.
    time_zone = models.CharField(
        max_length=64,
        default=TERMINAL_TIME_ZONE,
        validators=[validate_time_zone],
        help_text="The terminal's local time zone (its slots are local times there).",
    )
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TerminalQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code}: {self.name}" if self.name else self.code

    @property
    def zone(self) -> ZoneInfo:
        return terminal_zone(self.time_zone)
