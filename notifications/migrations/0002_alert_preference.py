"""People's alert preferences, moved from the containers board's app: the same table
(containers_app_alertpreference, its rows, keys and constraint untouched); only Django's record
of the models changes, and the content type follows so that permissions given on it stay given."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=target, model="alertpreference").exists():
        ContentType.objects.filter(app_label=source, model="alertpreference").update(
            app_label=target
        )


def forwards(apps, schema_editor):
    move_content_type(apps, "containers_app", "notifications")


def backwards(apps, schema_editor):
    move_content_type(apps, "notifications", "containers_app")


class Migration(migrations.Migration):
    dependencies = [
        ("containers_app", "0008_recurring_runs_to_queries"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("notifications", "0001_one_sweep"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="AlertPreference",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "channel",
                            models.CharField(
                                choices=[("email", "E-mail"), ("off", "Off")],
                                default="email",
                                max_length=10,
                            ),
                        ),
                        ("events", models.JSONField(blank=True, default=list)),
                        (
                            "scope",
                            models.CharField(
                                choices=[
                                    ("all", "All my containers"),
                                    ("watched", "Only containers I watch (★)"),
                                ],
                                default="all",
                                max_length=10,
                            ),
                        ),
                        ("lfd_due_days", models.PositiveSmallIntegerField(default=2)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "user",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="alert_preference",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "containers_app_alertpreference",
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("lfd_due_days__lte", 7)),
                                name="alertpref_lfd_days_max",
                            )
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
