"""Recurring runs belong to the queries app now (queries_app 0011 takes the model, with its
table as it is): only Django's record of the models changes here, not the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("containers_app", "0007_container_appointment"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="RecurringRun")],
            database_operations=[],
        ),
    ]
