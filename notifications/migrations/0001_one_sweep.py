"""One sweep for notifications (events whose dispatch was lost, due webhook deliveries and
e-mail alerts) instead of the webhooks' and the alerts' own."""

from django.db import migrations
from django.utils import timezone

SWEEP = "notifications: dispatch events, send due deliveries"
OLD = {
    "api: send due webhook deliveries": "api_app.tasks.sweep_webhooks",
    "containers: send due alerts": "containers_app.tasks.send_due_alerts",
}


def one_sweep(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=OLD).delete()
    Schedule.objects.update_or_create(
        name=SWEEP,
        defaults={
            "func": "notifications.tasks.sweep",
            "schedule_type": "I",  # minutes
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def two_sweeps(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=SWEEP).delete()
    for name, func in OLD.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": "I",
                "minutes": 1,
                "repeats": -1,
                "next_run": timezone.now(),
            },
        )


class Migration(migrations.Migration):
    dependencies = [
        ("api_app", "0002_sweep_schedule"),
        ("containers_app", "0002_schedules"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(one_sweep, two_sweeps)]
