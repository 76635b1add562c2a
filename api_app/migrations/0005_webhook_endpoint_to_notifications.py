"""Webhook endpoints belong to the notifications app now (notifications 0004 takes the model,
with its table as it is, and points the deliveries' foreign keys to it): only Django's record
of the models changes here, not the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("api_app", "0004_webhook_deliveries_are_deliveries"),
        ("notifications", "0004_webhook_endpoint"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="WebhookEndpoint")],
            database_operations=[],
        ),
    ]
