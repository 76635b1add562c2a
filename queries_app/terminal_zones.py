"""Terminals' time zones: E-Modal writes a terminal's appointment slots in its local time."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

# Where the terminals E-Modal serves mostly are (Los Angeles / Long Beach).
TERMINAL_TIME_ZONE = "America/Los_Angeles"


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "Not a time zone name (e.g. America/Los_Angeles, America/New_York)."
        ) from None


def terminal_zone(time_zone: str | None) -> ZoneInfo:
    """A terminal's zone (Pacific for one the portal does not know)."""
    try:
        return ZoneInfo(time_zone or TERMINAL_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(TERMINAL_TIME_ZONE)
