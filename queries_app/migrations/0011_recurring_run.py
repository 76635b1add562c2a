"""The recurring run, moved from the containers board's app: the same table
(containers_app_recurringrun, its rows, keys and constraints untouched); only Django's record of
the models changes."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import queries_app.registry


class Migration(migrations.Migration):
    dependencies = [
        ("containers_app", "0008_recurring_runs_to_queries"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("queries_app", "0010_terminal_time_zone"),
        ("sessions_app", "0005_real_upstream"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="RecurringRun",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=queries_app.registry.kind_choices, max_length=20
                            ),
                        ),
                        ("params", models.JSONField(blank=True, default=dict)),
                        ("weekdays", models.JSONField(default=list)),
                        ("times", models.JSONField(default=list)),
                        ("time_zone", models.CharField(max_length=64)),
                        ("paused", models.BooleanField(default=False)),
                        ("next_run_at", models.DateTimeField(blank=True, null=True)),
                        ("last_run_at", models.DateTimeField(blank=True, null=True)),
                        ("last_error", models.CharField(blank=True, max_length=255)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "account",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="recurring_runs",
                                to="sessions_app.account",
                            ),
                        ),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                help_text="Empty when made by the run_queries command.",
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "last_query",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="queries_app.query",
                            ),
                        ),
                        (
                            "schedule",
                            models.OneToOneField(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="django_q.schedule",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "containers_app_recurringrun",
                        "ordering": ["account", "kind", "id"],
                    },
                ),
            ],
        ),
    ]
