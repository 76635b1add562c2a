"""The board's events are the outbox's now (outbox 0002 moved the rows, ids kept): the
alerts' items point there, and the board's own table goes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("containers_app", "0004_pickup_and_tariffs"),
        ("outbox", "0002_board_events"),
    ]

    operations = [
        migrations.AlterField(
            model_name="alertitem",
            name="event",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="alert_items",
                to="outbox.event",
            ),
        ),
        migrations.DeleteModel(name="Event"),
    ]
