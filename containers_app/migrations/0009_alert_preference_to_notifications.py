"""Alert preferences belong to the notifications app now (notifications 0002 takes the model,
with its table as it is): only Django's record of the models changes here, not the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("containers_app", "0008_recurring_runs_to_queries"),
        ("notifications", "0002_alert_preference"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AlertPreference")],
            database_operations=[],
        ),
    ]
