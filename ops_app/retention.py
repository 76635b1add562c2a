"""Retention: delete old queries' results (rows and files), in small batches.

Kept: every Query row (the operations page and /metrics count them), each account's latest
successful query of each kind (its latest results), the `keep_last` most recent queries of each
account and kind, and live queries. Session events, the latency histograms and a run's changes
(the board's history, `containers_app/retention.py`) are not results and are not pruned here.

Each batch is one short transaction deleting at most `batch_size` rows of one table, chosen
as a primary-key range: writers on the same tables (running queries) wait at most one batch.
A file is removed from storage after the transaction that deleted its row has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import connection, models, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from queries_app.models import Query, QueryFile, QueryResult

logger = logging.getLogger(__name__)


@cache
def result_models() -> tuple[type[models.Model], ...]:
    """Every model of a query's results (`QueryResult`), each before the results it points to
    (a check refers to its screenshot, a QueryFile: checks go before files)."""
    remaining = [model for model in apps.get_models() if issubclass(model, QueryResult)]
    remaining.sort(key=lambda model: model._meta.label)
    ordered: list[type[models.Model]] = []
    while remaining:
        # Next: a model no other remaining one points to.
        free = next(
            model
            for model in remaining
            if not any(
                field.related_model is model
                for other in remaining
                if other is not model
                for field in other._meta.concrete_fields
                if field.is_relation
            )
        )
        ordered.append(free)
        remaining.remove(free)
    return tuple(ordered)


BATCH_SIZE = 2000
# Queries whose rows are looked for together (the IN list of each batch's SELECT).
QUERY_CHUNK = 500


@dataclass
class TableReport:
    rows: int = 0
    # Estimated: rows × the table's average row size (with its indexes) before the prune.
    bytes: int | None = 0


@dataclass
class PruneReport:
    cutoff: datetime
    dry_run: bool
    queries: int = 0
    tables: dict[str, TableReport] = field(default_factory=dict)
    files: int = 0
    file_bytes: int = 0
    batches: int = 0
    longest_batch_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables.values())


def protected_query_ids(*, keep_last: int) -> set[int]:
    """Queries whose results stay, whatever their age."""
    latest_success = Query.objects.filter(status=Query.Status.SUCCEEDED)
    # The latest successful query per account and kind.
    ranked = latest_success.annotate(
        rank=Window(
            RowNumber(),
            partition_by=[F("account_id"), F("kind")],
            order_by=[F("created_at").desc(), F("id").desc()],
        )
    )
    protected = set(ranked.filter(rank=1).values_list("id", flat=True))
    if keep_last:
        recent = Query.objects.annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("account_id"), F("kind")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        protected |= set(recent.filter(rank__lte=keep_last).values_list("id", flat=True))
    protected |= set(Query.objects.live().values_list("id", flat=True))
    return protected


def prunable_query_ids(*, cutoff: datetime, keep_last: int) -> list[int]:
    protected = protected_query_ids(keep_last=keep_last)
    old = (
        Query.objects.filter(created_at__lt=cutoff)
        .exclude(status__in=Query.LIVE_STATUSES)
        .order_by("id")
        .values_list("id", flat=True)
    )
    return [pk for pk in old.iterator(chunk_size=5000) if pk not in protected]


def table_size(model: type[models.Model]) -> int | None:
    """Bytes the table and its indexes take, where the database can tell."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            return int(cursor.fetchone()[0] or 0)
        if connection.vendor == "sqlite":
            try:
                cursor.execute(
                    "SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                    "(SELECT name FROM sqlite_master WHERE tbl_name = %s)",
                    [table],
                )
            except Exception:  # SQLite built without the dbstat table
                return None
            return int(cursor.fetchone()[0] or 0)
    return None


def _average_row_bytes(model: type[models.Model]) -> float | None:
    size = table_size(model)
    if size is None:
        return None
    count = model._default_manager.count()
    return size / count if count else 0.0


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _delete_batches(
    model: type[models.Model],
    query_ids: list[int],
    *,
    batch_size: int,
    report: PruneReport,
    on_batch: Callable[[str, int], None] | None,
) -> int:
    """Delete the model's rows of these queries, one primary-key range per transaction."""
    deleted = 0
    name = model._meta.db_table
    for chunk in _chunks(query_ids, QUERY_CHUNK):
        while True:
            pks = list(
                model._default_manager.filter(query_id__in=chunk)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not pks:
                break
            batch = model._default_manager.filter(
                query_id__in=chunk, pk__gte=pks[0], pk__lte=pks[-1]
            )
            files: list[tuple[str, int]] = []
            started = timezone.now()
            with transaction.atomic():
                if model is QueryFile:
                    files = list(batch.values_list("file", "size"))
                # Result rows have nothing pointing at them: one DELETE. (A check still
                # pointing at a pruned file, which cannot be one of a pruned query, loses only
                # its link: SET_NULL, as the model says.)
                count = batch.delete()[1].get(model._meta.label, 0)
            seconds = (timezone.now() - started).total_seconds()
            report.batches += 1
            report.longest_batch_seconds = max(report.longest_batch_seconds, seconds)
            deleted += count
            for path, size in files:
                _remove_file(path)
                report.files += 1
                report.file_bytes += size
            if on_batch:
                on_batch(name, count)
    return deleted


def _remove_file(path: str) -> None:
    if not path:
        return
    try:
        default_storage.delete(path)
    except OSError as exc:  # already gone, or unreadable: the row is gone either way
        logger.warning("Could not delete a pruned file: %s", type(exc).__name__)


def prune_results(
    *,
    older_than_days: int,
    keep_last: int = 0,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
    on_batch: Callable[[str, int], None] | None = None,
) -> PruneReport:
    """Delete the results of finished queries created more than `older_than_days` days ago,
    except those kept (see the module's docstring). With `dry_run`, only count."""
    if older_than_days < 0 or keep_last < 0 or batch_size < 1:
        raise ValueError("days and keep-last must be 0 or more, the batch size 1 or more.")
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    report = PruneReport(cutoff=cutoff, dry_run=dry_run)
    query_ids = prunable_query_ids(cutoff=cutoff, keep_last=keep_last)
    report.queries = len(query_ids)
    for model in result_models():
        name = model._meta.db_table
        average = _average_row_bytes(model)
        if dry_run:
            rows = sum(
                model._default_manager.filter(query_id__in=chunk).count()
                for chunk in _chunks(query_ids, QUERY_CHUNK)
            )
            if model is QueryFile:
                for chunk in _chunks(query_ids, QUERY_CHUNK):
                    sizes = list(
                        QueryFile.objects.filter(query_id__in=chunk).values_list("size", flat=True)
                    )
                    report.files += len(sizes)
                    report.file_bytes += sum(sizes)
        else:
            rows = _delete_batches(
                model, query_ids, batch_size=batch_size, report=report, on_batch=on_batch
            )
        report.tables[name] = TableReport(
            rows=rows, bytes=None if average is None else round(rows * average)
        )
    return report
