"""Recurring runs people set themselves: validated like any start, stored in `RecurringRun`,
and driven by one django-q2 schedule each, made here — its function is always
`run_recurring_query` (in SCHEDULED_TASK_FUNCS) with the run's id, never anything a person
typed. The schedule fires once at the next of the run's local times (type "once", kept with no
repeat left when it fires); the task then arms it for the time after.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from queries_app.registry import UnknownKind, get_kind
from queries_app.services import start_query, validate_params
from sessions_app.models import Account

from .models import WEEKDAYS, RecurringRun

TASK = "containers_app.tasks.run_recurring_query"
MAX_TIMES_PER_DAY = 24
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
TIMES_SPLIT_RE = re.compile(r"[\s,;]+")


def parse_times(value: str | list[str]) -> list[str]:
    """'7:30, 15:00' → ['07:30', '15:00'] (sorted, repeats dropped); ValidationError naming
    what is wrong."""
    items = value if isinstance(value, list) else [t for t in TIMES_SPLIT_RE.split(value) if t]
    if not items:
        raise ValidationError("Give at least one time of day, e.g. 07:30.")
    if len(items) > MAX_TIMES_PER_DAY:
        raise ValidationError(f"At most {MAX_TIMES_PER_DAY} times a day.")
    times = set()
    for item in items:
        match = TIME_RE.match(str(item).strip())
        if not match:
            shown = str(item)[:12]
            raise ValidationError(f"“{shown}” is not a time of day (HH:MM, 24-hour clock).")
        times.add(f"{int(match[1]):02d}:{match[2]}")
    return sorted(times)


def parse_weekdays(values: list[Any]) -> list[int]:
    try:
        days = sorted({int(v) for v in values})
    except (TypeError, ValueError):
        raise ValidationError("Choose days of the week.") from None
    if not days:
        raise ValidationError("Choose at least one day of the week.")
    if any(d < 0 or d > 6 for d in days):
        raise ValidationError("Days of the week are 0 (Monday) to 6 (Sunday).")
    return days


def zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"“{name[:64]}” is not a time zone.") from None


def next_run_time(
    *, weekdays: list[int], times: list[str], time_zone: str, after: datetime
) -> datetime | None:
    """The first of the local times, on the chosen days, strictly after `after` (UTC). A local
    time the clock skips (spring forward) falls the same distance past the jump."""
    local_zone = zone(time_zone)
    start = after.astimezone(local_zone).date()
    for offset in range(8):
        day = start + timedelta(days=offset)
        if day.weekday() not in weekdays:
            continue
        for text in times:
            hour, minute = map(int, text.split(":"))
            local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=local_zone)
            moment = local.astimezone(UTC)
            if moment > after:
                return moment
    return None


def arm(run: RecurringRun, *, after: datetime) -> None:
    """Point the run's django-q2 schedule at its next time (or nowhere, paused)."""
    run.next_run_at = (
        None
        if run.paused
        else next_run_time(
            weekdays=run.weekdays, times=run.times, time_zone=run.time_zone, after=after
        )
    )
    schedule = run.schedule or Schedule(func=TASK)
    schedule.name = f"recurring run {run.pk}: {run.kind} for account {run.account_id}"[:100]
    schedule.func = TASK
    schedule.hook = None
    schedule.args = repr((run.pk,))
    schedule.kwargs = None
    schedule.schedule_type = Schedule.ONCE
    schedule.repeats = 1 if run.next_run_at else 0
    schedule.next_run = run.next_run_at or after
    schedule.save()
    run.schedule = schedule
    run.save(update_fields=["schedule", "next_run_at", "updated_at"])


def save_recurring_run(
    *,
    account: Account,
    kind: str,
    params: dict[str, Any] | None,
    weekdays: list[Any],
    times: str | list[str],
    time_zone: str,
    created_by: Any = None,
    run: RecurringRun | None = None,
    now: datetime | None = None,
) -> RecurringRun:
    """Create (or change) a recurring run, checked like any start: the kind's own parameter
    form, days, times and zone. ValidationError, by field, names whatever is wrong; nothing is
    stored then."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    try:
        get_kind(kind)
        cleaned = validate_params(account=account, kind=kind, params=params or {})
    except UnknownKind:
        errors["kind"] = ["Choose a kind of query."]
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            for name, messages in exc.message_dict.items():
                errors.setdefault(name, []).extend(messages)
        else:
            errors.setdefault("kind", []).extend(exc.messages)
    checked: dict[str, Any] = {}
    for name, check, value in (
        ("weekdays", parse_weekdays, weekdays),
        ("times", parse_times, times),
        ("time_zone", lambda v: zone(v) and v, time_zone),
    ):
        try:
            checked[name] = check(value)
        except ValidationError as exc:
            errors.setdefault(name, []).extend(exc.messages)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        run = run or RecurringRun(account=account, created_by=created_by)
        run.account, run.kind, run.params = account, kind, cleaned
        run.weekdays, run.times, run.time_zone = (
            checked["weekdays"],
            checked["times"],
            checked["time_zone"],
        )
        run.save()
        arm(run, after=now or timezone.now())
    return run


def set_paused(*, run: RecurringRun, paused: bool, now: datetime | None = None) -> None:
    with transaction.atomic():
        run.paused = paused
        run.save(update_fields=["paused", "updated_at"])
        arm(run, after=now or timezone.now())


def delete_recurring_run(*, run: RecurringRun) -> None:
    with transaction.atomic():
        schedule = run.schedule
        run.delete()
        if schedule is not None:
            schedule.delete()


def fire(run_id: int, *, now: datetime | None = None) -> str:
    """The run's schedule fired: arm it for the next time, and start the query (or keep the one
    already running). Both in one transaction: a run is started and re-armed, or neither."""
    now = now or timezone.now()
    with transaction.atomic():
        run = (
            RecurringRun.objects.select_for_update()
            .select_related("account")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            return "no such recurring run (deleted)"
        if run.schedule_id:
            # The scheduler's own write of this schedule (no repeat left) is committed first.
            run.schedule = Schedule.objects.select_for_update().get(pk=run.schedule_id)
        if run.paused:
            return "paused"
        due = run.next_run_at
        if due is None or due > now + timedelta(minutes=1):
            arm(run, after=now)
            return "not due: armed again"
        arm(run, after=max(now, due))
        run.last_run_at = now
        try:
            query, created = start_query(
                account=run.account, kind=run.kind, params=run.params, batch=f"recurring-{run.pk}"
            )
        except ValidationError as exc:
            run.last_error = " ".join(exc.messages)[:255]
            run.save(update_fields=["last_run_at", "last_error", "updated_at"])
            return f"not started: {run.last_error}"
        run.last_query, run.last_error = query, ""
        run.save(update_fields=["last_run_at", "last_query", "last_error", "updated_at"])
    return f"query {query.pk}" + ("" if created else " (already running)")


def schedule_from_command(
    *,
    accounts: list[Account],
    kind: str,
    params: dict[int, dict[str, Any]],
    every: str,
    at: str | None,
) -> list[RecurringRun]:
    """`run_queries --schedule`: hourly (every hour at a minute), daily, or weekly (today's
    weekday), at `at` or now, in TIME_ZONE. Updates the command's own recurring run of the same
    account, kind and parameters if there is one."""
    local_now = timezone.localtime(timezone.now(), zone(settings.TIME_ZONE))
    try:
        at_time = parse_times(at)[0] if at else f"{local_now:%H:%M}"
    except ValidationError as exc:
        raise ValidationError(f"--at: {' '.join(exc.messages)}") from None
    if every == "hourly":
        days, times = list(range(7)), [f"{hour:02d}:{at_time[3:]}" for hour in range(24)]
    elif every == "daily":
        days, times = list(range(7)), [at_time]
    else:
        days, times = [local_now.weekday()], [at_time]
    runs = []
    with transaction.atomic():
        for account in accounts:
            existing = next(
                (
                    run
                    for run in RecurringRun.objects.filter(
                        account=account, kind=kind, created_by__isnull=True
                    )
                    if run.params == params[account.pk]
                ),
                None,
            )
            runs.append(
                save_recurring_run(
                    account=account,
                    kind=kind,
                    params=params[account.pk],
                    weekdays=days,
                    times=times,
                    time_zone=settings.TIME_ZONE,
                    run=existing,
                )
            )
    return runs


__all__ = ["WEEKDAYS", "fire", "next_run_time", "save_recurring_run", "set_paused"]
