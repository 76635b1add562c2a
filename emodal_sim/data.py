"""Deterministic data behind the simulator: containers, timelines, slots, appointments, files.

Everything derives from a stable hash of (config seed, username, ...), never from Python's
randomised ``hash()``, so two runs with the same seed serve identical data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
import re
import struct
import zlib
from typing import Any

from openpyxl import Workbook

from .config import NOT_FOUND_CONTAINER, SimConfig

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

FIRST_PAGE_SIZE = 25
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PNG_CONTENT_TYPE = "image/png"

TERMINALS = [
    "ITS Long Beach",
    "TraPac Los Angeles",
    "Pier 400 APM",
    "LBCT",
    "Fenix Marine",
    "Yusen YTI",
    "WBCT",
]

LINES: dict[str, dict[str, list[str]]] = {
    "MAERSK": {"prefixes": ["MSKU", "MRKU", "MAEU"], "vessels": ["MAERSK ESSEN", "MAERSK EMDEN"]},
    "MSC": {"prefixes": ["MSCU", "MEDU"], "vessels": ["MSC ANNA", "MSC TESSA"]},
    "CMA CGM": {"prefixes": ["CMAU", "ECMU"], "vessels": ["CMA CGM MARCO POLO", "CMA CGM ZEPHYR"]},
    "COSCO": {"prefixes": ["CSNU", "CBHU"], "vessels": ["COSCO SHIPPING ARIES", "COSCO PRIDE"]},
    "ONE": {"prefixes": ["ONEU", "NYKU"], "vessels": ["ONE APUS", "ONE HARMONY"]},
    "HAPAG-LLOYD": {"prefixes": ["HLXU", "HLBU"], "vessels": ["BERLIN EXPRESS", "HAMBURG EXPRESS"]},
    "EVERGREEN": {"prefixes": ["EGHU", "EMCU"], "vessels": ["EVER ACE", "EVER GIVEN"]},
}

SIZE_TYPES = ["40HC", "40HC", "40HC", "20GP", "20GP", "40GP", "45HC", "20RF", "40RH"]
FEES = ["$150.00", "$275.00", "$95.50", "$412.75", "$1,050.00"]
TAGS = ["HOT", "Priority", "Reefer", "Overweight", "Customer: ACME", "Chassis split"]
TRUCKING_COMPANIES = ["K & R TRANSPORTATION", "PACIFIC DRAYAGE", "HARBOR FREIGHT LINES"]
MOVE_TYPES = {"IMPORT": ["PICK FULL", "DROP EMPTY"], "EXPORT": ["DROP FULL", "PICK EMPTY"]}

# Milestones in chronological order; a container's Status says how many are completed.
IMPORT_MILESTONES = [
    "Manifested",
    "Vessel Arrived",
    "Discharged",
    "Available for Pickup",
    "Gate Out Full",
    "Departed Terminal",
    "Empty Received",
]
IMPORT_STATUSES = [
    "Manifested",
    "Vessel Arrived",
    "Discharged",
    "Available",
    "Gated Out",
    "In Transit",
    "Empty Returned",
]
EXPORT_MILESTONES = [
    "Booking Confirmed",
    "Empty Picked Up",
    "Full Received",
    "Loaded on Vessel",
    "Vessel Departed",
]
EXPORT_STATUSES = ["Booked", "Empty Out", "Received", "Loaded", "Departed"]
# Index (1-based count of completed milestones) from which the container counts as past pregate.
IMPORT_PREGATE_PROGRESS = IMPORT_MILESTONES.index("Departed Terminal") + 1
EXPORT_PREGATE_PROGRESS = EXPORT_MILESTONES.index("Full Received") + 1

# Positions forced to be "importable" (Holds NO, no pregate ticket) so every account has work.
_FORCED: dict[int, str] = {0: "IMPORT", 2: "EXPORT", 4: "IMPORT", 7: "EXPORT", 9: "IMPORT"}

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


def _progress(container: dict[str, str]) -> int:
    statuses = IMPORT_STATUSES if container["Trade Type"] == "IMPORT" else EXPORT_STATUSES
    try:
        return statuses.index(container["Status"]) + 1
    except ValueError:
        return 1


def _apply_progress(container: dict[str, str], progress: int) -> None:
    """Keep Status, Gate Status and Current Loc coherent with the milestone progress."""
    if container["Trade Type"] == "IMPORT":
        progress = max(1, min(progress, len(IMPORT_STATUSES)))
        container["Status"] = IMPORT_STATUSES[progress - 1]
        if progress <= 2:
            container["Gate Status"], container["Current Loc"] = "N/A", "On Vessel"
        elif progress <= 4:
            container["Gate Status"], container["Current Loc"] = (
                "Not Gated",
                container["Destination"],
            )
        elif progress <= 6:
            container["Gate Status"], container["Current Loc"] = "Gated Out", "In Transit"
        else:
            container["Gate Status"], container["Current Loc"] = "Gated In", container["Origin"]
    else:
        progress = max(1, min(progress, len(EXPORT_STATUSES)))
        container["Status"] = EXPORT_STATUSES[progress - 1]
        if progress <= 2:
            container["Gate Status"], container["Current Loc"] = "Not Gated", "In Transit"
        elif progress == 3:
            container["Gate Status"], container["Current Loc"] = (
                "Gated In",
                container["Destination"],
            )
        else:
            container["Gate Status"], container["Current Loc"] = "Gated In", "On Vessel"


def _set_pregate(container: dict[str, str], ticket: str) -> None:
    container["Pregate Ticket#"] = ticket
    container["Emodal Pregate Status"] = "Pregate Approved" if ticket else "N/A"


def _make_container(
    rng: random.Random, used: set[str], today: dt.date, forced: str | None
) -> dict[str, str]:
    line = rng.choice(list(LINES))
    info = LINES[line]
    while True:
        number = rng.choice(info["prefixes"]) + f"{rng.randrange(10**7):07d}"
        if number not in used:
            used.add(number)
            break
    trade = forced or ("IMPORT" if rng.random() < 0.7 else "EXPORT")
    origin, destination = rng.sample(TERMINALS, 2)
    vessel = rng.choice(info["vessels"])
    container = dict.fromkeys(COLUMNS, "")
    container.update(
        {
            "Container #": number,
            "Trade Type": trade,
            "Holds": "YES" if rng.random() < 0.3 else "NO",
            "Origin": origin,
            "Destination": destination,
            "Line": line,
            "Vessel Name": vessel,
            "Vessel Code": "".join(w[0] for w in vessel.split())[:2] + vessel.split()[-1][:2],
            "Voyage": f"{rng.randrange(1, 999):03d}{rng.choice('EW')}",
            "Size Type": rng.choice(SIZE_TYPES),
            "Tags": rng.choice(TAGS) if rng.random() < 0.3 else "",
        }
    )
    _set_pregate(container, f"PGT{rng.randrange(10**7):07d}" if rng.random() < 0.25 else "")
    if trade == "IMPORT":
        progress = rng.choice([1, 2, 3, 3, 4, 4, 4, 4, 5, 6, 7])
        container["Fees"] = "$0.00" if rng.random() < 0.6 else rng.choice(FEES)
        lfd = today + dt.timedelta(days=rng.randint(-3, 7))
        container["LFD/GTD"] = "N/A" if rng.random() < 0.15 else _fmt_date(lfd)
    else:
        progress = rng.choice([1, 2, 2, 3, 3, 4, 5])
        container["Fees"] = "$0.00" if rng.random() < 0.85 else rng.choice(FEES[:2])
        container["LFD/GTD"] = _fmt_date(today + dt.timedelta(days=rng.randint(0, 14)))
    if forced:
        container["Holds"] = "NO"
        _set_pregate(container, "")
        progress = rng.choice([3, 4]) if forced == "IMPORT" else rng.choice([1, 2])
    _apply_progress(container, progress)
    return container


def _advance(
    containers: list[dict[str, str]], rng: random.Random, used: set[str], today: dt.date
) -> None:
    """One data generation: some containers change, one disappears, one appears."""
    if containers:
        changes = max(1, min(50, len(containers) // 8))
        for index in rng.sample(range(len(containers)), min(changes, len(containers))):
            container = containers[index]
            kind = rng.choice(["status", "holds", "lfd", "pregate"])
            if kind == "status":
                _apply_progress(container, _progress(container) + 1)
            elif kind == "holds":
                container["Holds"] = "NO" if container["Holds"] == "YES" else "YES"
            elif kind == "lfd":
                if container["LFD/GTD"] == "N/A":
                    new_day = today + dt.timedelta(days=rng.randint(1, 5))
                else:
                    old = dt.datetime.strptime(container["LFD/GTD"], "%m/%d/%Y").date()  # noqa: DTZ007
                    new_day = old + dt.timedelta(days=rng.randint(1, 3))
                container["LFD/GTD"] = _fmt_date(new_day)
            else:
                ticket = "" if container["Pregate Ticket#"] else f"PGT{rng.randrange(10**7):07d}"
                _set_pregate(container, ticket)
        if len(containers) > 1:
            removed = containers.pop(rng.randrange(len(containers)))
            used.discard(removed["Container #"])
    containers.append(_make_container(rng, used, today, None))


def containers_for(username: str, config: SimConfig, generation: int = 0) -> list[dict[str, str]]:
    """The containers sheet of ``username`` at data ``generation``: dicts keyed by COLUMNS."""
    today = config.current_date()
    used: set[str] = set()
    containers = [
        _make_container(_rng(config.seed, username, "c", i), used, today, _FORCED.get(i))
        for i in range(container_count(username, config))
    ]
    for step in range(1, generation + 1):
        _advance(containers, _rng(config.seed, username, "advance", step), used, today)
    return containers


def find_container(containers: list[dict[str, str]], container_id: str) -> dict[str, str] | None:
    wanted = container_id.strip().upper()
    if wanted == NOT_FOUND_CONTAINER:
        return None
    for container in containers:
        if container["Container #"] == wanted:
            return container
    return None


def timeline_for(
    container: dict[str, str], username: str, config: SimConfig
) -> tuple[bool, list[dict[str, str]]]:
    """(passed_pregate, milestones newest first) for one container."""
    is_import = container["Trade Type"] == "IMPORT"
    milestones = IMPORT_MILESTONES if is_import else EXPORT_MILESTONES
    progress = _progress(container)
    rng = _rng(config.seed, username, "timeline", container["Container #"])
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
        else {"milestone": name, "date": "N/A", "status": "pending"}
        for i, name in enumerate(milestones)
    ]
    timeline.reverse()
    threshold = IMPORT_PREGATE_PROGRESS if is_import else EXPORT_PREGATE_PROGRESS
    return progress >= threshold, timeline


def pregate_details(passed: bool, timeline: list[dict[str, str]]) -> str:
    if not passed:
        return "No pregate milestone reached"
    for entry in timeline:
        if entry["milestone"] in ("Departed Terminal", "Full Received"):
            return f"{entry['milestone']} on {entry['date']}"
    return "Passed pregate"


def booking_number_for(container: dict[str, str], config: SimConfig) -> str | None:
    if container["Trade Type"] != "EXPORT":
        return None
    return f"BKG{stable_int(config.seed, 'booking', container['Container #']) % 10**8:08d}"


def available_times(container_id: str, config: SimConfig, now: dt.datetime) -> list[str]:
    """0-6 one-hour slots over the next days; stable for a container within a day."""
    rng = _rng(config.seed, "slots", container_id.upper())
    count = rng.choice([0, 0, 1, 2, 3, 4, 5, 6])
    picks = sorted(
        {(rng.randint(1, 5), rng.randint(6, 17)) for _ in range(count)},
    )
    slots = []
    for offset, hour in picks:
        day = now.date() + dt.timedelta(days=offset)
        slots.append(f"{day:%A} {day:%m/%d/%Y} {hour:02d}:00 - {hour + 1:02d}:00")
    return slots


def calendar_found(booking_number: str, config: SimConfig) -> bool:
    return stable_int(config.seed, "calendar", booking_number.upper()) % 5 != 0


def _plate(rng: random.Random) -> str:
    letters = "".join(rng.choices("ABCDEFGHJKLMNPRSTUVWXYZ", k=3))
    return f"{rng.randint(1, 9)}{letters}{rng.randrange(1000):03d}"


def appointments_for(
    username: str, containers: list[dict[str, str]], config: SimConfig
) -> list[dict[str, str]]:
    rng = _rng(config.seed, username, "appointments")
    today = config.current_date()
    chosen = rng.sample(containers, min(len(containers), 3 + rng.randrange(8)))
    rows = []
    for container in chosen:
        trade = container["Trade Type"]
        hour = rng.randint(6, 17)
        day = today + dt.timedelta(days=rng.randint(-5, 6))
        rows.append(
            {
                "Appointment #": f"APT{rng.randrange(10**8):08d}",
                "Container #": container["Container #"],
                "Trade Type": trade,
                "Terminal": container["Destination"],
                "Move Type": rng.choice(MOVE_TYPES[trade]),
                "Appointment Date": _fmt_date(day),
                "Time Slot": f"{hour:02d}:00 - {hour + 1:02d}:00",
                "Status": "Completed" if day < today else rng.choice(["Scheduled", "Confirmed"]),
                "Truck Plate": _plate(rng),
                "Trucking Company": rng.choice(TRUCKING_COMPANIES),
            }
        )
    rows.sort(key=lambda r: (r["Appointment Date"][6:], r["Appointment Date"], r["Time Slot"]))
    return rows


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
