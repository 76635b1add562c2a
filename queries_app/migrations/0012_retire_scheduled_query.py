"""The legacy scheduled query retired: recurring runs' schedules call this app's task now, and
any schedule still naming `queries_app.tasks.start_scheduled_query` (made in the admin, which
allowed it; the ones `run_queries --schedule` wrote were moved by containers_app 0002) becomes a
recurring run, whose schedule it becomes. Nothing is dropped:

- hourly, daily and weekly schedules become runs at the same local times (TIME_ZONE), paused if
  they had no repeat left;
- any other kind of schedule (every few minutes, monthly, cron, once, ...) becomes a paused run
  at its next run's weekday and time, which says why it was paused;
- a schedule that could never start a query — its account deleted (the account's runs go with
  it), or arguments the task does not take — is deleted: it failed at every firing, and a
  stored schedule naming a task that is gone would keep the cluster from starting
  (queries_app.E001).
"""

import json
import zoneinfo

from django.conf import settings
from django.db import migrations
from django.utils import timezone

OLD_TASK = "containers_app.tasks.run_recurring_query"
TASK = "queries_app.tasks.run_recurring_query"
LEGACY = "queries_app.tasks.start_scheduled_query"
NAMES = ("account_id", "kind", "params_json")
KEPT = {"H": "hourly", "D": "daily", "W": "weekly"}


def legacy_arguments(schedule):
    """(account id, kind, params) from the schedule's arguments, read as the worker would call
    start_scheduled_query(account_id, kind, params_json="{}"); None when they do not fit."""
    from queries_app.schedule_admin import parse_arguments

    try:
        args, kwargs = parse_arguments(schedule.args or "", schedule.kwargs or "")
    except ValueError:
        return None
    if len(args) > len(NAMES):
        return None
    values = dict(zip(NAMES, args, strict=False))
    if set(values) & set(kwargs) or set(kwargs) - set(NAMES):
        return None
    values.update(kwargs)
    values.setdefault("params_json", "{}")
    try:
        params = json.loads(values["params_json"])
    except (TypeError, ValueError):
        return None
    account_id, kind = values.get("account_id"), values.get("kind")
    if not isinstance(params, dict) or not isinstance(kind, str) or not isinstance(account_id, int):
        return None
    return account_id, kind, params


def move_content_type(apps, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=target, model="recurringrun").exists():
        ContentType.objects.filter(app_label=source, model="recurringrun").update(
            app_label=target
        )


def retire(apps, schema_editor):
    from queries_app.recurring import next_run_time

    Schedule = apps.get_model("django_q", "Schedule")
    RecurringRun = apps.get_model("queries_app", "RecurringRun")
    Account = apps.get_model("sessions_app", "Account")
    # Permissions given on recurring runs stay given: the same content type, now this app's.
    move_content_type(apps, "containers_app", "queries_app")
    Schedule.objects.filter(func=OLD_TASK).update(func=TASK)
    zone_name = settings.TIME_ZONE
    now = timezone.now()
    for schedule in Schedule.objects.filter(func=LEGACY).order_by("pk"):
        found = legacy_arguments(schedule)
        if found is None or not Account.objects.filter(pk=found[0]).exists():
            schedule.delete()  # it could never start anything
            continue
        account_id, kind, params = found
        local = timezone.localtime(schedule.next_run or now, zoneinfo.ZoneInfo(zone_name))
        at = f"{local:%H:%M}"
        every = KEPT.get(schedule.schedule_type)
        if every == "hourly":
            days, times = list(range(7)), [f"{hour:02d}:{local:%M}" for hour in range(24)]
        elif every == "daily":
            days, times = list(range(7)), [at]
        else:
            days, times = [local.weekday()], [at]
        paused = schedule.repeats == 0 or every is None
        note = (
            ""
            if every
            else f"Paused when moved from an older kind of schedule (type {schedule.schedule_type}, "
            f"“{schedule.name or schedule.pk}”): check its days and times, then resume it."
        )
        next_run = (
            None
            if paused
            else next_run_time(weekdays=days, times=times, time_zone=zone_name, after=now)
        )
        run = RecurringRun.objects.create(
            account_id=account_id,
            kind=kind,
            params=params,
            weekdays=days,
            times=times,
            time_zone=zone_name,
            paused=paused,
            next_run_at=next_run,
            last_error=note[:255],
        )
        schedule.name = f"recurring run {run.pk}: {kind} for account {account_id}"[:100]
        schedule.func = TASK
        schedule.hook = None
        schedule.args = repr((run.pk,))
        schedule.kwargs = None
        schedule.schedule_type = "O"
        schedule.minutes = None
        schedule.cron = None
        schedule.repeats = 1 if next_run else 0
        schedule.next_run = next_run or now
        schedule.save()
        run.schedule_id = schedule.pk
        run.save(update_fields=["schedule"])


def unretire(apps, schema_editor):
    # The runs stay runs (the legacy task is gone); their schedules go back to the board's task.
    apps.get_model("django_q", "Schedule").objects.filter(func=TASK).update(func=OLD_TASK)
    move_content_type(apps, "queries_app", "containers_app")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("queries_app", "0011_recurring_run"),
        ("sessions_app", "0005_real_upstream"),
    ]

    operations = [migrations.RunPython(retire, unretire)]
