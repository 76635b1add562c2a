"""What the upstream hands out, read by its real conventions, in one place: sheet cells,
LFD/GTD ranges, milestone names (see docs/upstream-contract.md); slot texts in `slots`.

E-Modal writes every empty cell as `N/A` (sometimes masked: `N/A *******`) and hides some values
behind asterisks (`**************`: a value exists but is not shown). `cell()` turns the first
into "" and keeps the second as written; every field of a containers row goes through it, so
no caller ever tests for `N/A` itself.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import IO, Any

from django.utils import timezone
from python_calamine import CalamineWorkbook

# ASCII only: `\d` would take Arabic-Indic and other Unicode digits.
CONTAINER_NUMBER_RE = re.compile(r"^[A-Z]{4}[0-9]{7}$", re.ASCII)

# Containers sheet column → ContainerRow field ("LFD/GTD" fills two fields, see below).
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
# Columns only a containers sheet has: a sheet with them is not an appointments sheet.
CONTAINERS_SHEET_MARKERS = {"Pregate Ticket#", "Emodal Pregate Status", "LFD/GTD"}

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

SEPARATORS_RE = re.compile(r"[\s-]")
# `N/A`, alone or followed by asterisks: no value.
NO_VALUE_RE = re.compile(r"^N/?A[\s*]*$", re.IGNORECASE)
# Asterisks only: a value exists but is hidden.
HIDDEN_RE = re.compile(r"^\*+$")


def normalise_container_number(value: str) -> str:
    return SEPARATORS_RE.sub("", value or "").upper()


def is_container_number(value: str) -> bool:
    return bool(CONTAINER_NUMBER_RE.match(value))


def upstream_container_number(value: Any) -> str | None:
    """A container number as the upstream wrote it (a sheet cell, an answer's field),
    normalised, if it has the ISO 6346 shape (4 letters, 7 digits); None for anything else.
    Such a number is never stored, linked or sent back: it could name another page of the
    portal (`X/../../admin`) or carry markup. The check digit is not verified: every number
    in the customer's real sheets has a right one, but refusing a real container over it would
    hide it from the board, and E-Modal is the authority on its own numbers."""
    if type(value) is not str:
        return None
    number = normalise_container_number(value)
    return number if is_container_number(number) else None


def shown(value: Any, width: int = 24) -> str:
    """Something the upstream wrote, as a note may quote it: printable characters only, at
    most `width` of them (pages and e-mails escape it; this keeps it short and on one line)."""
    text = value if type(value) is str else repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:width] + ("…" if len(text) > width else "")


def refused_numbers_note(where: str, values: list[Any], noun: str = "row") -> str:
    """A run's note on the container numbers it left out, e.g. "The containers sheet had 2
    rows whose container number is not one (4 letters and 7 digits); left out: “A/B”, “C”." """
    if not values:
        return ""
    quoted = ", ".join(f"“{shown(value)}”" for value in values[:5])
    more = f" and {len(values) - 5} more" if len(values) > 5 else ""
    count = len(values)
    nouns = noun if count == 1 else ("entries" if noun == "entry" else f"{noun}s")
    return (
        f"{where} had {count} {nouns} whose container number is not one (4 letters and 7 "
        f"digits); left out: {quoted}{more}."
    )


# What an upstream field of each type is called in a note.
TYPE_WORDS = {
    str: "text",
    bool: "true/false",
    int: "a number",
    float: "a number",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def wrong_types(item: dict[str, Any], expected: Mapping[str, tuple[type, ...]]) -> list[str]:
    """The fields of an upstream answer whose value has another type than the contract's
    (`type(None)` among them when null may stand for "none"; a missing field is not checked):
    e.g. ["`success` is text, not true/false"]. Nothing of a wrong type is turned into text or
    a flag: `bool("false")` is True."""
    problems = []
    for name, allowed in expected.items():
        if name in item and type(item[name]) not in allowed:
            wanted = " or ".join(TYPE_WORDS.get(kind, kind.__name__) for kind in allowed)
            got = TYPE_WORDS.get(type(item[name]), type(item[name]).__name__)
            problems.append(f"`{name}` is {got}, not {wanted}")
    return problems


TEXT_OR_NULL = (str, type(None))
FLAG_OR_NULL = (bool, type(None))
MILESTONE_FIELDS = {"milestone": TEXT_OR_NULL, "date": TEXT_OR_NULL, "status": TEXT_OR_NULL}


def timeline_problems(timeline: Any) -> list[str]:
    """What is wrong with the types of an upstream timeline (a list of {milestone, date,
    status} of text), if anything."""
    if timeline is None:
        return []
    if type(timeline) is not list:
        return [f"`timeline` is {TYPE_WORDS.get(type(timeline), 'something else')}, not a list"]
    for entry in timeline:
        if type(entry) is not dict:
            return ["a `timeline` entry is not an object"]
        problems = wrong_types(entry, MILESTONE_FIELDS)
        if problems:
            return [f"a `timeline` entry's {problems[0]}"]
    return []


def unreadable(problems: list[str]) -> str:
    """The readable reason an upstream answer was refused for its types."""
    return f"E-Modal's answer could not be read ({'; '.join(problems)})."[:255]


def cell(value: Any) -> str:
    """A sheet cell's value as text: "" for no value (blank, `N/A`, `N/A ****`); anything else
    as written, stripped (a fully masked `****` included: it stands for a hidden value)."""
    if value is None:
        return ""
    text = value.strip() if type(value) is str else _text(value)
    if not text or NO_VALUE_RE.match(text):
        return ""
    return text


def is_hidden(value: str) -> bool:
    """A value E-Modal has but masks (`**************`)."""
    return bool(HIDDEN_RE.match(value or ""))


class SheetError(ValueError):
    """The file is not a readable .xlsx workbook; the text says why, for users."""


# Unpacked, a 10 000-row containers sheet is about 10 MB; this is far above any real one.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024


def read_sheet(stream: IO[bytes]) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The workbook's first sheet (python-calamine): its header (row 1) and its rows as
    {header: text}, blank rows skipped. Raises SheetError (readable) for a file that is not a
    usable .xlsx, or whose parts unpack to more than MAX_UNPACKED_BYTES (a zip bomb)."""
    content = stream.read()
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SheetError("it is not an .xlsx file (not a zip archive)") from exc
    if unpacked > MAX_UNPACKED_BYTES:
        raise SheetError(f"it is too large to unpack ({unpacked} bytes)")
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
        if not workbook.sheet_names:
            raise SheetError("it has no sheet to read")
        values = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except SheetError:
        raise
    except Exception as exc:  # calamine's errors (zip, XML, values) carry no common base
        raise SheetError(f"it cannot be read ({type(exc).__name__}: {exc})"[:200]) from None
    header = [_text(value) for value in values[0]] if values else []
    named = [(index, name) for index, name in enumerate(header) if name]

    def rows() -> Iterator[dict[str, str]]:
        for row in values[1:]:
            if not any(value not in (None, "") for value in row):
                continue
            size = len(row)
            yield {name: _text(row[index]) if index < size else "" for index, name in named}

    return header, rows()


def sheet_rows(stream: IO[bytes]) -> Iterator[dict[str, str]]:
    """The rows of `read_sheet`, without the header."""
    return read_sheet(stream)[1]


def _text(value: Any) -> str:
    """A cell's value as the text E-Modal shows: numbers without a needless `.0`, dates as
    MM/DD/YYYY."""
    if value is None:
        return ""
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%m/%d/%Y")
    if isinstance(value, date):
        return value.strftime("%m/%d/%Y")
    return str(value).strip()


@lru_cache(maxsize=4096)  # a sheet repeats the same few dates thousands of times
def parse_us_date(value: str) -> date | None:
    value = cell(value)
    if not value:
        return None
    try:
        return datetime.strptime(value, "%m/%d/%Y").date()  # noqa: DTZ007 - a calendar date
    except ValueError:
        return None


DATE_RANGE_RE = re.compile(
    r"^(\d{1,2}/\d{1,2}/\d{4})(?:\s*-\s*(\d{1,2}/\d{1,2}/\d{4}))?$", re.ASCII
)


@lru_cache(maxsize=4096)
def parse_date_range(value: str) -> tuple[date | None, date | None]:
    """`MM/DD/YYYY - MM/DD/YYYY` (the LFD/GTD cell: last free day, then good-through date)
    → both dates; a single date → (it, None); `N/A` or anything unreadable → (None, None)."""
    match = DATE_RANGE_RE.match(cell(value))
    if not match:
        return None, None
    return parse_us_date(match[1]), parse_us_date(match[2]) if match[2] else None


def parse_local_datetime(value: str) -> datetime | None:
    """'MM/DD/YYYY HH:MM' in the terminals' (the portal's) time zone."""
    value = cell(value)
    if not value:
        return None
    try:
        naive = datetime.strptime(value, "%m/%d/%Y %H:%M")  # noqa: DTZ007 - made aware below
    except ValueError:
        return None
    return timezone.make_aware(naive, timezone.get_default_timezone())


YES_NO = {"YES": True, "Y": True, "NO": False, "N": False}


def parse_yes_no(value: str) -> bool | None:
    return YES_NO.get(cell(value).upper())


def _clip(value: Any) -> str:
    return cell(value)[:200]


def _code(value: Any) -> str:
    return cell(value).upper()[:80]


_CONTAINER_PARSERS: dict[str, Callable[[str], Any]] = {
    "holds": parse_yes_no,
    "container_number": normalise_container_number,
    "trade_type": _code,
    "origin": _code,
    "destination": _code,
    "current_location": _code,
}
# (column, field, parser) once, rather than deciding per field of every row.
CONTAINER_FIELDS = [
    (column, field, _CONTAINER_PARSERS.get(field, _clip))
    for column, field in CONTAINER_COLUMNS.items()
    if field != "last_free_day"
]


def container_fields(raw: dict[str, str]) -> dict[str, Any]:
    """A containers-sheet row → ContainerRow field values (raw row kept alongside)."""
    get = raw.get
    fields: dict[str, Any] = {
        field: parse(get(column, "")) for column, field, parse in CONTAINER_FIELDS
    }
    fields["last_free_day"], fields["good_through"] = parse_date_range(get("LFD/GTD", ""))
    fields["raw"] = raw
    return fields


def is_availability_candidate(fields: dict[str, Any]) -> bool:
    """The customer's rule for containers worth an appointment check: Holds is `NO` and there
    is no pregate ticket (the cell is `N/A`, masked or not — a fully masked cell is a hidden
    ticket, so not a candidate)."""
    return fields["holds"] is False and not fields["pregate_ticket"]


def appointment_fields(raw: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for column, field in APPOINTMENT_COLUMNS.items():
        value = raw.get(column, "")
        fields[field] = parse_us_date(value) if field == "appointment_date" else cell(value)[:80]
    fields["raw"] = raw
    return fields


def is_appointments_header(header: list[str]) -> bool:
    """Whether a sheet's header row is an appointments export. The upstream hands back the
    newest sheet its browser downloaded when the export failed (often the containers sheet):
    that must not be stored as appointments."""
    names = {name.strip() for name in header if name}
    if names & CONTAINERS_SHEET_MARKERS:
        return False
    return any("appointment" in name.lower() for name in names)


# -- timelines ----------------------------------------------------------------------------------

# The milestones operators look at, by the names (and older spellings) the timeline page uses.
MILESTONE_NAMES: dict[str, tuple[str, ...]] = {
    "manifested_at": ("container manifested", "manifested"),
    "departed_terminal_at": ("departed terminal", "container departed terminal"),
    "empty_received_at": ("empty received", "empty container received", "empty returned"),
}
_MILESTONE_FIELD = {name: field for field, names in MILESTONE_NAMES.items() for name in names}
# Every milestone label the timeline pages are known to show (docs/upstream-contract.md), by
# `milestone_key`; any other label is kept and counted for staff, never dropped.
KNOWN_MILESTONES = frozenset(
    {
        *_MILESTONE_FIELD,
        "discharged",
        "ready for pick up",
        "pregate",
        "arrived at customer",
        "last free day",
        "booking confirmed",
        "empty picked up",
        "full received",
        "loaded on vessel",
        "vessel departed",
    }
)
_WORDS_RE = re.compile(r"[^a-z0-9]+")


def milestone_key(name: Any) -> str:
    """'Container  Manifested:' → 'container manifested' (case, spacing and punctuation)."""
    return _WORDS_RE.sub(" ", str(name or "").lower()).strip()


def milestone_dates(timeline: list[dict[str, Any]]) -> dict[str, datetime | None]:
    """The three milestones operators look at, from an upstream timeline (newest first): the
    date of each, matched by its name variants; `N/A` dates stay empty."""
    found: dict[str, datetime | None] = dict.fromkeys(MILESTONE_NAMES)
    for item in timeline or []:
        if not isinstance(item, dict):
            continue
        field = _MILESTONE_FIELD.get(milestone_key(item.get("milestone")))
        if field is not None and found[field] is None:
            found[field] = parse_local_datetime(str(item.get("date") or ""))
    return found


def unknown_milestones(timeline: list[dict[str, Any]]) -> list[str]:
    """The labels of a timeline (its entries' `milestone`) that are not known milestones, as
    written (each once, at most 80 characters)."""
    labels: dict[str, None] = {}
    for item in timeline or []:
        if not isinstance(item, dict):
            continue
        label = str(item.get("milestone") or "").strip()
        if label and milestone_key(label) not in KNOWN_MILESTONES:
            labels[shown(label, 80)] = None
    return list(labels)
