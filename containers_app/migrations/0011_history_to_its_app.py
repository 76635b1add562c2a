"""The containers' history belongs to the `history` app now (history 0001 takes the model, with
its table as it is): only Django's record of the models changes here, not the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("containers_app", "0010_alerts_are_deliveries"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="HistoryEntry")],
            database_operations=[],
        ),
    ]
