"""The board's table: its columns, sort orders, and rows as HTML (built here: a page of 100 rows
through template tags costs ~10× more), and the same rows for the CSV/XLSX exports
(`queries_app.exports` writes any table with `rows`, `columns` and `cells`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from django.db.models import F, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from queries_app.tables import cell_text

from .models import Container
from .words import days_left_words, describe_change

PER_PAGE = 100
DEFAULT_SORT = "lfd"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    # What ?sort=key orders by ("" = not sortable), and how a row's value reads (typed).
    order_by: str = ""
    value: Callable[[Container], Any] | None = None
    numeric: bool = False
    staff_only: bool = False

    def read(self, row: Container) -> Any:
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
    return ""


def build_columns(today: date, zone: tzinfo, *, show_account: bool) -> list[Column]:
    def seen_run(row: Container) -> str:
        return f"#{row.sheet_query_id}" if row.sheet_query_id else ""

    columns = [
        Column("container_number", "Container", order_by="container_number"),
        Column(
            "account",
            "Account",
            order_by="account__user__username",
            staff_only=True,
            value=lambda row: str(row.account),
        ),
        Column("trade_type", "Trade type", order_by="trade_type"),
        Column("status", "Status", order_by="status"),
        Column("holds", "Holds", order_by="holds"),
        Column("last_free_day", "Last free day", order_by="last_free_day"),
        Column("days_left", "Days left", numeric=True, value=lambda row: row.days_left(today)),
        Column("good_through", "Good through", order_by="good_through"),
        Column("terminal", "Terminal", order_by="terminal_code", value=terminal_text),
        Column("pregate", "Pregate", value=pregate_text),
        Column("earliest_slot", "Earliest slot", order_by="earliest_slot"),
        Column("slot_count", "Slots", numeric=True, order_by="slot_count"),
        Column("check_seen_at", "Slots seen"),
        Column(
            "last_change", "Last change", value=lambda row: describe_change(row.last_change, zone)
        ),
        Column("last_change_at", "Changed", order_by="last_change_at"),
        Column("sheet_query", "Seen in run", value=seen_run, order_by="sheet_seen_at"),
        Column("sheet_seen_at", "Seen at"),
        Column("watched", "Watched", value=lambda row: bool(row.watched)),
    ]
    return [c for c in columns if show_account or not c.staff_only]


SORTS = {
    "container": "container_number",
    "account": "account__user__username",
    "status": "status",
    "holds": "holds",
    "lfd": "last_free_day",
    "terminal": "terminal_code",
    "slot": "earliest_slot",
    "changed": "-last_change_at",
    "seen": "-sheet_seen_at",
}


def parse_sort(value: str) -> tuple[str, bool]:
    descending = value.startswith("-")
    key = value.removeprefix("-")
    if key not in SORTS:
        return DEFAULT_SORT, False
    return key, descending


def sort_rows(rows: QuerySet[Container], key: str, descending: bool) -> QuerySet[Container]:
    target = SORTS[key]
    natural_desc = target.startswith("-")
    expression = F(target.lstrip("-"))
    # Blanks last either way: a dispatcher sorting by last free day wants dates first.
    if natural_desc != descending:
        ordered = expression.desc(nulls_last=True)
    else:
        ordered = expression.asc(nulls_last=True)
    return rows.order_by(ordered, "container_number", "pk")


@dataclass
class BoardTable:
    rows: QuerySet[Container]
    columns: list[Column]
    today: date
    zone: tzinfo
    sort: str
    descending: bool
    show_account: bool
    csrf_token: str = ""
    next_url: str = ""
    headers: list[dict[str, Any]] = field(default_factory=list)

    def cells(self, row: Container, zone: tzinfo) -> list[str]:
        return [cell_text(column.read(row), zone) for column in self.columns]

    def _when(self, value: datetime | None) -> str:
        if value is None:
            return ""
        return timezone.localtime(value, self.zone).strftime("%m-%d %H:%M")

    def row_html(self, row: Container) -> SafeString:
        """One row of the page. Every value is escaped (format_html / escape)."""
        url = reverse("containers:detail", args=[row.container_number])
        if self.show_account:
            url += "?" + urlencode({"account": row.account_id})
        star = format_html(
            '<form method="post" action="{}" class="star-form">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<input type="hidden" name="watch" value="{}">'
            '<input type="hidden" name="next" value="{}">'
            '<button type="submit" class="star{}" aria-pressed="{}" title="{}">'
            '<span aria-hidden="true">{}</span><span class="visually-hidden">{} {}</span>'
            "</button></form>",
            reverse("containers:watch", args=[row.pk]),
            self.csrf_token,
            "0" if row.watched else "1",
            self.next_url,
            " is-on" if row.watched else "",
            "true" if row.watched else "false",
            "Stop watching" if row.watched else "Watch",
            "★" if row.watched else "☆",
            "Stop watching" if row.watched else "Watch",
            row.container_number,
        )
        left = row.days_left(self.today)
        urgency = ""
        if left is not None and row.gone_at is None:
            urgency = "overdue" if left < 0 else {0: "today", 1: "tomorrow"}.get(left, "")
            if not urgency and left <= 2:
                urgency = "soon"
        lfd = ""
        if row.last_free_day:
            badge = (
                format_html(' <span class="due due-{}">{}</span>', urgency, days_left_words(left))
                if urgency
                else format_html(' <span class="days">{}</span>', days_left_words(left))
            )
            lfd = format_html("{}{}", row.last_free_day.isoformat(), badge)
        slot = ""
        if row.slot_count:
            slot = format_html(
                '{} <span class="sub">{} slot{} · seen {} (run #{})</span>',
                self._when(row.earliest_slot),
                row.slot_count,
                "" if row.slot_count == 1 else "s",
                self._when(row.check_seen_at),
                row.check_query_id or "?",
            )
        elif row.check_seen_at:
            slot = format_html(
                '<span class="sub">none · seen {} (run #{})</span>',
                self._when(row.check_seen_at),
                row.check_query_id or "?",
            )
        change = ""
        if row.last_change:
            change = format_html(
                '<span class="change change-{}">{}</span> <span class="sub">{}</span>',
                row.last_change.get("change", "changed"),
                describe_change(row.last_change, self.zone),
                self._when(row.last_change_at),
            )
        seen = ""
        if row.sheet_seen_at:
            seen = format_html(
                '<a href="{}">#{}</a> <span class="sub">{}</span>',
                reverse("queries:detail", args=[row.sheet_query_id]) if row.sheet_query_id else "#",
                row.sheet_query_id or "?",
                self._when(row.sheet_seen_at),
            )
        holds = "" if row.holds is None else ("Yes" if row.holds else "No")
        cells = [
            f"<td>{star}</td>",
            format_html('<th scope="row"><a href="{}">{}</a></th>', url, row.container_number),
        ]
        if self.show_account:
            cells.append(format_html("<td>{}</td>", row.account))
        cells += [
            format_html("<td>{}</td>", row.trade_type),
            format_html("<td>{}</td>", row.status),
            format_html('<td class="holds-{}">{}</td>', holds.lower() or "unknown", holds),
            f'<td class="lfd">{lfd}</td>',
            format_html("<td>{}</td>", terminal_text(row)),
            format_html("<td>{}</td>", pregate_text(row)),
            f"<td>{slot}</td>",
            f"<td>{change}</td>",
            f"<td>{seen}</td>",
        ]
        klass = f"row-{urgency}" if urgency else ""
        if row.gone_at:
            klass = "is-gone"
        return mark_safe(  # noqa: S308 - every value above went through format_html or escape
            f'<tr class="{escape(klass)}">' + "".join(cells) + "</tr>"
        )


# The page's columns: (label, ?sort= key or "").
PAGE_HEADERS = [
    ("★", ""),
    ("Container", "container"),
    ("Account", "account"),
    ("Trade", ""),
    ("Status", "status"),
    ("Holds", "holds"),
    ("Last free day", "lfd"),
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
