"""Recurring runs people set themselves: validated like any start, stored in `RecurringRun`,
and driven by one django-q2 schedule each, made here — its function is always
`run_recurring_query` (in SCHEDULED_TASK_FUNCS) with the run's id, never anything a person
typed. The schedule fires once at the next of the run's local times (type "once", kept with no
repeat left when it fires); the task then arms it for the time after.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from sessions_app.models import Account

from .recurring_run import WEEKDAYS, RecurringRun
from .registry import UnknownKind, get_kind
from .services import start_query, validate_params

TASK = "queries_app.tasks.run_recurring_query"
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


def local_moment(day: date, hour: int, minute: int, local_zone: tzinfo) -> datetime:
    """The moment (UTC) a wall-clock time comes on a day. A time the clock shows twice (fall
    back) comes at its first showing; a time the clock skips (spring forward: 02:30 on a
    night that jumps from 02:00 to 03:00) comes at the first minute after the jump (03:00)."""
    wall = datetime(day.year, day.month, day.day, hour, minute)  # noqa: DTZ001 - compared naive
    first = wall.replace(tzinfo=local_zone).astimezone(UTC)  # fold 0: the offset before a change
    if first.astimezone(local_zone).replace(tzinfo=None) == wall:
        return first
    # Skipped: the jump lies between the times the wall clock gives with the offsets after
    # (fold 1) and before it; find its second by bisection (offsets change on whole seconds).
    before_offset = wall.replace(tzinfo=local_zone).utcoffset()
    low = wall.replace(tzinfo=local_zone, fold=1).astimezone(UTC)
    high = first
    while (high - low).total_seconds() > 1:
        middle = low + (high - low) / 2
        if middle.astimezone(local_zone).utcoffset() == before_offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def next_run_time(
    *, weekdays: list[int], times: list[str], time_zone: str, after: datetime
) -> datetime | None:
    """The first moment (UTC) strictly after `after` that is one of the local times on one of
    the chosen days (`local_moment`: a skipped time comes at the first minute after the jump,
    a doubled one once). Listed times that come at the same moment make one run."""
    local_zone = zone(time_zone)
    start = after.astimezone(local_zone).date() - timedelta(days=1)
    moments = (
        local_moment(day, hour, minute, local_zone)
        for day in (start + timedelta(days=offset) for offset in range(9))
        if day.weekday() in weekdays
        for hour, minute in (map(int, text.split(":")) for text in times)
    )
    return min((moment for moment in moments if moment > after), default=None)


WEEK_MINUTES = 7 * 24 * 60


def week_minutes(
    weekdays: list[int], times: list[str], time_zone: str, now: datetime
) -> list[tuple[int, str]]:
    """Where a run's start times fall in the week, in minutes from Monday 00:00 UTC (with its
    zone's offset now, so that runs in two zones compare), each with how it reads locally."""
    offset = now.astimezone(zone(time_zone)).utcoffset() or timedelta()
    shift = int(offset.total_seconds() // 60)
    return [
        ((day * 1440 + int(text[:2]) * 60 + int(text[3:]) - shift) % WEEK_MINUTES, text)
        for day in weekdays
        for text in times
    ]


def too_close(
    *,
    account: Account,
    weekdays: list[int],
    times: list[str],
    time_zone: str,
    run: RecurringRun | None,
    now: datetime,
) -> str | None:
    """Why these start times are too close to each other or to the account's other runs'
    (less than RECURRING_MIN_INTERVAL_MINUTES apart, across midnight and the week's end too),
    or None. Each run starts a batch, which no trigger limit counts."""
    interval = settings.RECURRING_MIN_INTERVAL_MINUTES
    if not interval:
        return None
    starts: list[tuple[int, str, RecurringRun | None]] = [
        (at, text, None) for at, text in week_minutes(weekdays, times, time_zone, now)
    ]
    others = RecurringRun.objects.filter(account=account)
    if run is not None and run.pk is not None:
        others = others.exclude(pk=run.pk)
    for other in others:
        starts += [
            (at, text, other)
            for at, text in week_minutes(other.weekdays, other.times, other.time_zone, now)
        ]
    starts.sort(key=lambda start: start[0])
    for index, (at, text, owner) in enumerate(starts):
        next_at, next_text, next_owner = starts[(index + 1) % len(starts)]
        gap = (next_at - at) % WEEK_MINUTES if len(starts) > 1 else WEEK_MINUTES
        if gap >= interval or (owner is not None and next_owner is not None):
            continue  # far enough apart, or two of the other runs (not this one's business)
        apart = "at the same time" if gap == 0 else f"{gap} minutes apart"
        if owner is None and next_owner is None:
            what = f"{text} and {next_text} are {apart}"
        else:
            mine, theirs = (text, next_text) if owner is None else (next_text, text)
            neighbour = next_owner if owner is None else owner
            assert neighbour is not None  # one of the two is this run's, the other not
            what = (
                f"{mine} and {theirs} (another scheduled run of the account: "
                f"{neighbour.describe()}) are {apart}"
            )
        return (
            f"{what}: an account's scheduled runs start at least {interval} minutes apart, "
            "all its schedules together."
        )
    return None


def check_count(account: Account, run: RecurringRun | None) -> str | None:
    """Why the account may have no more recurring runs, or None."""
    cap = settings.RECURRING_RUNS_PER_ACCOUNT
    if run is not None and run.pk is not None:
        return None  # a change, not one more
    if cap and RecurringRun.objects.filter(account=account).count() >= cap:
        return (
            f"This account has {cap} scheduled runs already, the most it may have: delete one "
            "it no longer needs, or add times to one of them."
        )
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
    checks: tuple[tuple[str, Callable[[Any], Any], Any], ...] = (
        ("weekdays", parse_weekdays, weekdays),
        ("times", parse_times, times),
        ("time_zone", lambda v: zone(v) and v, time_zone),
    )
    for name, check, value in checks:
        try:
            checked[name] = check(value)
        except ValidationError as exc:
            errors.setdefault(name, []).extend(exc.messages)
    if errors:
        raise ValidationError(errors)
    now = now or timezone.now()
    with transaction.atomic():
        # The account's row, locked: two runs added at once are checked one after the other.
        list(Account.objects.select_for_update().filter(pk=account.pk).values("pk"))
        refused = check_count(account, run)
        if refused:
            raise ValidationError({NON_FIELD_ERRORS: [refused]})
        close = too_close(
            account=account,
            weekdays=checked["weekdays"],
            times=checked["times"],
            time_zone=checked["time_zone"],
            run=run,
            now=now,
        )
        if close:
            raise ValidationError({"times": [close]})
        run = run or RecurringRun(account=account, created_by=created_by)
        run.account, run.kind, run.params = account, kind, cleaned
        run.weekdays, run.times, run.time_zone = (
            checked["weekdays"],
            checked["times"],
            checked["time_zone"],
        )
        run.save()
        arm(run, after=now)
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
