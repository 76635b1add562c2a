"""Bringing the board up to date when a run ends: what the run saw is merged into each
container's latest known state, what changed is kept as history, and what people and other
systems may want to hear about is recorded as events — once each (stable keys) — in the
outbox, in the merge's own transaction (the dispatcher turns them into e-mails and webhooks).

Runs by a task (`tasks.update_board`) after the query has ended, never in the query's path.
Each account's update holds the account's row lock, so two runs ending together are merged one
after the other, and a run older than what the board already shows changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from outbox.models import Event
from outbox.record import record
from outbox.vocabulary import EventType
from queries_app.models import AppointmentCheck, Query, QueryFile, Terminal
from queries_app.parsing import is_hidden
from queries_app.registry import Feed, board_feed
from queries_app.terminal_rule import operators_terminal
from sessions_app.models import Account
from sessions_app.secret_names import account_secrets

from .local_times import earliest_slot_text
from .models import LFD_DUE_MAX_DAYS, Container, HistoryEntry
from .money import Tariffs
from .verdict import NEEDS_PICKUP, container_verdict, left_terminal, needs_pickup

logger = logging.getLogger(__name__)

# Kinds whose results say something about the account's containers.

# The containers sheet's fields kept on the board.
SHEET_FIELDS = (
    "trade_type",
    "status",
    "holds",
    "last_free_day",
    "good_through",
    "pregate_ticket",
    "pregate_status",
    "gate_status",
    "origin",
    "destination",
    "current_location",
    "line",
    "size_type",
    "vessel_name",
    "voyage",
)
# Changes of these fields are history (the others are kept up to date quietly).
HISTORY_FIELDS = {
    "status",
    "holds",
    "last_free_day",
    "good_through",
    "pregate_ticket",
    "terminal_code",
    "passed_pregate",
    "booking_number",
}
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
# Check outcomes that say something about slots (a failed or unsent check says nothing).
INFORMATIVE_CHECKS = (AppointmentCheck.Outcome.AVAILABLE, AppointmentCheck.Outcome.NONE)


def jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def terminal_code(container: Container) -> str:
    """Where the container is picked up or dropped, by the operators' rule (the availability
    run's): an export, or an import through pregate, at its Origin; another import at its
    Destination; else where it is now."""
    code = operators_terminal(
        trade_type=container.trade_type,
        passed_pregate=container.passed_pregate,
        origin=container.origin,
        destination=container.destination,
        current_location=container.current_location,
    )
    # A masked cell (`*****`) names no terminal.
    return "" if not code or is_hidden(code) else code[:20]


@dataclass
class Observed:
    """What one run saw: the whole containers sheet (or None), details and slot checks."""

    sheet: dict[str, dict[str, Any]] | None
    sheet_seen_at: datetime
    seen_at: datetime
    details: dict[str, dict[str, Any]]
    checks: dict[str, dict[str, Any]]


def observe(query: Query) -> Observed:
    seen_at = query.finished_at or timezone.now()
    feed = board_feed(query.kind)
    sheet = None
    sheet_seen_at = seen_at
    if Feed.SHEET in feed:
        sheet = {
            row["container_number"]: row
            for row in query.containers.values("container_number", *SHEET_FIELDS)
        }
        # The sheet was read when its file was stored, maybe long before the run ended.
        stored = (
            QueryFile.objects.filter(query=query, kind=QueryFile.Kind.CONTAINERS_SHEET)
            .values_list("created_at", flat=True)
            .first()
        )
        sheet_seen_at = stored or seen_at
    details = (
        {
            info["container_number"]: info
            for info in query.infos.filter(success=True).values(
                "container_number", "passed_pregate", "booking_number", "milestones"
            )
        }
        if Feed.DETAILS in feed
        else {}
    )
    checks = (
        {
            check["container_number"]: check
            for check in query.checks.exclude(container_number="")
            .filter(outcome__in=INFORMATIVE_CHECKS)
            .values("container_number", "outcome", "slot_count", "earliest_slot", "slot_texts")
        }
        if Feed.CHECKS in feed
        else {}
    )
    return Observed(sheet, sheet_seen_at, seen_at, details, checks)


@dataclass
class Merge:
    """The changes one run brings to one account's board, gathered before they are written."""

    account: Account
    query: Query | None
    rows: dict[str, Container]
    baseline: bool  # the account's first run: its containers are not news
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    entry_times: dict[str, datetime] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    created: list[Container] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)

    def is_new(self, container: Container) -> bool:
        return container.pk is None

    def change(self, container: Container, kind: str, at: datetime) -> None:
        entry = self.entries.setdefault(container.container_number, {"change": kind, "fields": {}})
        if kind != HistoryEntry.Change.CHANGED:
            entry["change"] = kind
        self.entry_times[container.container_number] = at

    def field(self, container: Container, name: str, before: Any, after: Any, at: datetime) -> None:
        if self.is_new(container):
            return  # a new container's values are not changes
        self.change(container, HistoryEntry.Change.CHANGED, at)
        self.entries[container.container_number]["fields"][name] = [
            jsonable(before),
            jsonable(after),
        ]

    def event(
        self, kind: str, container: Container, at: datetime, data: dict[str, Any], key: str = ""
    ) -> None:
        if self.baseline and kind != EventType.LFD_DUE:
            return  # the first run's containers are not news; a due date is, whatever came before
        number = container.container_number
        key = key or f"{kind}:{self.account.pk}:{number}:q{self.query.pk if self.query else ''}"
        if key in self.events:
            self.events[key].data.update(data)
            return
        self.events[key] = Event(
            key=key,
            type=kind,
            account=self.account,
            container_number=number,
            query=self.query,
            data=data,
            occurred_at=at,
        )
        self.events[key]._container = container  # its primary key may not exist yet


def apply_sheet(merge: Merge, sheet: dict[str, dict[str, Any]], at: datetime) -> None:
    query, rows = merge.query, merge.rows
    for number, fields in sheet.items():
        container = rows.get(number)
        if container is None:
            container = Container(
                account=merge.account,
                container_number=number,
                first_seen_at=at,
                first_seen_query=query,
                sheet_query=query,
                sheet_seen_at=at,
                updated_at=at,
                **{name: fields[name] for name in SHEET_FIELDS},
            )
            rows[number] = container
            merge.created.append(container)
            if not merge.baseline:
                merge.change(container, HistoryEntry.Change.NEW, at)
                merge.event(
                    EventType.CONTAINER_NEW,
                    container,
                    at,
                    {
                        "trade_type": fields["trade_type"],
                        "status": fields["status"],
                        "last_free_day": jsonable(fields["last_free_day"]),
                    },
                )
            continue
        if container.gone_at is not None:
            container.gone_at = None
            merge.dirty.add(number)
            merge.change(container, HistoryEntry.Change.BACK, at)
            merge.event(
                EventType.CONTAINER_NEW,
                container,
                at,
                {"returned": True, "trade_type": fields["trade_type"], "status": fields["status"]},
            )
        for name in SHEET_FIELDS:
            before, after = getattr(container, name), fields[name]
            if before == after:
                continue
            setattr(container, name, after)
            merge.dirty.add(number)
            if name in HISTORY_FIELDS:
                merge.field(container, name, before, after, at)
            if name == "last_free_day" and after is not None:
                merge.event(
                    EventType.LFD_CHANGED,
                    container,
                    at,
                    {"before": jsonable(before), "after": jsonable(after)},
                )
            elif name == "holds" and before is True and after is False:
                merge.event(EventType.HOLDS_RELEASED, container, at, {})
            elif name == "pregate_ticket" and not before and after:
                merge.event(EventType.PREGATE_DONE, container, at, {"ticket": True})
    for number, container in rows.items():
        if number not in sheet and container.gone_at is None:
            container.gone_at = at
            merge.dirty.add(number)
            merge.change(container, HistoryEntry.Change.GONE, at)
            merge.event(EventType.CONTAINER_GONE, container, at, {})


def apply_details(merge: Merge, details: dict[str, dict[str, Any]], at: datetime) -> None:
    for number, info in details.items():
        container = merge.rows.get(number)
        if container is None or (container.details_seen_at and at < container.details_seen_at):
            continue
        passed, booking = info["passed_pregate"], info["booking_number"]
        if passed is not None and passed != container.passed_pregate:
            merge.field(container, "passed_pregate", container.passed_pregate, passed, at)
            if container.passed_pregate is False and passed:
                merge.event(EventType.PREGATE_DONE, container, at, {"passed_pregate": True})
            container.passed_pregate = passed
        if booking and booking != container.booking_number:
            merge.field(container, "booking_number", container.booking_number, booking, at)
            container.booking_number = booking
        if info["milestones"]:
            container.left_terminal = left_terminal(info["milestones"])
        container.details_query, container.details_seen_at = merge.query, at
        merge.dirty.add(number)


def apply_checks(merge: Merge, checks: dict[str, dict[str, Any]], at: datetime) -> None:
    for number, check in checks.items():
        container = merge.rows.get(number)
        if container is None or (container.check_seen_at and at < container.check_seen_at):
            continue
        before, after = container.slot_count or 0, check["slot_count"]
        if (before > 0) != (after > 0):
            merge.field(container, "slot_count", container.slot_count, after, at)
            merge.field(
                container, "earliest_slot", container.earliest_slot, check["earliest_slot"], at
            )
            if after > 0:
                merge.event(
                    EventType.SLOT_APPEARED,
                    container,
                    at,
                    {"earliest_slot": jsonable(check["earliest_slot"]), "slot_count": after},
                )
        container.check_outcome = check["outcome"]
        container.slot_count = after
        container.earliest_slot = check["earliest_slot"]
        container.earliest_slot_text = earliest_slot_text(check["slot_texts"] or [])[:200]
        container.check_query, container.check_seen_at = merge.query, at
        merge.dirty.add(number)


def apply_terminals(merge: Merge, numbers: Iterable[str], at: datetime) -> None:
    codes: dict[str, int] | None = None
    for number in numbers:
        container = merge.rows[number]
        code = terminal_code(container)
        if code == container.terminal_code and (container.terminal_id or not code):
            continue
        if codes is None:
            codes = dict(Terminal.objects.values_list("code", "id"))
        if code != container.terminal_code:
            merge.field(container, "terminal_code", container.terminal_code, code, at)
        container.terminal_code, container.terminal_id = code, codes.get(code)
        merge.dirty.add(number)


def apply_verdicts(merge: Merge) -> None:
    """Each container's pickup verdict from what it is now (`verdict.py`)."""
    for number, container in merge.rows.items():
        pickup = container_verdict(container).pickup
        if pickup != container.pickup:
            container.pickup = pickup
            merge.dirty.add(number)


def due_events(merge: Merge, today: date, at: datetime, tariffs: Tariffs | None = None) -> None:
    """`container.lfd_due` for containers that still need a pickup (`verdict.NEEDS_PICKUP`) and
    are overdue or due within LFD_DUE_MAX_DAYS: once per container and day (again the same day
    only if the date moves), with what they cost where the terminal has a tariff. Recorded on
    the account's first run too: a due date is news whatever came before."""
    for container in merge.rows.values():
        left = container.days_left(today)
        if container.gone_at is not None or left is None or left > LFD_DUE_MAX_DAYS:
            continue
        if not needs_pickup(container.pickup):
            continue
        if tariffs is None:
            tariffs = Tariffs.load()
        lfd = container.last_free_day.isoformat()
        data: dict[str, Any] = {
            "last_free_day": lfd,
            "days_left": left,
            "pickup": container.pickup,
            "terminal": container.terminal_code,
        }
        owed = tariffs.charges(container, today)
        if owed is not None:
            data["charges_to_date"] = str(owed.to_date)
            data["charge_per_day"] = str(owed.per_day)
        merge.event(
            EventType.LFD_DUE,
            container,
            at,
            data,
            key=f"{EventType.LFD_DUE}:{merge.account.pk}:{container.container_number}:"
            f"{today.isoformat()}:{lfd}",
        )


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
        merge = Merge(account=query.account, query=query, rows=rows, baseline=not rows)
        touched: set[str] = set()
        sheet_applied = False
        if observed.sheet is not None:
            latest = max((c.sheet_seen_at for c in rows.values() if c.sheet_seen_at), default=None)
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
                query=query,
                observed_at=merge.entry_times[number],
                change=entry["change"],
                fields=entry["fields"],
            )
            for number, entry in merge.entries.items()
        ],
        batch_size=1000,
    )
    for event in merge.events.values():
        event.container = event._container
    events = record_events(list(merge.events.values()))
    return BoardUpdate(events=events, changed=len(merge.entries), created=len(merge.created))


def update_rows(containers: list[Container], names: list[str]) -> None:
    """UPDATE these containers' fields with one statement run once per row (executemany).
    bulk_update builds a CASE over every row for every field, which grows with the square of
    the rows (seconds for a few hundred on SQLite)."""
    if not containers:
        return
    connection = connections[router.db_for_write(Container)]
    fields = [Container._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    table, key = quote(Container._meta.db_table), quote(Container._meta.pk.column)
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
            for event in merge.events.values():
                event.container = event._container
            events = record_events(list(merge.events.values()))
        total.events += events
    return total


__all__ = ["record_due_dates", "update_board"]
