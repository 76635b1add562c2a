"""Events and history entries in words, the same on the pages and in the e-mails (the fields' and
changes' names are the one label table, `history.labels`)."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from django.utils import timezone

from history.labels import CHANGE_WORDS, field_label
from queries_app.events import EventType
from sessions_app.services.accounts import stop_words

from .money import money_words
from .verdict import Pickup

PICKUP_WORDS = dict(Pickup.choices)


def shown(value: Any, zone: tzinfo | None = None) -> str:
    """A JSON value of a change (ISO text for dates and times) as a person reads it."""
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
        try:
            if len(value) == 10:
                return date.fromisoformat(value).strftime("%a %Y-%m-%d")
            moment = datetime.fromisoformat(value)
            if timezone.is_aware(moment):
                moment = timezone.localtime(moment, zone)
            return moment.strftime("%a %Y-%m-%d %H:%M")
        except ValueError:
            return value
    return str(value)


def describe_fields(fields: dict[str, Any], zone: tzinfo | None = None) -> list[str]:
    """'holds released', 'last free day moved from Mon 2025-05-05 to Wed 2025-05-07', ..."""
    lines = []
    for name, pair in fields.items():
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            continue
        before, after = pair
        if name == "holds" and before is True and after is False:
            lines.append("holds released")
        elif name == "holds" and after is True:
            lines.append("holds set")
        elif name == "slot_count":
            if (after or 0) > 0:
                lines.append(f"appointment slots appeared ({after})")
            else:
                lines.append("no appointment slots any more")
        elif name == "earliest_slot":
            if after:
                lines.append(f"earliest slot {shown(after, zone)}")
        elif name == "pregate_ticket" and not before and after:
            lines.append("pregate ticket issued")
        elif name == "passed_pregate" and after is True:
            lines.append("passed pregate")
        elif name == "last_free_day" and before and after:
            lines.append(f"last free day moved from {shown(before)} to {shown(after)}")
        elif before in (None, ""):
            lines.append(f"{field_label(name)} set to {shown(after, zone)}")
        else:
            lines.append(f"{field_label(name)}: {shown(before, zone)} → {shown(after, zone)}")
    return lines


def describe_change(change: dict[str, Any], zone: tzinfo | None = None) -> str:
    """A board's "last change" ({"change": ..., "fields": {...}}) in one line."""
    if not change:
        return ""
    words = [CHANGE_WORDS[change["change"]]] if change.get("change") in CHANGE_WORDS else []
    words += describe_fields(change.get("fields") or {}, zone)
    return "; ".join(words)


def days_left_words(left: int | None) -> str:
    if left is None:
        return ""
    if left < 0:
        return f"overdue by {-left} day{'' if left == -1 else 's'}"
    if left == 0:
        return "today"
    if left == 1:
        return "tomorrow"
    return f"in {left} days"


def due_urgency(left: int | None) -> str:
    """How urgent a last free day this many days away is (a CSS word): overdue, today,
    tomorrow, soon (in 2 days), or nothing."""
    if left is None:
        return ""
    if left < 0:
        return "overdue"
    return {0: "today", 1: "tomorrow", 2: "soon"}.get(left, "")


def describe_event(kind: str, data: dict[str, Any], *, zone: tzinfo | None = None) -> str:
    if kind == EventType.LFD_DUE:
        words = (
            f"last free day {shown(data.get('last_free_day'))}, "
            f"{days_left_words(data.get('days_left'))}"
        )
        if data.get("pickup") in PICKUP_WORDS:
            words += f" · {PICKUP_WORDS[data['pickup']].lower()}"
        if data.get("terminal"):
            words += f" at {data['terminal']}"
        if data.get("charges_to_date") is not None:
            words += (
                f" · {money_words(Decimal(data['charges_to_date']))} so far, "
                f"+{money_words(Decimal(data['charge_per_day']))} a day"
            )
        elif data.get("pickup") and (data.get("days_left") or 0) <= 0:
            words += " · no tariff"
        return words
    if kind == EventType.LFD_CHANGED:
        if data.get("before"):
            return f"last free day moved from {shown(data['before'])} to {shown(data['after'])}"
        return f"last free day set to {shown(data.get('after'))}"
    if kind == EventType.HOLDS_RELEASED:
        return "holds released"
    if kind == EventType.SLOT_APPEARED:
        earliest = shown(data.get("earliest_slot"), zone)
        return f"{data.get('slot_count', 1)} slot(s), earliest {earliest}"
    if kind == EventType.PREGATE_DONE:
        return "passed pregate" if data.get("passed_pregate") else "pregate ticket issued"
    if kind == EventType.CONTAINER_NEW:
        return "back on the list" if data.get("returned") else "new on the list"
    if kind == EventType.CONTAINER_GONE:
        return "gone from the list"
    if kind == EventType.APPOINTMENT_BOOKED:
        return f"appointment booked and seen in E-Modal: {data.get('slot', '')}"
    if kind == EventType.APPOINTMENT_NOT_CONFIRMED:
        return (
            f"appointment for {data.get('slot', '')} not seen in E-Modal's appointments after "
            "it was accepted: look in E-Modal"
        )
    if kind == EventType.APPOINTMENT_UNKNOWN:
        return (
            f"booking {data.get('slot', '')}: the outcome is unknown; look in E-Modal before "
            "booking again"
        )
    if kind == EventType.QUERY_FAILED:
        return f"a {data.get('kind', '')} query failed: {data.get('error', '')}".strip()
    if kind == EventType.CREDENTIALS_REJECTED:
        words = stop_words(data.get("state", "rejected"), data.get("reason", ""))
        return f"{words}; no login is tried until someone acts"
    return EventType(kind).label if kind in EventType.values else kind
