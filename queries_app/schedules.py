"""Recurring queries (`run_queries --schedule`). They are kept by the app where people set
them themselves (the containers board's recurring runs), which registers itself here when it
is ready: this app does not know it. Parameters are validated here, like any start, before
anything is stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError

from sessions_app.models import Account

from .services import validate_params

# How often, for the command: hourly (every hour, every day), daily, weekly (today's weekday),
# at the minute the command is run unless it says --at.
SCHEDULE_CHOICES = ("hourly", "daily", "weekly")

# (accounts, kind, {account pk: cleaned params}, every, at "HH:MM" or None) -> what was stored
Scheduler = Callable[..., list[Any]]
_scheduler: Scheduler | None = None


def register_scheduler(scheduler: Scheduler) -> None:
    global _scheduler
    _scheduler = scheduler


def schedule_queries(
    *, accounts: list[Account], kind: str, params: dict[str, Any], every: str, at: str | None = None
) -> list[Any]:
    """Create or update a recurring run of `kind` for each account. Every account's parameters
    are validated before anything is written (ValidationError); the cleaned ones are stored and
    validated again each time the run starts."""
    if every not in SCHEDULE_CHOICES:
        raise ValidationError(f"Choose how often: {', '.join(SCHEDULE_CHOICES)}.")
    cleaned = {
        account.pk: validate_params(account=account, kind=kind, params=params)
        for account in accounts
    }
    if _scheduler is None:
        raise ImproperlyConfigured("No installed app keeps recurring queries.")
    return _scheduler(accounts=accounts, kind=kind, params=cleaned, every=every, at=at)
