"""A run's merge from start to end: the run is read (`observe`), merged under the account's
row lock (`merge`) and stored with its events in one transaction; and the hourly due-date events
of every account."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import attrgetter
from typing import Any, cast

from django.db import connections, router, transaction
from django.db.models import Field
from django.utils import timezone

from history.models import HistoryEntry
from outbox.models import Event
from outbox.record import record
from queries_app.models import Query
from queries_app.registry import board_feed
from sessions_app.models import Account
from sessions_app.secret_names import account_secrets

from ..models import LFD_DUE_MAX_DAYS, Container
from ..money import Tariffs
from ..verdict import NEEDS_PICKUP
from .merge import (
    Merge,
    apply_checks,
    apply_details,
    apply_sheet,
    apply_terminals,
    apply_verdicts,
    due_events,
)
from .observe import SHEET_FIELDS, observe

logger = logging.getLogger(__name__)

# Fields written back on a container that changed (everything but its identity).
UPDATE_FIELDS = [
    *SHEET_FIELDS,
    "terminal_code",
    "terminal",
    "passed_pregate",
    "booking_number",
    "details_query",
    "details_seen_at",
    "left_terminal",
    "pickup",
    "check_outcome",
    "slot_count",
    "earliest_slot",
    "earliest_slot_text",
    "check_query",
    "check_seen_at",
    "last_change",
    "last_change_at",
    "last_change_query",
    "gone_at",
    "updated_at",
]


def lock_account(account_id: int) -> None:
    """Serialise board updates of one account (a row lock; SQLite's write lock already does)."""
    list(Account.objects.select_for_update().filter(pk=account_id).values("pk"))


@dataclass
class BoardUpdate:
    events: list[Event] = field(default_factory=list)
    changed: int = 0
    created: int = 0


def update_board(query_id: int, *, today: date | None = None) -> BoardUpdate:
    """Merge a succeeded run into its account's board and record the events it makes, in one
    transaction (the outbox's dispatcher turns them into e-mails and webhooks). Running it
    again for the same query changes and records nothing."""
    query = (
        Query.objects.select_related("account__user")
        .defer(*account_secrets("account"), "state")
        .get(pk=query_id)
    )
    if query.status != Query.Status.SUCCEEDED or not board_feed(query.kind):
        return BoardUpdate()
    observed = observe(query)
    today = today or timezone.localdate()
    with transaction.atomic():
        lock_account(query.account_id)
        rows = {c.container_number: c for c in Container.objects.filter(account=query.account)}
        # The container the board's latest sheet listed: its run is the previous sheet.
        seen = [c for c in rows.values() if c.sheet_seen_at is not None]
        latest_row = max(seen, key=attrgetter("sheet_seen_at"), default=None)
        merge = Merge(
            account=query.account,
            query=query,
            rows=rows,
            baseline=not rows,
            previous_sheet_query_id=latest_row.sheet_query_id if latest_row else None,
        )
        touched: set[str] = set()
        sheet_applied = False
        if observed.sheet is not None:
            latest = latest_row.sheet_seen_at if latest_row else None
            if latest is None or observed.sheet_seen_at >= latest:
                apply_sheet(merge, observed.sheet, observed.sheet_seen_at)
                touched |= observed.sheet.keys()
                sheet_applied = True
            else:
                logger.info("Query %s: an older sheet than the board's, not merged", query.pk)
        apply_details(merge, observed.details, observed.seen_at)
        apply_checks(merge, observed.checks, observed.seen_at)
        touched |= observed.details.keys() & rows.keys()
        apply_terminals(merge, touched, observed.sheet_seen_at)
        apply_verdicts(merge)
        due_events(merge, today, observed.seen_at)
        result = write(merge, sheet_seen_at=observed.sheet_seen_at if sheet_applied else None)
    return result


def write(merge: Merge, *, sheet_seen_at: datetime | None) -> BoardUpdate:
    """Store the merge (inside the caller's transaction) and arrange what follows the commit."""
    query, rows = merge.query, merge.rows
    for number, entry in merge.entries.items():
        container = rows[number]
        container.last_change = entry
        container.last_change_at = merge.entry_times[number]
        container.last_change_query = query
        merge.dirty.add(number)
    now = timezone.now()
    dirty = [rows[n] for n in merge.dirty if not merge.is_new(rows[n])]
    Container.objects.bulk_create(merge.created, batch_size=1000)
    for container in dirty:
        container.updated_at = now
    update_rows(dirty, UPDATE_FIELDS)
    if sheet_seen_at is not None:
        # Every container still listed was seen by this sheet: one statement for all of them.
        Container.objects.present().filter(account=merge.account).update(
            sheet_query=query, sheet_seen_at=sheet_seen_at
        )
    HistoryEntry.objects.bulk_create(
        [
            HistoryEntry(
                container=rows[number],
                container_number=number,
                query=query,
                previous_query_id=merge.entry_previous.get(number),
                observed_at=merge.entry_times[number],
                change=entry["change"],
                fields=entry["fields"],
            )
            for number, entry in merge.entries.items()
        ],
        batch_size=1000,
    )
    events = record_events(merge.recorded_events())
    return BoardUpdate(events=events, changed=len(merge.entries), created=len(merge.created))


def update_rows(containers: list[Container], names: list[str]) -> None:
    """UPDATE these containers' fields with one statement run once per row (executemany).
    bulk_update builds a CASE over every row for every field, which grows with the square of
    the rows (seconds for a few hundred on SQLite)."""
    if not containers:
        return
    connection = connections[router.db_for_write(Container)]
    fields = [cast("Field[Any, Any]", Container._meta.get_field(name)) for name in names]
    quote = connection.ops.quote_name
    columns = [cast(str, field.column) for field in fields]  # concrete fields: never None
    assignments = ", ".join(f"{quote(column)} = %s" for column in columns)
    table, key = quote(Container._meta.db_table), quote(cast(str, Container._meta.pk.column))
    # Only names from the model's options and placeholders go into the text.
    sql = f"UPDATE {table} SET {assignments} WHERE {key} = %s"  # noqa: S608
    params = [
        [field.get_db_prep_save(getattr(c, field.attname), connection) for field in fields] + [c.pk]
        for c in containers
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def record_events(candidates: list[Event]) -> list[Event]:
    """Record the events not recorded yet (by key) in the outbox; returns those recorded. The
    caller holds the account's lock, so no other writer records the same keys meanwhile."""
    return record(candidates)


def record_due_dates(*, today: date | None = None) -> BoardUpdate:
    """The day's `container.lfd_due` events of every account (those no run recorded yet): one
    message per account and person for the lot (the e-mail channel), the overdue ones first
    with what they cost. Run hourly; idempotent."""
    today = today or timezone.localdate()
    horizon = today + timedelta(days=LFD_DUE_MAX_DAYS)
    accounts = (
        Container.objects.present()
        .filter(pickup__in=NEEDS_PICKUP, last_free_day__lte=horizon)
        .order_by()
        .values_list("account_id", flat=True)
        .distinct()
    )
    total = BoardUpdate()
    now = timezone.now()
    tariffs = Tariffs.load()
    for account_id in list(accounts):
        with transaction.atomic():
            lock_account(account_id)
            account = Account.objects.defer(*Account.SECRET_FIELDS).get(pk=account_id)
            due = Container.objects.present().filter(
                account_id=account_id, pickup__in=NEEDS_PICKUP, last_free_day__lte=horizon
            )
            merge = Merge(
                account=account,
                query=None,
                rows={c.container_number: c for c in due},
                baseline=False,
            )
            due_events(merge, today, now, tariffs)
            events = record_events(merge.recorded_events())
        total.events += events
    return total
