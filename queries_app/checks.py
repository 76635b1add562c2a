"""System checks: no stored schedule may run code outside the portal's own tasks.

The admin refuses such schedules, but one written before that rule (or straight into the
database) would still be run by every cluster: `check` and `qcluster` refuse to start while
one exists, naming it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError


@register(Tags.security)
def check_stored_schedules(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from django_q.models import Schedule

    try:
        rogue = [
            schedule
            for schedule in Schedule.objects.only("id", "name", "func", "hook")
            if schedule.func not in settings.SCHEDULED_TASK_FUNCS
            or (schedule.hook and schedule.hook not in settings.SCHEDULED_TASK_HOOKS)
        ]
    except (DatabaseError, ImproperlyConfigured):
        return []  # no database yet (first migrate): nothing stored to check
    return [
        Error(
            f"Scheduled task #{schedule.pk} ({schedule.name or 'unnamed'}) runs "
            f"{schedule.func!r}{f' with hook {schedule.hook!r}' if schedule.hook else ''}, "
            "which is not one of the portal's own tasks.",
            hint="Delete it (Django Q › Scheduled tasks, as a superuser), or if it is meant "
            "to be there, add the function to SCHEDULED_TASK_FUNCS (the hook to "
            "SCHEDULED_TASK_HOOKS) in emodal_portal/settings.py.",
            id="queries_app.E001",
        )
        for schedule in rogue
    ]
