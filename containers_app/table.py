"""The board's table: its columns, sort orders, and rows as HTML (built here: a page of 100 rows
through template tags costs ~10× more), and the same rows for the CSV/XLSX exports
(`portal.exports` writes any table with `rows`, `columns` and `cells`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from html import escape as html_escape
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from portal.exports import cell_text
from queries_app.parsing import is_container_number

from .local_times import terminal_time_text
from .models import Container
from .money import Charges, Tariffs, money_words
from .verdict import NEEDS_PICKUP, Pickup, needs_pickup
from .words import days_left_words, describe_change, due_urgency

if TYPE_CHECKING:
    from .models import BoardContainer

PER_PAGE = 100
SLOT_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    # How a row's value reads (typed), for the exports; the page's sorts are selectors.SORTS.
    value: Callable[[BoardContainer], Any] | None = None
    staff_only: bool = False

    def read(self, row: BoardContainer) -> Any:
        return self.value(row) if self.value else getattr(row, self.key)


def terminal_text(row: Container) -> str:
    if row.terminal is not None and row.terminal.name:
        return row.terminal.name
    return row.terminal_code


def pregate_text(row: Container) -> str:
    if row.passed_pregate:
        return "Passed"
    if row.pregate_ticket:
        return "Ticket" if set(row.pregate_ticket) == {"*"} else f"Ticket {row.pregate_ticket}"
    if row.passed_pregate is False:
        return "Not yet"
    if row.trade_type == "IMPORT" and row.details_seen_at is not None:
        return "Unknown"  # details were read, and E-Modal's page did not say
    return ""


def pickup_text(row: Container) -> str:
    return Pickup(row.pickup).label if row.pickup in Pickup.values else row.pickup


def build_columns(
    today: date, zone: tzinfo, *, show_account: bool, tariffs: Tariffs | None = None
) -> list[Column]:
    def seen_run(row: Container) -> str:
        return f"#{row.sheet_query_id}" if row.sheet_query_id else ""

    def owed(row: Container) -> Charges | None:
        return tariffs.charges(row, today) if tariffs is not None else None

    columns = [
        Column("container_number", "Container"),
        Column(
            "account",
            "Account",
            staff_only=True,
            value=lambda row: str(row.account),
        ),
        Column("pickup", "Pickup", value=pickup_text),
        Column("trade_type", "Trade type"),
        Column("status", "Status"),
        Column("holds", "Holds"),
        Column("last_free_day", "Last free day"),
        Column("days_left", "Days left", value=lambda row: row.days_left(today)),
        Column(
            "charges_to_date",
            "Charges to date",
            value=lambda row: c.to_date if (c := owed(row)) else None,
        ),
        Column(
            "charge_per_day",
            "Another day costs",
            value=lambda row: c.per_day if (c := owed(row)) else None,
        ),
        Column("good_through", "Good through"),
        Column("terminal", "Terminal", value=terminal_text),
        Column("pregate", "Pregate", value=pregate_text),
        Column("appointment", "Appointment"),
        Column(
            "earliest_slot",
            "Earliest slot (terminal time)",
            value=lambda row: terminal_time_text(row.earliest_slot, row.terminal, SLOT_FORMAT),
        ),
        Column("slot_count", "Slots"),
        Column("check_seen_at", "Slots seen"),
        Column(
            "last_change", "Last change", value=lambda row: describe_change(row.last_change, zone)
        ),
        Column("last_change_at", "Changed"),
        Column("sheet_query", "Seen in run", value=seen_run),
        Column("sheet_seen_at", "Seen at"),
        Column("watched", "Watched", value=lambda row: bool(row.watched)),
    ]
    return [c for c in columns if show_account or not c.staff_only]


@dataclass
class BoardTable:
    rows: QuerySet[BoardContainer]
    columns: list[Column]
    today: date
    zone: tzinfo
    sort: str
    descending: bool
    show_account: bool
    tariffs: Tariffs | None = None
    csrf_token: str = ""
    next_url: str = ""
    # Whether the person may book (a "Book a slot" button on rows of imports with slots).
    may_book: bool = False
    headers: list[dict[str, Any]] = field(default_factory=list)

    def cells(self, row: BoardContainer, zone: tzinfo) -> list[str]:
        return [cell_text(column.read(row), zone) for column in self.columns]

    def _when(self, value: datetime | None) -> str:
        if value is None:
            return ""
        return timezone.localtime(value, self.zone).strftime("%m-%d %H:%M")

    def _urls(self) -> tuple[str, str, str]:
        """The rows' link and form targets, reversed once per table (a reverse per row and
        link costs more than the rest of the row)."""
        if not hasattr(self, "_url_cache"):
            mark = "987654321"
            self._url_cache = (
                reverse("containers:detail", args=[mark]).replace(mark, "{}"),
                reverse("containers:watch", args=[int(mark)]).replace(mark, "{}"),
                reverse("queries:detail", args=[int(mark)]).replace(mark, "{}"),
            )
        return self._url_cache

    def row_html(self, row: BoardContainer) -> SafeString:
        """One row of the page. Every value from the row is escaped (`esc`)."""
        detail, watch_url, query_url = self._urls()
        number = esc(row.container_number)
        # Only a container number goes into a link (a row stored before numbers were checked
        # at the door could hold `..` or `/` and point at another page).
        if is_container_number(row.container_number):
            url = detail.format(row.container_number)
            if self.show_account:
                url += f"?account={row.account_id}"
            title = f'<a href="{esc(url)}">{number}</a>'
        else:
            title = number
        watched = bool(row.watched)
        action = "Stop watching" if watched else "Watch"
        star = (
            f'<form method="post" action="{watch_url.format(row.pk)}" class="star-form">'
            f'<input type="hidden" name="csrfmiddlewaretoken" value="{esc(self.csrf_token)}">'
            f'<input type="hidden" name="watch" value="{"0" if watched else "1"}">'
            f'<input type="hidden" name="next" value="{esc(self.next_url)}">'
            f'<button type="submit" class="star{" is-on" if watched else ""}" '
            f'aria-pressed="{"true" if watched else "false"}" title="{action}">'
            f'<span aria-hidden="true">{"★" if watched else "☆"}</span>'
            f'<span class="visually-hidden">{action} {number}</span></button></form>'
        )
        left = row.days_left(self.today)
        needed = needs_pickup(row.pickup) and row.gone_at is None
        # Only a container still to pull is urgent: one gone out, an export or one still on
        # the vessel shows its last free day without alarm.
        urgency = due_urgency(left) if needed else ""
        lfd = ""
        if row.last_free_day:
            words = esc(days_left_words(left))
            badge = (
                f' <span class="due due-{urgency}">{words}</span>'
                if urgency
                else f' <span class="days">{words}</span>'
            )
            lfd = f"{row.last_free_day.isoformat()}{badge}"
        slot = ""
        if row.slot_count:
            plural = "" if row.slot_count == 1 else "s"
            slot = (
                f'<span class="slot-time" title="{esc(row.earliest_slot_text)}">'
                f"{esc(terminal_time_text(row.earliest_slot, row.terminal, '%m-%d %H:%M'))}"
                f'</span> <span class="sub">{row.slot_count} slot'
                f"{plural} · seen {self._when(row.check_seen_at)} "
                f"(run #{row.check_query_id or '?'})</span>"
            )
        elif row.check_seen_at and row.check_outcome == "available":
            # An export check finds a calendar; it counts no slots.
            slot = (
                f'calendar found <span class="sub">seen {self._when(row.check_seen_at)} '
                f"(run #{row.check_query_id or '?'})</span>"
            )
        elif row.check_seen_at:
            slot = (
                f'<span class="sub">none · seen {self._when(row.check_seen_at)} '
                f"(run #{row.check_query_id or '?'})</span>"
            )
        if row.appointment:
            slot = f'<span class="appointment">Appointment {esc(row.appointment)}</span> {slot}'
        elif self.may_book and row.slot_count and row.pickup in NEEDS_PICKUP and not row.gone_at:
            account = f'<input type="hidden" name="account" value="{row.account_id}">'
            slot += (
                f'<form method="post" action="{esc(reverse("bookings:start"))}" '
                f'class="book-form"><input type="hidden" name="csrfmiddlewaretoken" '
                f'value="{esc(self.csrf_token)}"><input type="hidden" name="container_number" '
                f'value="{number}">{account if self.show_account else ""}'
                f'<button type="submit" class="book">Book a slot</button></form>'
            )
        change = ""
        if row.last_change:
            kind = esc(str(row.last_change.get("change", "changed")))
            words = esc(describe_change(row.last_change, self.zone))
            change = (
                f'<span class="change change-{kind}">{words}</span> '
                f'<span class="sub">{self._when(row.last_change_at)}</span>'
            )
        seen = ""
        if row.sheet_seen_at:
            run = row.sheet_query_id
            link = query_url.format(run) if run else "#"
            seen = (
                f'<a href="{link}">#{run or "?"}</a> '
                f'<span class="sub">{self._when(row.sheet_seen_at)}</span>'
            )
        money = ""
        if needed and self.tariffs is not None:
            owed = self.tariffs.charges(row, self.today)
            if owed is None:
                money = '<span class="sub no-tariff">no tariff</span>'
            elif owed.to_date or owed.per_day:
                money = (
                    f'<span class="money">{money_words(owed.to_date)}</span> '
                    f'<span class="sub">+{money_words(owed.per_day)}/day</span>'
                )
        pickup = esc(pickup_text(row))
        holds = "" if row.holds is None else ("Yes" if row.holds else "No")
        account = (
            f'<td class="c-account" data-label="Account">{esc(str(row.account))}</td>'
            if self.show_account
            else ""
        )
        klass = "is-gone" if row.gone_at else (f"row-{urgency}" if urgency else "")
        # Each cell names itself (class, data-label): on a phone the rows become cards.
        html = (
            f'<tr class="{klass}"><td class="c-star">{star}</td>'
            f'<th scope="row">{title}</th>{account}'
            f'<td class="pickup pickup-{esc(row.pickup)}" data-label="Pickup">{pickup}</td>'
            f'<td class="c-trade" data-label="Trade">{esc(row.trade_type)}</td>'
            f'<td class="c-status" data-label="Status">{esc(row.status)}</td>'
            f'<td class="c-holds holds-{holds.lower() or "unknown"}" data-label="Holds">'
            f"{holds}</td>"
            f'<td class="lfd" data-label="Last free day">{lfd}</td>'
            f'<td class="charges" data-label="Charges">{money}</td>'
            f'<td class="c-terminal" data-label="Terminal">{esc(terminal_text(row))}</td>'
            f'<td class="c-pregate" data-label="Pregate">{esc(pregate_text(row))}</td>'
            f'<td class="c-slot" data-label="Slot">{slot}</td>'
            f'<td class="c-change" data-label="Last change">{change}</td>'
            f'<td class="c-seen" data-label="Seen">{seen}</td></tr>'
        )
        return mark_safe(html)  # noqa: S308 - every value from the row went through esc


def esc(text: str) -> str:
    return html_escape(text or "", quote=True)


# The page's columns: (label, ?sort= key or "").
PAGE_HEADERS = [
    ("★", ""),
    ("Container", "container"),
    ("Account", "account"),
    ("Pickup", "pickup"),
    ("Trade", ""),
    ("Status", "status"),
    ("Holds", "holds"),
    ("Last free day", "lfd"),
    ("Charges", "money"),
    ("Terminal", "terminal"),
    ("Pregate", ""),
    ("Earliest slot", "slot"),
    ("Last change", "changed"),
    ("Seen in run", "seen"),
]


def page_headers(sort: str, descending: bool, *, show_account: bool) -> list[dict[str, Any]]:
    headers = []
    for label, key in PAGE_HEADERS:
        if key == "account" and not show_account:
            continue
        current = key == sort
        headers.append(
            {
                "label": label,
                "key": key,
                "sort_value": f"-{key}" if current and not descending else key,
                "aria_sort": ("descending" if descending else "ascending") if current else "none",
            }
        )
    return headers
