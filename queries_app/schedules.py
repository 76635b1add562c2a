"""Recurring queries (`run_queries --schedule`), kept as recurring runs (`recurring.py`), like
the ones people set on the board. Parameters are validated here, like any start, before
anything is stored."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from sessions_app.models import Account

from .recurring import schedule_from_command
from .recurring_run import RecurringRun
from .services import validate_params

# How often, for the command: hourly (every hour, every day), daily, weekly (today's weekday),
# at the minute the command is run unless it says --at.
SCHEDULE_CHOICES = ("hourly", "daily", "weekly")


def schedule_queries(
    *, accounts: list[Account], kind: str, params: dict[str, Any], every: str, at: str | None = None
) -> list[RecurringRun]:
    """Create or update a recurring run of `kind` for each account. Every account's parameters
    are validated before anything is written (ValidationError); the cleaned ones are stored and
    validated again each time the run starts."""
    if every not in SCHEDULE_CHOICES:
        raise ValidationError(f"Choose how often: {', '.join(SCHEDULE_CHOICES)}.")
    cleaned = {
        account.pk: validate_params(account=account, kind=kind, params=params)
        for account in accounts
    }
    return schedule_from_command(accounts=accounts, kind=kind, params=cleaned, every=every, at=at)
