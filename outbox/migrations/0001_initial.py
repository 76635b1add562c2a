# The outbox's table: the board's events move here (0002), with the dispatch columns.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('containers_app', '0002_schedules'),
        ('queries_app', '0008_results_one_index'),
        ('sessions_app', '0005_real_upstream'),
    ]

    operations = [
        migrations.CreateModel(
            name='Event',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=200, unique=True)),
                ('type', models.CharField(choices=[('container.lfd_changed', 'Last free day set or changed'), ('container.lfd_due', 'Last free day within a few days'), ('container.holds_released', 'Holds released'), ('container.pregate_done', 'Pregate done'), ('container.slot_appeared', 'Appointment slot appeared'), ('container.new', 'New container'), ('container.gone', 'Container gone from the list'), ('query.finished', 'Query finished'), ('query.failed', 'Query failed'), ('account.credentials_rejected', 'E-Modal credentials rejected')], max_length=40)),
                ('container_number', models.CharField(blank=True, max_length=20)),
                ('data', models.JSONField(blank=True, default=dict)),
                ('occurred_at', models.DateTimeField()),
                ('dispatched_at', models.DateTimeField(blank=True, null=True)),
                ('claim_token', models.CharField(blank=True, default='', max_length=64)),
                ('claim_expires_at', models.DateTimeField(blank=True, null=True)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='sessions_app.account')),
                ('container', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='events', to='containers_app.container')),
                ('query', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='queries_app.query')),
            ],
            options={
                'ordering': ['-occurred_at', '-id'],
                'indexes': [models.Index(fields=['account', 'occurred_at'], name='outbox_event_account_time'), models.Index(condition=models.Q(('dispatched_at', None)), fields=['id'], name='outbox_event_undispatched')],
            },
        ),
    ]
