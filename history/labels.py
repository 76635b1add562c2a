"""The one label table of changes: how pages, exports and e-mails name a changed field and a
kind of change (the board's history and a run's changes alike)."""

from __future__ import annotations

FIELD_LABELS = {
    "status": "status",
    "holds": "holds",
    "last_free_day": "last free day",
    "good_through": "good through",
    "pregate_ticket": "pregate ticket",
    "terminal_code": "terminal",
    "passed_pregate": "passed pregate",
    "booking_number": "booking number",
    "slot_count": "slots",
    "earliest_slot": "earliest slot",
    "appointment": "appointment",
}

# A change other than fields moving, in a sentence.
CHANGE_WORDS = {
    "new": "new on the list",
    "back": "back on the list",
    "gone": "gone from the list",
}


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " "))
