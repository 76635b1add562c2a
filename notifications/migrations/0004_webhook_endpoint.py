"""Webhook endpoints, moved from the API's app: the same table (api_app_webhookendpoint, its
rows, keys and encrypted secrets untouched); only Django's record of the models changes, and the
content type follows so that permissions given on it stay given. The deliveries' foreign keys
point here (to the same table); api_app 0005 forgets its own model."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import sessions_app.fields


def move_content_type(apps, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=target, model="webhookendpoint").exists():
        ContentType.objects.filter(app_label=source, model="webhookendpoint").update(
            app_label=target
        )


def forwards(apps, schema_editor):
    move_content_type(apps, "api_app", "notifications")


def backwards(apps, schema_editor):
    move_content_type(apps, "notifications", "api_app")


class Migration(migrations.Migration):
    dependencies = [
        ("api_app", "0004_webhook_deliveries_are_deliveries"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("notifications", "0003_deliveries"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="WebhookEndpoint",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("url", models.CharField(max_length=2000, verbose_name="URL")),
                        ("description", models.CharField(blank=True, max_length=200)),
                        ("events", models.JSONField(default=list)),
                        (
                            "secret",
                            sessions_app.fields.SecretCharField(verbose_name="signing secret"),
                        ),
                        ("enabled", models.BooleanField(default=True)),
                        ("disabled_at", models.DateTimeField(blank=True, null=True)),
                        ("disabled_reason", models.CharField(blank=True, max_length=255)),
                        ("last_success_at", models.DateTimeField(blank=True, null=True)),
                        ("last_failure_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="webhook_endpoints",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "webhook endpoint",
                        "db_table": "api_app_webhookendpoint",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="endpoint",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="notifications.webhookendpoint",
                    ),
                ),
                migrations.AlterField(
                    model_name="deliveryevent",
                    name="endpoint",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="notifications.webhookendpoint",
                    ),
                ),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
