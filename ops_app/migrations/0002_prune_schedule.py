from datetime import timedelta

from django.db import migrations
from django.utils import timezone

PRUNE = "ops: prune old results"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    # Daily, first in the small hours after the migration (UTC): out of the way of the day's
    # batches, and not straight after an upgrade.
    first = (timezone.now() + timedelta(days=1)).replace(hour=3, minute=30, second=0, microsecond=0)
    Schedule.objects.update_or_create(
        name=PRUNE,
        defaults={
            "func": "ops_app.tasks.prune_results",
            "schedule_type": "D",  # daily
            "repeats": -1,
            "next_run": first,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=PRUNE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ops_app", "0001_histograms"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
