"""The webhook deliveries and their attempts are notifications' deliveries now (copied by
notifications 0002, same ids): the old tables go."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('api_app', '0003_request_counts_in_the_cache'),
        ('notifications', '0003_deliveries'),
    ]

    operations = [
        migrations.DeleteModel(
            name='DeliveryAttempt',
        ),
        migrations.DeleteModel(
            name='WebhookDelivery',
        ),
    ]
