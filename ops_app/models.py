"""What the operations side keeps of its own: latency histograms, aggregated per hour.

One row per hour and label set, with a count, a sum and a count per fixed bucket, each
incremented in SQL (F() expressions) by the signal receivers in `recording.py`. Every worker
and web process on every host adds to the same rows, so `/metrics` and the operations page
read totals from the database, whichever process answers; and the rows stay few (an hour ×
server × endpoint × outcome), whatever the traffic. Pruning results never touches them.
"""

from __future__ import annotations

from django.db import models

# Upper bounds (seconds) of the histogram buckets, shared by upstream calls and query steps:
# from a quick answer to a login with its captcha (tens of seconds) and a full container
# scroll (minutes). A duration above the last bound is counted in `count` only (+Inf).
BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BUCKET_FIELDS: tuple[str, ...] = tuple(f"b{index:02d}" for index in range(len(BUCKETS)))


def bucket_field(seconds: float) -> str | None:
    """The field counting a duration (None: above every bound)."""
    for bound, field in zip(BUCKETS, BUCKET_FIELDS, strict=True):
        if seconds <= bound:
            return field
    return None


class LatencyHistogram(models.Model):
    """Count, sum and per-bucket counts (not cumulative) of the durations seen in one hour."""

    hour = models.DateTimeField(help_text="The hour the durations were seen in (its start).")
    count = models.PositiveBigIntegerField(default=0)
    sum_seconds = models.FloatField(default=0)
    b00 = models.PositiveBigIntegerField("≤ 0.1 s", default=0)
    b01 = models.PositiveBigIntegerField("≤ 0.25 s", default=0)
    b02 = models.PositiveBigIntegerField("≤ 0.5 s", default=0)
    b03 = models.PositiveBigIntegerField("≤ 1 s", default=0)
    b04 = models.PositiveBigIntegerField("≤ 2.5 s", default=0)
    b05 = models.PositiveBigIntegerField("≤ 5 s", default=0)
    b06 = models.PositiveBigIntegerField("≤ 10 s", default=0)
    b07 = models.PositiveBigIntegerField("≤ 30 s", default=0)
    b08 = models.PositiveBigIntegerField("≤ 60 s", default=0)
    b09 = models.PositiveBigIntegerField("≤ 120 s", default=0)
    b10 = models.PositiveBigIntegerField("≤ 300 s", default=0)

    class Meta:
        abstract = True

    def bucket_counts(self) -> list[int]:
        return [getattr(self, field) for field in BUCKET_FIELDS]


class UpstreamCallStat(LatencyHistogram):
    """Upstream calls of one hour to one server's endpoint with one outcome."""

    server = models.CharField(max_length=200, help_text="scheme://host:port")
    endpoint = models.CharField(max_length=100)
    outcome = models.CharField(max_length=60, help_text='"ok" or the error class raised')

    class Meta:
        ordering = ["-hour", "server", "endpoint", "outcome"]
        constraints = [
            # One row per hour and labels: the receivers' upsert relies on it.
            models.UniqueConstraint(
                fields=["hour", "server", "endpoint", "outcome"], name="upstreamcallstat_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.endpoint} {self.outcome}: {self.count}"


class StepStat(LatencyHistogram):
    """Query steps of one hour of one kind and step with one outcome."""

    kind = models.CharField(max_length=20)
    step = models.CharField(max_length=40)
    outcome = models.CharField(max_length=20)

    class Meta:
        ordering = ["-hour", "kind", "step", "outcome"]
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "kind", "step", "outcome"], name="stepstat_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.kind}/{self.step} {self.outcome}: {self.count}"


class NoRows(models.Manager["Operations"]):
    """Operations has no table: every query of it is empty, and never reaches the database."""

    def get_queryset(self) -> models.QuerySet[Operations]:
        return super().get_queryset().none()


class Operations(models.Model):
    """No table: the operations page in the admin, and the permission that opens it."""

    objects = NoRows()

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_operations", "Can view the operations page")]
        verbose_name = "operations page"
        verbose_name_plural = "operations page"

    def __str__(self) -> str:
        return "Operations"
