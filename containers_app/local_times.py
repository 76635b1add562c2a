"""Times at the terminal: an appointment slot is a local time where the container is picked up,
shown in the terminal's zone (labelled with it) whatever zone the viewer chose; the viewer's
zone is for the portal's own times (seen at, changed at)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.utils import timezone

from queries_app.models import Terminal
from queries_app.slots import parse_slot_start
from queries_app.terminal_zones import terminal_zone


def earliest_slot_text(texts: list[str]) -> str:
    """The earliest of a check's slot texts, as E-Modal wrote it ("" when none is readable).
    All are at one terminal, so any one zone orders them."""
    read = [(start, text) for text in texts if (start := parse_slot_start(text)) is not None]
    return min(read)[1] if read else ""


def zone_of(terminal: Terminal | None) -> ZoneInfo:
    return terminal.zone if terminal is not None else terminal_zone(None)


def at_terminal(moment: datetime | None, terminal: Terminal | None) -> datetime | None:
    """A moment as the terminal's clock reads it."""
    if moment is None:
        return None
    return timezone.localtime(moment, zone_of(terminal))


def terminal_time_text(moment: datetime | None, terminal: Terminal | None, fmt: str) -> str:
    """ "Tue 12-08 07:00 PST": the terminal's local time, with its zone's abbreviation."""
    local = at_terminal(moment, terminal)
    return f"{local.strftime(fmt)} {local.tzname()}" if local else ""
