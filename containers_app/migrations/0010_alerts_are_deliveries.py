"""The alerts and their items are notifications' e-mail deliveries now (copied by notifications
0002): the old tables go."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('containers_app', '0009_alert_preference_to_notifications'),
        ('notifications', '0003_deliveries'),
    ]

    operations = [
        migrations.DeleteModel(
            name='AlertItem',
        ),
        migrations.DeleteModel(
            name='Alert',
        ),
    ]
