"""A run's changes are read from the history: each entry keeps its container's number (joined to
the run's rows by (query, container number), one index) and the run it was compared with."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0001_initial"),
        ("queries_app", "0012_retire_scheduled_query"),
    ]

    operations = [
        migrations.AddField(
            model_name="historyentry",
            name="container_number",
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.AddField(
            model_name="historyentry",
            name="previous_query",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="queries_app.query",
            ),
        ),
        migrations.AlterField(
            model_name="historyentry",
            name="fields",
            field=models.JSONField(blank=True, default=dict, help_text="field: [before, after]"),
        ),
        migrations.AddIndex(
            model_name="historyentry",
            index=models.Index(fields=["query", "container_number"], name="history_query_container"),
        ),
        # The (query, container number) index starts with the run: the key's own index goes.
        migrations.AlterField(
            model_name="historyentry",
            name="query",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="changes",
                to="queries_app.query",
            ),
        ),
    ]
