"""The one change model: what each run observed changing for each container of the board (new,
back, gone, which fields moved; an appointment booked). The board writes it when it merges a
run (`containers_app.board`), a booking when its verdict is known; a container's page shows its
history, a run's page its changes (`HistoryEntry.objects.filter(query=run)`, `query.changes`).

It lives below both apps that read it: the board (containers_app) is built on the queries app,
and a run's page (queries_app) must not import the board. The board's container and the run are
named by string, as the outbox names them."""

from __future__ import annotations

from typing import Any

from django.db import models


class HistoryEntry(models.Model):
    """What one run observed changing for one container: new, back, gone, or which fields moved
    (the container page's history; the run's changes)."""

    class Change(models.TextChoices):
        NEW = "new", "New on the list"
        BACK = "back", "Back on the list"
        CHANGED = "changed", "Changed"
        GONE = "gone", "Gone from the list"
        BOOKING = "booking", "Appointment"

    container = models.ForeignKey(
        "containers_app.Container", on_delete=models.CASCADE, related_name="history"
    )
    # The container's number, kept with the entry: a run's changes are joined to its rows by
    # (query, container number), as its other results are.
    container_number = models.CharField(max_length=20, blank=True)
    # The run that observed it. No index of its own: the (query, container number) index below
    # starts with it.
    query = models.ForeignKey(
        "queries_app.Query",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="changes",
        db_index=False,
    )
    # The run whose observation the board held before this one (what it was compared with):
    # the previous containers sheet for what the sheet tells, the previous details or slot check
    # for theirs. None when unknown (an appointment booked; entries from before it was kept).
    previous_query = models.ForeignKey(
        "queries_app.Query", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    observed_at = models.DateTimeField()
    change = models.CharField(max_length=10, choices=Change.choices)
    # {field name: [before, after]} (JSON values: dates and times as ISO text; the words for
    # the names are `history.labels`).
    fields = models.JSONField(default=dict, blank=True, help_text="field: [before, after]")

    class Meta:
        db_table = "containers_app_historyentry"  # where the board's app made it
        ordering = ["-observed_at", "-id"]
        verbose_name_plural = "history entries"
        indexes = [
            # A container's history, newest first.
            models.Index(fields=["container", "observed_at"], name="history_container_time"),
            # A run's changes (its page's section, column and filter; the API).
            models.Index(fields=["query", "container_number"], name="history_query_container"),
        ]

    def __str__(self) -> str:
        return f"{self.container_number} {self.change} at {self.observed_at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.container_number and self.container_id:
            self.container_number = self.container.container_number
        super().save(*args, **kwargs)
