"""Retention of what the board keeps about the past: history entries, and containers long gone
from their account's list — after what the caller gives first (the operations' prune gives the
finished alerts and the events: `notifications.retention`). Run daily with the results' prune
(`ops_app.tasks.prune_results`, BOARD_RETENTION_DAYS) and by `manage.py prune_results`.

Kept whatever their age: every container on its account's list (with its current state).

Each batch is one short transaction deleting at most `batch_size` rows of one table, so that
runs ending meanwhile (which write the same tables under the account's lock) wait one batch at
most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import models, transaction
from django.utils import timezone

from history.models import HistoryEntry

from .models import Container

BATCH_SIZE = 2000


@dataclass
class BoardPruneReport:
    cutoff: datetime
    dry_run: bool = False
    # Rows deleted (or that would be) by table, cascades included.
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


Prunable = Callable[[datetime], list[tuple[str, models.QuerySet]]]


def prunable(cutoff: datetime) -> list[tuple[str, models.QuerySet]]:
    """What goes, in the order it goes."""
    return [
        ("history", HistoryEntry.objects.filter(observed_at__lt=cutoff)),
        ("gone containers", Container.objects.filter(gone_at__lt=cutoff)),
    ]


def prune_board(
    *,
    older_than_days: int,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
    on_batch: Callable[[str, int], None] | None = None,
    first: Prunable | None = None,
) -> BoardPruneReport:
    """Delete the board's records older than `older_than_days` days (see the module's
    docstring), after `first`'s. With `dry_run`, only count."""
    if older_than_days < 1 or batch_size < 1:
        raise ValueError("The board keeps at least a day; the batch size is 1 or more.")
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    report = BoardPruneReport(cutoff=cutoff, dry_run=dry_run)
    steps = [*(first(cutoff) if first else []), *prunable(cutoff)]
    for name, rows in steps:
        if dry_run:
            report.tables[name] = rows.count()
            continue
        deleted = 0
        while True:
            with transaction.atomic():
                keys = list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size])
                if not keys:
                    break
                _, by_model = rows.model.objects.filter(pk__in=keys).delete()
            count = sum(by_model.values())
            deleted += count
            if on_batch is not None:
                on_batch(name, count)
        report.tables[name] = deleted
    return report
