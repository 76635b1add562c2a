"""Deterministic data behind the simulator: containers, timelines, slots, appointments, files.

Everything derives from a stable hash of (config seed, username, ...), never from Python's
randomised ``hash()``, so two runs with the same seed serve identical data.

The containers sheet follows the real export's conventions (see the README): every cell is
text, empty values are ``N/A``, some are masked, terminals are codes (some without an E-Modal
name), LFD/GTD is a date range. A ``Sheet`` also carries what the page knows but the sheet does
not show (``Hidden``: milestone progress, the container's terminal, its appointment slots).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook

from .config import NO_PLATES_MARK, NOT_FOUND_CONTAINER, TERMINAL_NAMES, SimConfig

COLUMNS: list[str] = [
    "Container #",
    "Trade Type",
    "Status",
    "Holds",
    "Pregate Ticket#",
    "Emodal Pregate Status",
    "Gate Status",
    "Origin",
    "Destination",
    "Current Loc",
    "Line",
    "Vessel Name",
    "Vessel Code",
    "Voyage",
    "Size Type",
    "Fees",
    "LFD/GTD",
    "Tags",
]

APPOINTMENT_COLUMNS: list[str] = [
    "Appointment #",
    "Container #",
    "Trade Type",
    "Terminal",
    "Move Type",
    "Appointment Date",
    "Time Slot",
    "Status",
    "Truck Plate",
    "Trucking Company",
]

NA = "N/A"
NA_MASKED = "N/A *******"  # no value, masked
MASKED = "**************"  # a value exists but is hidden
# The customer's candidate rule: Holds NO and no pregate ticket ("N/A", masked or not).
NO_TICKET_RE = re.compile(r"N/A( \*+)?")

FIRST_PAGE_SIZE = 25
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PNG_CONTENT_TYPE = "image/png"
ZIP_CONTENT_TYPE = "application/zip"

# Named codes (TERMINAL_NAMES) weighted like a Los Angeles / Long Beach account.
_CODE_WEIGHTS: dict[str, int] = {"TTI": 6, "TRP1": 4, "ITS": 4, "PCT": 3, "ETSLAX": 3, "SSA": 2}
NAMED_TERMINAL_CODES: list[str] = list(TERMINAL_NAMES)
_NAMED_WEIGHTS = [_CODE_WEIGHTS.get(code, 1) for code in NAMED_TERMINAL_CODES]
# Codes E-Modal uses that have no name in the operators' list (BNLPC is a rail ramp).
UNNAMED_TERMINAL_CODES: list[str] = ["PNCT", "BNLPC", "LBCT", "YTI", "WBCT"]
UNNAMED_SHARE = 0.09
UNKNOWN_SHARE = 0.02  # rows E-Modal knows nothing about: N/A but the number

# Terminals whose appointment page writes slots on a 12-hour clock without a weekday. (Real
# answers show Total Terminals Intl LLC with weekday and 24-hour times; which terminals use
# the 12-hour form is not known, these two stand for them.)
TWELVE_HOUR_TERMINALS = frozenset({"Pacific Container Terminal", "SSA Terminal - PierA / LB"})
# Terminals whose import page has no container field: 'line' and 'equip_size' are required.
# (Real checks at ITS Long Beach and Total Terminals Intl LLC typed the container.)
NO_CONTAINER_FIELD_TERMINALS = frozenset(
    {"TraPac LLC - Los Angeles", "Everport Terminal Services - Los Angeles"}
)
NO_SLOTS = "No Appointments Available!"
NO_SLOTS_PLAIN = "No Appointments Available"
MOVE_TYPES = ("PICK FULL", "DROP EMPTY", "DROP FULL", "PICK EMPTY")

# Line holds SCAC codes; weights, container prefixes and vessel names as in a real
# production sheet of 414 rows (MSCU 353, ONEY 23, HDMU 19, CMDU 7, N/A 5, YMJA 4, ...).
LINES: dict[str, dict[str, Any]] = {
    "MSCU": {
        "weight": 85,
        "prefixes": ["MSDU", "MSMU", "MSNU", "MEDU", "MSBU", "CAIU", "TXGU", "FFAU"],
        "vessels": ["MSC JOSSELINE", "MSC VITA", "MSC ARIANE", "MSC COTONOU VIII"],
    },
    "ONEY": {
        "weight": 6,
        "prefixes": ["ONEU", "TRHU", "TCLU", "FDCU"],
        "vessels": ["ONE ALTAIR", "NYK REMUS"],
    },
    "HDMU": {
        "weight": 5,
        "prefixes": ["KOCU", "HMMU", "HDMU", "GAOU"],
        "vessels": ["YM WHOLESOME", "HMM ALGECIRAS"],
    },
    "CMDU": {"weight": 2, "prefixes": ["CMAU", "TGBU", "CXDU"], "vessels": ["CMA CGM ZEPHYR"]},
    "YMJA": {"weight": 1, "prefixes": ["YMMU", "YMLU"], "vessels": ["YM WORTH"]},
    "GMSU": {"weight": 1, "prefixes": ["TCLU"], "vessels": ["GSL ELEFTHERIA"]},
    "OOLU": {"weight": 1, "prefixes": ["OOCU", "TXGU"], "vessels": ["OOCL GERMANY"]},
    "EGLV": {"weight": 1, "prefixes": ["EISU", "EGHU"], "vessels": ["EVER ACE"]},
    NA: {"weight": 1, "prefixes": ["SEGU", "MAGU"], "vessels": [NA]},
}
_LINE_NAMES = list(LINES)
_LINE_WEIGHTS = [LINES[name]["weight"] for name in _LINE_NAMES]

# Size types, weighted as in the same sheet (40DH in most rows); exports carry 20GP/40GP.
SIZE_TYPES = [*["40DH"] * 80, *["40GP"] * 4, *["20GP"] * 4, "45DH", "40RH", "40VH", "40HC"]
RARE_SIZE_TYPES = ["4310", "4510"]
EXPORT_SIZE_TYPES = ["20GP", "20GP", "40GP"]
TRUCKING_COMPANIES = ["K & R TRANSPORTATION LLC", "PACIFIC DRAYAGE SERVICES INC"]

# Milestones in chronological order; Hidden.progress counts the completed ones.
IMPORT_MILESTONES = [
    "Container Manifested",
    "Discharged",
    "Ready for pick up",
    "Pregate",
    "Departed Terminal",
    "Arrived at customer",
    "Empty Received",
]
OLD_MANIFESTED = "Manifested"  # the older pages' label
READY_FOR_PICK_UP = "Ready for pick up"
LAST_FREE_DAY = "Last Free Day"  # on some import pages; the customer's code reads it
EXPORT_MILESTONES = [
    "Booking Confirmed",
    "Empty Picked Up",
    "Pregate",
    "Full Received",
    "Loaded on Vessel",
    "Vessel Departed",
]
IMPORT_STATUS = {
    1: "ON VESSEL",
    2: "IN YARD",
    3: "IN YARD",
    4: "IN YARD",
    5: "GATE OUT",
    6: "GATE OUT",
    7: "GATE IN",
}
EXPORT_STATUS = {1: NA, 2: "GATE OUT", 3: "GATE OUT", 4: "GATE IN", 5: "ON VESSEL", 6: "ON VESSEL"}
# Progress from which the Pregate milestone is completed.
IMPORT_PREGATE_PROGRESS = IMPORT_MILESTONES.index("Pregate") + 1
EXPORT_PREGATE_PROGRESS = EXPORT_MILESTONES.index("Pregate") + 1

# Positions forced to be candidates (Holds NO, no pregate ticket) so every account of 10 or
# more containers has work of each kind: a PICK FULL at a named terminal, an export, a DROP
# EMPTY (through pregate, Destination and Current Loc N/A, no slots until generation 1) and an
# import at a terminal code without a name.
_FORCED: dict[int, str] = {0: "import-pick", 3: "export", 6: "import-drop", 9: "import-unnamed"}

# What one data generation changes (``changes_between``), in the order they are chosen.
CHANGE_KINDS = (
    "slots_opened",
    "slots_closed",
    "holds_released",
    "lfd",
    "pregate_ticket_set",
    "status",
    "removed",
    "added",
)

_COUNT_RE = re.compile(r"\+c(\d+)")


def stable_int(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(stable_int(*parts))


def container_count(username: str, config: SimConfig) -> int:
    match = _COUNT_RE.search(username)
    return int(match.group(1)) if match else config.containers


def _fmt_date(day: dt.date) -> str:
    return day.strftime("%m/%d/%Y")


def is_candidate(row: dict[str, str]) -> bool:
    """The customer's rule: Holds ``NO`` and Pregate Ticket# ``N/A`` (optionally masked)."""
    return row["Holds"] == "NO" and bool(NO_TICKET_RE.fullmatch(row["Pregate Ticket#"]))


def is_known(row: dict[str, str]) -> bool:
    return row["Trade Type"] != NA


def has_ticket(row: dict[str, str]) -> bool:
    return not NO_TICKET_RE.fullmatch(row["Pregate Ticket#"])


# ------------------------------------------------------------ hidden properties


def has_pregate_milestone(container_id: str, config: SimConfig) -> bool:
    """About 1 container in 20 has a timeline page without a Pregate milestone."""
    return stable_int(config.seed, "pregate-milestone", container_id) % 20 != 0


def has_booking(container_id: str, config: SimConfig) -> bool:
    """About 1 export in 10 has no booking number on its page."""
    return stable_int(config.seed, "has-booking", container_id) % 10 != 0


def old_spelling(container_id: str, config: SimConfig) -> bool:
    """About 1 page in 3 is an older page that writes "Manifested"."""
    return stable_int(config.seed, "old-page", container_id) % 3 == 0


def has_last_free_day(container_id: str, config: SimConfig) -> bool:
    """About 1 import page in 2 also lists a "Last Free Day" milestone."""
    return stable_int(config.seed, "last-free-day", container_id) % 2 == 0


def detection_method(container_id: str, config: SimConfig) -> str:
    if stable_int(config.seed, "detection", container_id) % 3 == 0:
        return "image_processing"
    return "dom_class_check"


@dataclass
class Hidden:
    """What the pages know about a container beyond its sheet row."""

    progress: int  # completed milestones; 0 for a container E-Modal knows nothing about
    terminal: str  # the container's terminal code
    has_slots: bool = True
    slot_version: int = 0


@dataclass
class Sheet:
    """One account's data at one generation."""

    rows: list[dict[str, str]]
    hidden: dict[str, Hidden]
    # What the step into this generation changed (empty lists for generation 0).
    changes: dict[str, list[str]] = field(default_factory=dict)
    # The forced candidates (positions in _FORCED): generations keep them candidates.
    forced: set[str] = field(default_factory=set)
    _index: dict[str, dict[str, str]] | None = field(default=None, repr=False, compare=False)

    def find(self, container_id: str) -> dict[str, str] | None:
        """The row the page's search finds: exact (case-sensitive) number of a known container."""
        if container_id == NOT_FOUND_CONTAINER:
            return None
        if self._index is None or len(self._index) != len(self.rows):
            self._index = {row["Container #"]: row for row in self.rows}
        row = self._index.get(container_id)
        return row if row is not None and is_known(row) else None


# ------------------------------------------------------------------ generation


def _code(rng: random.Random) -> str:
    if rng.random() < UNNAMED_SHARE:
        return rng.choice(UNNAMED_TERMINAL_CODES)
    return _named_code(rng)


def _named_code(rng: random.Random) -> str:
    return rng.choices(NAMED_TERMINAL_CODES, weights=_NAMED_WEIGHTS)[0]


def _ticket(rng: random.Random, code: str) -> str:
    return f"{code}-{rng.randint(1000, 9999)}-{rng.randrange(10**5):05d} {rng.randrange(10**6):06d}"


def _lfd(rng: random.Random, today: dt.date) -> str:
    if rng.random() < 0.12:
        return NA
    return _lfd_range(rng, today)


def _lfd_range(rng: random.Random, today: dt.date) -> str:
    last_free = today + dt.timedelta(days=rng.randint(-5, 10))
    good_through = last_free
    if rng.random() < 0.12:
        good_through = last_free + dt.timedelta(days=rng.randint(3, 160))
    return f"{_fmt_date(last_free)} - {_fmt_date(good_through)}"


def _pregate_progress(row: dict[str, str]) -> int:
    return IMPORT_PREGATE_PROGRESS if row["Trade Type"] == "IMPORT" else EXPORT_PREGATE_PROGRESS


def _set_ticket(row: dict[str, str], hidden: Hidden, rng: random.Random, present: bool) -> None:
    """Pregate Ticket# and Emodal Pregate Status, coherent with each other."""
    passed = hidden.progress >= _pregate_progress(row)
    if present:
        row["Pregate Ticket#"] = (
            MASKED if rng.random() < 0.15 else _ticket(rng, hidden.terminal or "TTI")
        )
        roll = rng.random()
        if roll < 0.12:
            row["Emodal Pregate Status"] = rng.choice([NA_MASKED, MASKED])
        elif passed:
            row["Emodal Pregate Status"] = "COMPLETED"
        else:
            row["Emodal Pregate Status"] = "CONFIRMED" if roll < 0.85 else "MISSED"
    else:
        row["Pregate Ticket#"] = NA_MASKED if rng.random() < 0.3 else NA
        roll = rng.random()
        row["Emodal Pregate Status"] = _pick(
            roll, (0.8, NA), (0.9, "CANCELED"), (0.95, "MISSED"), (1.0, NA_MASKED)
        )


def _pick(roll: float, *choices: tuple[float, str]) -> str:
    """The value of the first (threshold, value) whose threshold ``roll`` is under."""
    return next((value for limit, value in choices if roll < limit), choices[-1][1])


def _place(row: dict[str, str], hidden: Hidden, rng: random.Random) -> None:
    """Status, Current Loc and Gate Status, coherent with the milestone progress."""
    progress, terminal = hidden.progress, hidden.terminal
    roll = rng.random()
    if row["Trade Type"] == "IMPORT":
        row["Status"] = IMPORT_STATUS[progress]
        if progress == 1:
            current = terminal if roll < 0.3 else NA
            gate = NA if roll < 0.9 else NA_MASKED
        elif progress <= 4:
            current = terminal if roll < 0.9 else NA
            gate = _pick(roll, (0.6, NA), (0.9, "CONFIRMED"), (0.95, "REJECTED"), (1.0, MASKED))
        elif progress <= 6:
            destination = row["Destination"]
            current = destination if destination != NA and roll < 0.3 else NA
            gate = "ACCEPTED" if roll < 0.8 else "CONFIRMED" if roll < 0.9 else MASKED
        else:
            current = terminal
            gate = "ACCEPTED" if roll < 0.9 else NA_MASKED
    else:
        row["Status"] = EXPORT_STATUS[progress]
        current = terminal
        if progress == 1:
            gate = NA
        elif progress <= 3:
            gate = "ACCEPTED" if roll < 0.8 else "CONFIRMED" if roll < 0.9 else MASKED
        elif progress == 4:
            gate = "ACCEPTED" if roll < 0.85 else "REJECTED" if roll < 0.9 else MASKED
        else:
            gate = "ACCEPTED" if roll < 0.85 else NA_MASKED
    row["Current Loc"], row["Gate Status"] = current, gate


def _vessel_code(vessel: str) -> str:
    return f"9{stable_int('imo', vessel) % 10**6:06d}"


def _voyage(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.randrange(1, 999):03d}{rng.choice('EWNS')}"
    return f"0{rng.choice('MAFX')}{rng.choice('ABCR')}{rng.randint(1, 9)}{rng.choice('EWNS')}"


def _number(
    rng: random.Random, prefixes: list[str], used: set[str], config: SimConfig, forced: bool
) -> str:
    while True:
        number = rng.choice(prefixes) + f"{rng.randrange(10**7):07d}"
        if number in used:
            continue
        if forced and not (has_pregate_milestone(number, config) and has_booking(number, config)):
            continue
        used.add(number)
        return number


def _make_container(
    rng: random.Random, used: set[str], today: dt.date, config: SimConfig, forced: str | None
) -> tuple[dict[str, str], Hidden]:
    line = rng.choices(_LINE_NAMES, weights=_LINE_WEIGHTS)[0]
    info = LINES[line]
    number = _number(rng, info["prefixes"], used, config, forced is not None)
    if forced is None and rng.random() < UNKNOWN_SHARE:
        row = dict.fromkeys(COLUMNS, NA)
        row["Container #"] = number
        return row, Hidden(progress=0, terminal=NA, has_slots=False)

    trade = "IMPORT" if rng.random() < 0.75 else "EXPORT"
    if forced:
        trade = "EXPORT" if forced == "export" else "IMPORT"
    terminal = _code(rng)
    if trade == "IMPORT":
        progress = rng.choices(range(1, 8), weights=[10, 10, 25, 10, 20, 10, 15])[0]
        origin = terminal if rng.random() < 0.85 else NA
        destination = NA
        if rng.random() >= 0.8:
            destination = "BNLPC" if rng.random() < 0.25 else _code(rng)
    else:
        # Every export row seen: Origin N/A, Destination = Current Loc = the terminal.
        progress = rng.choices(range(1, 7), weights=[15, 20, 10, 25, 20, 10])[0]
        origin = NA
        destination = terminal
    vessel = rng.choice(info["vessels"])
    size = rng.choice(SIZE_TYPES) if rng.random() < 0.99 else rng.choice(RARE_SIZE_TYPES)
    if trade == "EXPORT":
        size = rng.choice(EXPORT_SIZE_TYPES)
    holds_roll = rng.random()
    row = dict.fromkeys(COLUMNS, NA)
    row.update(
        {
            "Container #": number,
            "Trade Type": trade,
            "Holds": "YES" if holds_roll < 0.35 else "NO" if holds_roll < 0.9 else NA,
            "Origin": origin,
            "Destination": destination,
            "Line": line,
            "Vessel Name": vessel,
            "Vessel Code": _vessel_code(vessel) if vessel != NA else NA,
            "Voyage": _voyage(rng),
            "Size Type": size,
            "Fees": "info" if rng.random() < 0.3 else NA,
            "LFD/GTD": _lfd(rng, today),
            "Tags": "info" if rng.random() < 0.1 else NA,
        }
    )
    hidden = Hidden(progress=progress, terminal=terminal, has_slots=rng.random() < 0.65)
    ticket = rng.random() < 0.9
    if forced:
        ticket = False
        row["Holds"] = "NO"
        if row["LFD/GTD"] == NA:
            row["LFD/GTD"] = _lfd_range(rng, today)
        hidden.terminal = (
            rng.choice([c for c in UNNAMED_TERMINAL_CODES if c != "BNLPC"])
            if forced == "import-unnamed"
            else _named_code(rng)
        )
        hidden.progress = {"import-pick": 3, "export": 2, "import-drop": 5}.get(forced, 3)
        hidden.has_slots = forced != "import-drop"
        if forced == "export":
            row["Destination"] = hidden.terminal
        else:
            row["Origin"] = hidden.terminal
            row["Destination"] = hidden.terminal if forced == "import-pick" else NA
    _place(row, hidden, rng)
    if forced == "import-drop":
        row["Current Loc"] = NA
    elif forced in ("import-pick", "import-unnamed"):
        row["Current Loc"] = hidden.terminal
    _set_ticket(row, hidden, rng, ticket)
    if forced:
        row["Pregate Ticket#"] = NA_MASKED if forced == "import-drop" else NA
        row["Emodal Pregate Status"] = NA
    return row, hidden


def _choose(
    rng: random.Random,
    rows: list[dict[str, str]],
    changed: set[str],
    count: int,
    eligible: Callable[[dict[str, str]], bool],
    *prefer: Callable[[dict[str, str]], bool],
) -> list[dict[str, str]]:
    """Up to ``count`` eligible rows not changed yet, from the first preference tier first."""
    pool = [r for r in rows if r["Container #"] not in changed and eligible(r)]
    chosen: list[dict[str, str]] = []
    for tier in (*prefer, lambda r: True):
        if len(chosen) >= count:
            break
        picked = {id(r) for r in chosen}
        candidates = [r for r in pool if id(r) not in picked and tier(r)]
        chosen += rng.sample(candidates, min(count - len(chosen), len(candidates)))
    changed.update(r["Container #"] for r in chosen)
    return chosen


def _shift_range(text: str, days: int) -> str:
    shifted = [
        dt.datetime.strptime(part, "%m/%d/%Y").date() + dt.timedelta(days=days)  # noqa: DTZ007
        for part in text.split(" - ")
    ]
    return " - ".join(_fmt_date(day) for day in shifted)


def _advance(
    sheet: Sheet, rng: random.Random, used: set[str], today: dt.date, config: SimConfig
) -> None:
    """One data generation; records what it changed in ``sheet.changes``."""
    rows, hidden, forced = sheet.rows, sheet.hidden, sheet.forced
    count = max(1, len(rows) // 100)
    changed: set[str] = set()
    changes: dict[str, list[str]] = {kind: [] for kind in CHANGE_KINDS}

    def h(row: dict[str, str]) -> Hidden:
        return hidden[row["Container #"]]

    def is_import(row: dict[str, str]) -> bool:
        return row["Trade Type"] == "IMPORT"

    def free(row: dict[str, str]) -> bool:
        return row["Container #"] not in forced

    for row in _choose(
        rng,
        rows,
        changed,
        count,
        lambda r: is_import(r) and not h(r).has_slots,
        lambda r: not free(r),
        is_candidate,
    ):
        h(row).has_slots = True
        h(row).slot_version += 1
        changes["slots_opened"].append(row["Container #"])
    for row in _choose(
        rng, rows, changed, count, lambda r: free(r) and is_import(r) and h(r).has_slots
    ):
        h(row).has_slots = False
        changes["slots_closed"].append(row["Container #"])
    for row in _choose(
        rng, rows, changed, count, lambda r: r["Holds"] == "YES", lambda r: not has_ticket(r)
    ):
        row["Holds"] = "NO"
        changes["holds_released"].append(row["Container #"])
    for row in _choose(rng, rows, changed, count, lambda r: r["LFD/GTD"] != NA):
        row["LFD/GTD"] = _shift_range(row["LFD/GTD"], rng.randint(1, 3))
        changes["lfd"].append(row["Container #"])
    # A ticket is set on a free container if one has none; else on a forced one while at
    # least 3 forced candidates would remain.
    spare_forced = len(forced) > 3
    for row in _choose(
        rng,
        rows,
        changed,
        count,
        lambda r: (free(r) or spare_forced) and is_known(r) and not has_ticket(r),
        lambda r: free(r) and is_candidate(r),
        free,
    ):
        forced.discard(row["Container #"])
        _set_ticket(row, h(row), rng, present=True)
        changes["pregate_ticket_set"].append(row["Container #"])
    for row in _choose(
        rng,
        rows,
        changed,
        count,
        lambda r: free(r) and is_known(r) and h(r).progress < (7 if is_import(r) else 6),
    ):
        h(row).progress += 1
        _place(row, h(row), rng)
        changes["status"].append(row["Container #"])
    if len(rows) > 1:
        gone = _choose(rng, rows, changed, 1, free)
        for row in gone:
            rows.remove(row)
            del hidden[row["Container #"]]
            used.discard(row["Container #"])
            changes["removed"].append(row["Container #"])
    row, extra = _make_container(rng, used, today, config, None)
    rows.append(row)
    hidden[row["Container #"]] = extra
    changes["added"].append(row["Container #"])
    sheet.changes = changes
    sheet._index = None


def sheet_for(username: str, config: SimConfig, generation: int = 0) -> Sheet:
    """``username``'s data at ``generation``: the sheet rows and what the pages know."""
    today = config.current_date()
    used: set[str] = set()
    sheet = Sheet([], {}, {kind: [] for kind in CHANGE_KINDS})
    for i in range(container_count(username, config)):
        row, extra = _make_container(
            _rng(config.seed, username, "c", i), used, today, config, _FORCED.get(i)
        )
        sheet.rows.append(row)
        sheet.hidden[row["Container #"]] = extra
        if i in _FORCED:
            sheet.forced.add(row["Container #"])
    for step in range(1, generation + 1):
        _advance(sheet, _rng(config.seed, username, "advance", step), used, today, config)
    return sheet


def containers_for(username: str, config: SimConfig, generation: int = 0) -> list[dict[str, str]]:
    """The containers sheet of ``username`` at data ``generation``: dicts keyed by COLUMNS."""
    return sheet_for(username, config, generation).rows


def changes_between(username: str, config: SimConfig, generation: int) -> dict[str, list[str]]:
    """Container numbers that change from ``generation`` to ``generation + 1``, by kind
    (``CHANGE_KINDS``): slots opened/closed, holds released, LFD range shifted, pregate ticket
    set, status moved, removed, added."""
    return sheet_for(username, config, generation + 1).changes


def container_details(sheet: Sheet, config: SimConfig) -> dict[str, dict[str, Any]]:
    """Per container number, what the pages would say (for tests and the control surface)."""
    details = {}
    for row in sheet.rows:
        number, hidden = row["Container #"], sheet.hidden[row["Container #"]]
        known = is_known(row)
        milestone = known and has_pregate_milestone(number, config)
        details[number] = {
            "known": known,
            "candidate": is_candidate(row),
            "progress": hidden.progress,
            "terminal": hidden.terminal,
            "has_pregate_milestone": milestone,
            "passed_pregate": hidden.progress >= _pregate_progress(row) if milestone else None,
            "has_slots": hidden.has_slots if row["Trade Type"] == "IMPORT" else None,
            "booking_number": booking_number_for(row, config) if known else None,
        }
    return details


# -------------------------------------------------------------------- pages


def timeline_for(
    sheet: Sheet, row: dict[str, str], config: SimConfig
) -> tuple[bool | None, list[dict[str, str]]]:
    """(passed_pregate, milestones newest first); passed_pregate is None when the page has no
    Pregate milestone."""
    number = row["Container #"]
    hidden = sheet.hidden[number]
    is_import = row["Trade Type"] == "IMPORT"
    names = list(IMPORT_MILESTONES if is_import else EXPORT_MILESTONES)
    if is_import and old_spelling(number, config):
        names[0] = OLD_MANIFESTED
    progress = hidden.progress
    rng = _rng(config.seed, "timeline", number)
    stamp = dt.datetime.combine(config.current_date(), dt.time(0, 0)) - dt.timedelta(
        days=rng.randint(0, 2)
    )
    dates: list[str] = []
    for _ in range(progress):
        moment = stamp.replace(hour=rng.randint(5, 21), minute=rng.randrange(0, 60, 5))
        dates.append(moment.strftime("%m/%d/%Y %H:%M"))
        stamp -= dt.timedelta(days=rng.randint(1, 4))
    dates.reverse()
    timeline = [
        {"milestone": name, "date": dates[i], "status": "completed"}
        if i < progress
        else {"milestone": name, "date": NA, "status": "pending"}
        for i, name in enumerate(names)
    ]
    if is_import and has_last_free_day(number, config):
        # The page's "Last Free Day" row (the customer's code reads it) sits after "Ready for
        # pick up" and shares its state and time.
        ready = names.index(READY_FOR_PICK_UP)
        timeline.insert(ready + 1, {**timeline[ready], "milestone": LAST_FREE_DAY})
    passed: bool | None = progress >= _pregate_progress(row)
    if not has_pregate_milestone(number, config):
        timeline = [m for m in timeline if m["milestone"] != "Pregate"]
        passed = None
    timeline.reverse()
    return passed, timeline


def booking_number_for(row: dict[str, str], config: SimConfig) -> str | None:
    number = row["Container #"]
    if row["Trade Type"] != "EXPORT" or not has_booking(number, config):
        return None
    value = stable_int(config.seed, "booking", number)
    if row["Line"] == "MSCU":
        return f"EBKG{value % 10**8:08d}"
    if row["Line"] == NA:
        return f"{value % 10**9:09d}"
    return f"{row['Line'][:3]}{value % 10**9:09d}"


def _clock12(hour: int) -> str:
    hour %= 24
    suffix = "AM" if hour < 12 else "PM"
    return f"{(hour % 12) or 12:02d}:00 {suffix}"


def available_times(
    container_id: str,
    terminal: str,
    config: SimConfig,
    now: dt.datetime,
    *,
    has_slots: bool = True,
    version: int = 0,
) -> list[str]:
    """The import page's time dropdown: ``["No Appointments Available!"]`` (sometimes without
    the ``!``) when there are no slots, else 1-6 slots over the next days, some crossing
    midnight; 12-hour terminals (``TWELVE_HOUR_TERMINALS``) write no weekday."""
    if not has_slots:
        bang = stable_int(config.seed, "bang", container_id) % 4 != 0
        return [NO_SLOTS if bang else NO_SLOTS_PLAIN]
    rng = _rng(config.seed, "slots", container_id, version)
    picks: set[tuple[int, int, int]] = set()
    for _ in range(rng.randint(1, 5)):
        picks.add((rng.randint(1, 6), rng.randint(6, 20), 1))
    if rng.random() < 0.35:
        picks.add((rng.randint(1, 6), 23, 3))  # a night slot: 23:00 - 02:00
    slots = []
    for offset, hour, length in sorted(picks):
        day = now.date() + dt.timedelta(days=offset)
        end = (hour + length) % 24
        if terminal in TWELVE_HOUR_TERMINALS:
            slots.append(f"{day:%m/%d/%Y} {_clock12(hour)} - {_clock12(end)}")
        else:
            slots.append(f"{day:%A} {day:%m/%d/%Y} {hour:02d}:00 - {end:02d}:00")
    return slots


def _plate(rng: random.Random) -> str:
    letters = "".join(rng.choices("ABCDEFGHJKLMNPRSTUVWXYZ", k=3))
    return f"{rng.randint(1, 9)}{letters}{rng.randrange(1000):03d}"


def truck_plates(username: str, config: SimConfig) -> list[str]:
    """The truck plates the appointment page lists for ``username`` (its account's trucks),
    in the page's order: 1-4 plates; none for a username containing ``+p0``."""
    if NO_PLATES_MARK in username:
        return []
    rng = _rng(config.seed, username, "plates")
    plates: list[str] = []
    while len(plates) < 1 + rng.randrange(4):
        plate = _plate(rng)
        if plate not in plates:
            plates.append(plate)
    return plates


def appointments_for(
    username: str, sheet: Sheet | list[dict[str, str]], config: SimConfig
) -> list[dict[str, str]]:
    """The rows of ``username``'s appointments sheet (``sheet``: a Sheet or its rows)."""
    rng = _rng(config.seed, username, "appointments")
    today = config.current_date()
    rows_in = sheet.rows if isinstance(sheet, Sheet) else sheet
    known = [r for r in rows_in if is_known(r)]
    chosen = rng.sample(known, min(len(known), 3 + rng.randrange(8)))
    rows = []
    for container in chosen:
        trade = container["Trade Type"]
        hour = rng.randint(6, 17)
        day = today + dt.timedelta(days=rng.randint(-5, 6))
        if isinstance(sheet, Sheet):
            code = sheet.hidden[container["Container #"]].terminal
        else:
            code = next((container[c] for c in ("Origin", "Current Loc") if container[c] != NA), NA)
        rows.append(
            {
                "Appointment #": f"APT{rng.randrange(10**8):08d}",
                "Container #": container["Container #"],
                "Trade Type": trade,
                "Terminal": TERMINAL_NAMES.get(code, code),
                "Move Type": rng.choice(MOVE_TYPES[:2] if trade == "IMPORT" else MOVE_TYPES[2:]),
                "Appointment Date": _fmt_date(day),
                "Time Slot": f"{hour:02d}:00 - {hour + 1:02d}:00",
                "Status": "COMPLETED" if day < today else rng.choice(["SCHEDULED", "CONFIRMED"]),
                "Truck Plate": _plate(rng),
                "Trucking Company": rng.choice(TRUCKING_COMPANIES),
            }
        )
    rows.sort(key=lambda r: (r["Appointment Date"][6:], r["Appointment Date"], r["Time Slot"]))
    return rows


# -------------------------------------------------------------------- files


def xlsx_bytes(columns: list[str], rows: list[dict[str, str]], title: str) -> bytes:
    # write_only keeps memory flat for the +c10000 benchmark accounts.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    sheet.append(columns)
    for row in rows:
        sheet.append([str(row.get(col, "")) for col in columns])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def read_xlsx(data: bytes) -> list[dict[str, Any]]:
    """Parse an xlsx produced here back into dicts (header row = keys)."""
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True)
    sheet = workbook.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    workbook.close()
    if not rows:
        return []
    header = [str(c) for c in rows[0]]
    return [
        {key: ("" if value is None else value) for key, value in zip(header, row, strict=False)}
        for row in rows[1:]
    ]


def png_bytes(width: int, height: int, seed: int) -> bytes:
    """A small real PNG (stripes) standing in for a portal screenshot."""
    rng = random.Random(seed)
    base = [rng.randrange(60, 200) for _ in range(3)]
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        shade = 40 if (y // 8) % 2 else 0
        for _x in range(width):
            raw.extend(min(255, c + shade) for c in base)

    def chunk(tag: bytes, payload: bytes) -> bytes:
        body = tag + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A debug bundle: screenshots zipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
