"""The alerts and their items are notifications' e-mail deliveries now (copied by notifications
0002): the old tables go."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('containers_app', '0008_recurring_runs_to_queries'),
        ('notifications', '0002_deliveries'),
    ]

    operations = [
        migrations.DeleteModel(
            name='AlertItem',
        ),
        migrations.DeleteModel(
            name='Alert',
        ),
    ]
