"""Merging what a run saw into one account's board, in memory: each container's new state,
what changed (history entries) and what is news (outbox events, one per stable key). Nothing
here writes; `orchestrate` stores the merge."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from history.models import HistoryEntry
from outbox.models import Event
from outbox.vocabulary import EventType
from queries_app.models import Query, Terminal
from queries_app.parsing import is_hidden
from queries_app.terminal_rule import operators_terminal
from sessions_app.models import Account

from ..local_times import earliest_slot_text
from ..models import LFD_DUE_MAX_DAYS, Container
from ..money import Tariffs
from ..verdict import container_verdict, left_terminal, needs_pickup
from .observe import SHEET_FIELDS

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
class Merge:
    """The changes one run brings to one account's board, gathered before they are written."""

    account: Account
    query: Query | None
    rows: dict[str, Container]
    baseline: bool  # the account's first run: its containers are not news
    # The run whose containers sheet the board held before this one (what a sheet is compared
    # with: new, back and gone are said against it).
    previous_sheet_query_id: int | None = None
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    entry_times: dict[str, datetime] = field(default_factory=dict)
    # Each entry's previous observation: the run the board's values came from (the first
    # change of a container says it; the sheet is merged first).
    entry_previous: dict[str, int | None] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    subjects: dict[str, Container] = field(default_factory=dict)  # each event's container
    created: list[Container] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)

    def is_new(self, container: Container) -> bool:
        return container.pk is None

    def change(
        self, container: Container, kind: str, at: datetime, previous: int | None = None
    ) -> None:
        number = container.container_number
        entry = self.entries.setdefault(number, {"change": kind, "fields": {}})
        if kind != HistoryEntry.Change.CHANGED:
            entry["change"] = kind
        self.entry_times[number] = at
        if self.entry_previous.get(number) is None:
            self.entry_previous[number] = previous

    def field(
        self,
        container: Container,
        name: str,
        before: Any,
        after: Any,
        at: datetime,
        previous: int | None = None,
    ) -> None:
        if self.is_new(container):
            return  # a new container's values are not changes
        self.change(container, HistoryEntry.Change.CHANGED, at, previous)
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
        self.subjects[key] = container  # its primary key may not exist yet

    def recorded_events(self) -> list[Event]:
        """The events, each with its container (stored by now)."""
        for key, event in self.events.items():
            event.container = self.subjects[key]
        return list(self.events.values())


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
                merge.change(container, HistoryEntry.Change.NEW, at, merge.previous_sheet_query_id)
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
            merge.change(container, HistoryEntry.Change.BACK, at, merge.previous_sheet_query_id)
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
                merge.field(container, name, before, after, at, container.sheet_query_id)
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
            merge.change(container, HistoryEntry.Change.GONE, at, merge.previous_sheet_query_id)
            merge.event(EventType.CONTAINER_GONE, container, at, {})


def apply_details(merge: Merge, details: Mapping[str, Mapping[str, Any]], at: datetime) -> None:
    for number, info in details.items():
        container = merge.rows.get(number)
        if container is None or (container.details_seen_at and at < container.details_seen_at):
            continue
        passed, booking = info["passed_pregate"], info["booking_number"]
        if passed is not None and passed != container.passed_pregate:
            merge.field(
                container,
                "passed_pregate",
                container.passed_pregate,
                passed,
                at,
                container.details_query_id,
            )
            if container.passed_pregate is False and passed:
                merge.event(EventType.PREGATE_DONE, container, at, {"passed_pregate": True})
            container.passed_pregate = passed
        if booking and booking != container.booking_number:
            merge.field(
                container,
                "booking_number",
                container.booking_number,
                booking,
                at,
                container.details_query_id,
            )
            container.booking_number = booking
        if info["milestones"]:
            container.left_terminal = left_terminal(info["milestones"])
        container.details_query, container.details_seen_at = merge.query, at
        merge.dirty.add(number)


def apply_checks(merge: Merge, checks: Mapping[str, Mapping[str, Any]], at: datetime) -> None:
    for number, check in checks.items():
        container = merge.rows.get(number)
        if container is None or (container.check_seen_at and at < container.check_seen_at):
            continue
        before, after = container.slot_count or 0, check["slot_count"]
        if (before > 0) != (after > 0):
            previous = container.check_query_id
            merge.field(container, "slot_count", container.slot_count, after, at, previous)
            merge.field(
                container,
                "earliest_slot",
                container.earliest_slot,
                check["earliest_slot"],
                at,
                previous,
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
            # Read off the sheet's places (and the details' pregate): the sheet's run says it.
            merge.field(
                container,
                "terminal_code",
                container.terminal_code,
                code,
                at,
                container.sheet_query_id,
            )
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
        assert container.last_free_day is not None  # it has days left
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
