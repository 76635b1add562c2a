"""The board's recurring tasks, and the recurring queries `run_queries --schedule` used to write
as bare django-q2 schedules, moved onto RecurringRun (same schedule row, now pointing at the
recurring run)."""

import ast
import json
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone

SEND = "containers: send due alerts"
DUE = "containers: last free days due"
TASK = "containers_app.tasks.run_recurring_query"


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    now = timezone.now()
    Schedule.objects.update_or_create(
        name=SEND,
        defaults={
            "func": "containers_app.tasks.send_due_alerts",
            "schedule_type": "I",  # minutes
            "minutes": 1,
            "repeats": -1,
            "next_run": now,
        },
    )
    Schedule.objects.update_or_create(
        name=DUE,
        defaults={
            "func": "containers_app.tasks.record_due_dates",
            "schedule_type": "H",  # hourly
            "repeats": -1,
            "next_run": now + timedelta(minutes=5),
        },
    )


def move_command_schedules(apps, schema_editor):
    from queries_app.recurring import next_run_time

    Schedule = apps.get_model("django_q", "Schedule")
    RecurringRun = apps.get_model("containers_app", "RecurringRun")
    Account = apps.get_model("sessions_app", "Account")
    zone_name = settings.TIME_ZONE
    now = timezone.now()
    old = Schedule.objects.filter(
        func="queries_app.tasks.start_scheduled_query", name__startswith="query "
    )
    for schedule in old:
        try:
            account_id, kind = ast.literal_eval(schedule.args or "")
            kwargs = ast.literal_eval(schedule.kwargs) if schedule.kwargs else {}
            params = json.loads(kwargs.get("params_json", "{}"))
        except (SyntaxError, ValueError, TypeError):
            continue  # not one the command wrote: left as it is
        if not Account.objects.filter(pk=account_id).exists():
            continue
        local = timezone.localtime(schedule.next_run or now, zoneinfo.ZoneInfo(zone_name))
        at = f"{local:%H:%M}"
        if schedule.schedule_type == "H":
            days, times = list(range(7)), [f"{hour:02d}:{local:%M}" for hour in range(24)]
        elif schedule.schedule_type == "D":
            days, times = list(range(7)), [at]
        elif schedule.schedule_type == "W":
            days, times = [local.weekday()], [at]
        else:
            continue
        paused = schedule.repeats == 0
        next_run = None if paused else next_run_time(
            weekdays=days, times=times, time_zone=zone_name, after=now
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
        )
        schedule.name = f"recurring run {run.pk}: {kind} for account {account_id}"[:100]
        schedule.func = TASK
        schedule.args = repr((run.pk,))
        schedule.kwargs = None
        schedule.schedule_type = "O"
        schedule.repeats = 1 if next_run else 0
        schedule.next_run = next_run or now
        schedule.save()
        run.schedule_id = schedule.pk
        run.save(update_fields=["schedule"])


def delete_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=[SEND, DUE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("containers_app", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("sessions_app", "0005_real_upstream"),
    ]

    operations = [
        migrations.RunPython(create_schedules, delete_schedules),
        migrations.RunPython(move_command_schedules, migrations.RunPython.noop),
    ]
