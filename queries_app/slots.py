"""Appointment slot texts as the upstream writes them (`available_times`), read into aware
(start, end) pairs in the terminal's zone (see docs/upstream-contract.md)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.utils import timezone

# The page's placeholder when there is no slot, returned as the only "time" (count 1).
NO_SLOTS_RE = re.compile(r"^\s*no\s+appointments?\s+available\s*!?\s*$", re.IGNORECASE)
# `Tuesday 10/07/2025 09:00 - 10:00`, `Monday 10/06/2025 23:00 - 02:00` (past midnight),
# `10/10/2025 08:00 AM - 09:00 AM` (12-hour clock, no weekday).
SLOT_RE = re.compile(
    r"(?P<date>\d{1,2}/\d{1,2}/\d{4})\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*(?P<start_half>[AP]M)?\s*"
    r"(?:-|–|to)\s*"
    r"(?P<end>\d{1,2}:\d{2})\s*(?P<end_half>[AP]M)?",
    re.IGNORECASE,
)


def is_no_slots_placeholder(text: str) -> bool:
    return bool(NO_SLOTS_RE.match(str(text or "")))


def _clock(text: str, half: str | None) -> tuple[int, int] | None:
    hours, minutes = (int(part) for part in text.split(":"))
    if half:
        if not 1 <= hours <= 12:
            return None
        hours = hours % 12 + (12 if half.upper() == "PM" else 0)
    if hours > 23 or minutes > 59:
        return None
    return hours, minutes


def parse_slot(text: str, zone: tzinfo | None = None) -> tuple[datetime, datetime] | None:
    """A slot text → its (start, end), aware, in the terminal's zone (the portal's default
    without one): E-Modal writes slots in the terminal's local time. An end at or before the
    start is on the next day. None for the no-slots placeholder or an unreadable text."""
    match = SLOT_RE.search(str(text or ""))
    if not match:
        return None
    try:
        day = datetime.strptime(match["date"], "%m/%d/%Y").date()  # noqa: DTZ007
    except ValueError:
        return None
    # A 12-hour end without its own AM/PM shares the start's.
    start = _clock(match["start"], match["start_half"])
    end = _clock(match["end"], match["end_half"] or match["start_half"])
    if start is None or end is None:
        return None
    zone = zone or timezone.get_default_timezone()
    begins = timezone.make_aware(datetime.combine(day, datetime.min.time()), zone).replace(
        hour=start[0], minute=start[1]
    )
    ends = begins.replace(hour=end[0], minute=end[1])
    if ends <= begins:
        ends += timedelta(days=1)
    return begins, ends


def parse_slot_start(text: str) -> datetime | None:
    slot = parse_slot(text)
    return slot[0] if slot else None


def available_slots(
    texts: list[Any], zone: tzinfo | None = None
) -> tuple[list[str], list[tuple[datetime, datetime]], list[str]]:
    """`available_times` → (the slot texts read, their (start, end) in time order, the texts
    that could not be read). The no-slots placeholder is neither; an unreadable text is kept
    apart and never counted as a slot (fail closed: it may be an error the page showed)."""
    read: list[tuple[tuple[datetime, datetime], str]] = []
    unreadable: list[str] = []
    for text in texts or []:
        text = str(text)
        if not text.strip() or is_no_slots_placeholder(text):
            continue
        slot = parse_slot(text, zone)
        if slot is None:
            unreadable.append(text[:200])
        else:
            read.append((slot, text))
    return [text for _, text in read], sorted(slot for slot, _ in read), unreadable
