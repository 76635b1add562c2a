"""A check's answer read onto its row, failing closed (docs/upstream-contract.md, "Other real
behaviours"): a time that is not a readable slot is shown but never counted, nor ever the
earliest slot; `calendar_found: false` is the page not finding its calendar — unknown, not "no
availability"."""

from __future__ import annotations

from typing import Any

from ..models import AppointmentCheck, Terminal
from ..slots import available_slots
from ..terminal_zones import terminal_zone

Outcome = AppointmentCheck.Outcome
CALENDAR_NOT_FOUND = "E-Modal did not find the calendar: availability unknown."


def unreadable_note(count: int) -> str:
    if count == 1:
        return "1 time E-Modal offered could not be read as a slot and is not counted."
    return f"{count} times E-Modal offered could not be read as slots and are not counted."


def read_answer(row: AppointmentCheck, item: dict[str, Any], body: dict[str, Any]) -> None:
    notes = [row.note]
    if item["container_type"] == "import":
        # Slots are local times at the terminal.
        zone = terminal_zone(
            Terminal.objects.filter(code=item.get("terminal_code") or "")
            .values_list("time_zone", flat=True)
            .first()
        )
        times = body.get("available_times") or []
        texts, slots, unreadable = available_slots(times, zone)
        row.slot_texts, row.unreadable_times = texts, unreadable
        row.slots = [start.isoformat() for start, _ in slots]
        row.slot_count = len(slots)
        row.earliest_slot = slots[0][0] if slots else None
        if slots:
            row.outcome = Outcome.AVAILABLE
        else:
            row.outcome = Outcome.UNKNOWN if unreadable else Outcome.NONE
        if unreadable:
            notes.insert(0, unreadable_note(len(unreadable)))
    else:
        row.calendar_found = body.get("calendar_found")
        row.outcome = Outcome.AVAILABLE if row.calendar_found is True else Outcome.UNKNOWN
        if row.calendar_found is not True:
            notes.insert(0, CALENDAR_NOT_FOUND)
    row.note = " ".join(filter(None, notes))[:255]
