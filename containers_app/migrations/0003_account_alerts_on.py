"""A failed run and rejected credentials are alerted by default: preferences saved before these
two were offered as on get them too (a dead account must not look healthy)."""

from django.db import migrations

ACCOUNT_EVENTS = ["query.failed", "account.credentials_rejected"]


def turn_on(apps, schema_editor):
    AlertPreference = apps.get_model("containers_app", "AlertPreference")
    for preference in AlertPreference.objects.all():
        missing = [kind for kind in ACCOUNT_EVENTS if kind not in preference.events]
        if missing:
            preference.events = [*preference.events, *missing]
            preference.save(update_fields=["events"])


class Migration(migrations.Migration):
    dependencies = [("containers_app", "0002_schedules")]

    operations = [migrations.RunPython(turn_on, migrations.RunPython.noop)]
