"""Turn what the upstream hands out (sheets, slot texts, milestone dates) into typed values."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import IO, Any

from django.utils import timezone

from .xlsx import read_rows

CONTAINER_NUMBER_RE = re.compile(r"^[A-Z]{4}\d{7}$")

# Containers sheet column → ContainerRow field.
CONTAINER_COLUMNS = {
    "Container #": "container_number",
    "Trade Type": "trade_type",
    "Status": "status",
    "Holds": "holds",
    "Pregate Ticket#": "pregate_ticket",
    "Emodal Pregate Status": "pregate_status",
    "Gate Status": "gate_status",
    "Origin": "origin",
    "Destination": "destination",
    "Current Loc": "current_location",
    "Line": "line",
    "Vessel Name": "vessel_name",
    "Vessel Code": "vessel_code",
    "Voyage": "voyage",
    "Size Type": "size_type",
    "Fees": "fees",
    "LFD/GTD": "last_free_day",
    "Tags": "tags",
}

APPOINTMENT_COLUMNS = {
    "Appointment #": "appointment_number",
    "Container #": "container_number",
    "Trade Type": "trade_type",
    "Terminal": "terminal",
    "Move Type": "move_type",
    "Appointment Date": "appointment_date",
    "Time Slot": "time_slot",
    "Status": "status",
}

SLOT_RE = re.compile(r"(\d{2}/\d{2}/\d{4})\s+(\d{1,2}:\d{2})")


SEPARATORS_RE = re.compile(r"[\s-]")


def normalise_container_number(value: str) -> str:
    return SEPARATORS_RE.sub("", value or "").upper()


def is_container_number(value: str) -> bool:
    return bool(CONTAINER_NUMBER_RE.match(value))


def sheet_rows(stream: IO[bytes]) -> Iterator[dict[str, str]]:
    """Rows of the workbook's active sheet as {header: text}, the header being row 1; blank
    rows skipped. Raises SheetError (readable) for a file that is not a usable .xlsx."""
    named: list[tuple[int, str]] = []
    for number, values in read_rows(stream):
        if number == 1:
            header = [str(cell or "").strip() for cell in values]
            named = [(index, name) for index, name in enumerate(header) if name]
            continue
        if not any(v not in (None, "") for v in values):
            continue
        size = len(values)
        row = {}
        for index, name in named:
            value = values[index] if index < size else None
            row[name] = value.strip() if type(value) is str else _text(value)
        yield row


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%m/%d/%Y")
    return str(value).strip()


@lru_cache(maxsize=4096)  # a sheet repeats the same few dates thousands of times
def parse_us_date(value: str) -> date | None:
    value = (value or "").strip()
    if not value or value.upper() == "N/A":
        return None
    try:
        return datetime.strptime(value, "%m/%d/%Y").date()  # noqa: DTZ007 - a calendar date
    except ValueError:
        return None


def parse_local_datetime(value: str) -> datetime | None:
    """'MM/DD/YYYY HH:MM' in the terminals' (the portal's) time zone."""
    value = (value or "").strip()
    if not value or value.upper() == "N/A":
        return None
    try:
        naive = datetime.strptime(value, "%m/%d/%Y %H:%M")  # noqa: DTZ007 - made aware below
    except ValueError:
        return None
    return timezone.make_aware(naive, timezone.get_default_timezone())


def parse_slot_start(text: str) -> datetime | None:
    """'Tuesday 10/07/2025 09:00 - 10:00' → the slot's start, aware."""
    match = SLOT_RE.search(text or "")
    if not match:
        return None
    return parse_local_datetime(f"{match.group(1)} {match.group(2)}")


@lru_cache(maxsize=4096)  # likewise the same few amounts
def parse_money(value: str) -> Decimal | None:
    cleaned = (value or "").replace("$", "").replace(",", "").strip()
    if not cleaned:
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


YES_NO = {"YES": True, "Y": True, "NO": False, "N": False}


def parse_yes_no(value: str) -> bool | None:
    return YES_NO.get((value or "").strip().upper())


def _clip(value: str) -> str:
    return value[:200]


_CONTAINER_PARSERS: dict[str, Callable[[str], Any]] = {
    "holds": parse_yes_no,
    "fees": parse_money,
    "last_free_day": parse_us_date,
    "container_number": normalise_container_number,
}
# (column, field, parser) once, rather than deciding per field of every row.
CONTAINER_FIELDS = [
    (column, field, _CONTAINER_PARSERS.get(field, _clip))
    for column, field in CONTAINER_COLUMNS.items()
]


def container_fields(raw: dict[str, str]) -> dict[str, Any]:
    """A containers-sheet row → ContainerRow field values (raw row kept alongside)."""
    get = raw.get
    fields: dict[str, Any] = {
        field: parse(get(column, "")) for column, field, parse in CONTAINER_FIELDS
    }
    fields["raw"] = raw
    return fields


def appointment_fields(raw: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for column, field in APPOINTMENT_COLUMNS.items():
        value = raw.get(column, "")
        fields[field] = parse_us_date(value) if field == "appointment_date" else value[:80]
    fields["raw"] = raw
    return fields


def milestone_dates(timeline: list[dict[str, Any]]) -> dict[str, datetime | None]:
    """The three milestones operators look at, from an upstream timeline."""
    wanted = {
        "manifested": "manifested_at",
        "departed terminal": "departed_terminal_at",
        "empty received": "empty_received_at",
    }
    found: dict[str, datetime | None] = dict.fromkeys(wanted.values())
    for item in timeline or []:
        name = str(item.get("milestone", "")).strip().lower()
        if name in wanted and found[wanted[name]] is None:
            found[wanted[name]] = parse_local_datetime(str(item.get("date", "")))
    return found
