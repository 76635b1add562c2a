"""A run's changes are the board's history entries of it (history 0003 kept the rows its page
showed): the queries app's own change table goes."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("queries_app", "0012_retire_scheduled_query"),
        ("history", "0003_run_changes_data"),
    ]

    operations = [
        migrations.DeleteModel(name="ContainerChange"),
    ]
