"""Recurring queries: one django-q2 schedule per account and kind, managed in the admin."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django_q.models import Schedule

from sessions_app.models import Account

from .services import validate_params

SCHEDULE_CHOICES = {
    "hourly": {"schedule_type": Schedule.HOURLY},
    "daily": {"schedule_type": Schedule.DAILY},
    "weekly": {"schedule_type": Schedule.WEEKLY},
}


def schedule_name(account: Account, kind: str) -> str:
    return f"query {kind} for account {account.pk}"


def schedule_queries(
    *, accounts: list[Account], kind: str, params: dict[str, Any], every: str
) -> list[Schedule]:
    """Create or update a schedule that starts `kind` for each account every period. Every
    account's parameters are validated before any schedule is written (ValidationError), and
    the cleaned ones are stored: the task validates them again when it fires."""
    if every not in SCHEDULE_CHOICES:
        raise ValidationError(f"Choose how often: {', '.join(SCHEDULE_CHOICES)}.")
    cleaned = {
        account.pk: validate_params(account=account, kind=kind, params=params)
        for account in accounts
    }
    schedules = []
    for account in accounts:
        schedule, _ = Schedule.objects.update_or_create(
            name=schedule_name(account, kind),
            defaults={
                "func": "queries_app.tasks.start_scheduled_query",
                # Ids and plain parameters only: the schedule's arguments are stored as is.
                "args": repr((account.pk, kind)),
                "kwargs": repr({"params_json": json.dumps(cleaned[account.pk])}),
                "repeats": -1,
                **SCHEDULE_CHOICES[every],
            },
        )
        schedules.append(schedule)
    return schedules
