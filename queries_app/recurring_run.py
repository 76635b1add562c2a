"""The recurring run: a query set to run again and again (by people on the board, or by
`run_queries --schedule`). Kept by this app, which starts its queries; its table keeps the
name it was made with."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_q.models import Schedule

from sessions_app.models import Account

from .registry import kind_choices

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class RecurringRun(models.Model):
    """A query people (or `run_queries --schedule`) set to run again and again: on these days
    of the week, at these times of day in this zone. It drives one django-q2 schedule made by
    the portal's code (`recurring.py`), which fires at the next of those times."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="recurring_runs")
    kind = models.CharField(max_length=20, choices=kind_choices)
    params = models.JSONField(default=dict, blank=True)
    # 0 = Monday ... 6 = Sunday; times as "HH:MM", sorted.
    weekdays = models.JSONField(default=list)
    times = models.JSONField(default=list)
    time_zone = models.CharField(max_length=64)
    paused = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when made by the run_queries command.",
    )
    schedule = models.OneToOneField(
        Schedule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_query = models.ForeignKey(
        "queries_app.Query", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "queries_app"
        db_table = "containers_app_recurringrun"  # where the board's app made it
        ordering = ["account", "kind", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.account} ({self.describe()})"

    def describe(self) -> str:
        days = self.weekdays or []
        if sorted(days) == list(range(7)):
            when = "every day"
        elif sorted(days) == list(range(5)):
            when = "Mon–Fri"
        else:
            when = ", ".join(WEEKDAYS[d] for d in sorted(days))
        return f"{when} at {', '.join(self.times)} {self.time_zone}"
