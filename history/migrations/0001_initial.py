"""The containers' history, moved from the board's app: the same table
(containers_app_historyentry, its rows, keys and indexes untouched); only Django's record of the
models changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("containers_app", "0011_history_to_its_app"),
        ("queries_app", "0012_retire_scheduled_query"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="HistoryEntry",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("observed_at", models.DateTimeField()),
                        (
                            "change",
                            models.CharField(
                                choices=[
                                    ("new", "New on the list"),
                                    ("back", "Back on the list"),
                                    ("changed", "Changed"),
                                    ("gone", "Gone from the list"),
                                    ("booking", "Appointment"),
                                ],
                                max_length=10,
                            ),
                        ),
                        ("fields", models.JSONField(blank=True, default=dict)),
                        (
                            "container",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="history",
                                to="containers_app.container",
                            ),
                        ),
                        (
                            "query",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="queries_app.query",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "history entries",
                        "ordering": ["-observed_at", "-id"],
                        "db_table": "containers_app_historyentry",
                        "indexes": [
                            models.Index(
                                fields=["container", "observed_at"], name="history_container_time"
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
