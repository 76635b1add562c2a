"""One delivery table for every channel: the webhook deliveries (same ids: the API shows them)
and their attempts, then the e-mail alerts (new ids, after them; an alert's Message-ID stays
`<alert-{old id}@…>`: its old id is kept) with the events they told of. The old tables are
dropped by the API's and the board's next migrations."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.core.management.color import no_style
from django.db import migrations, models

BATCH = 1000
# An alert's state, as a delivery's.
STATUS = {"sent": "succeeded", "failed": "failed", "pending": "pending", "retrying": "pending"}


def batches(rows):
    batch = []
    for row in rows.iterator(chunk_size=BATCH):
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def copy_webhooks(apps, Delivery, Link):
    Old = apps.get_model("api_app", "WebhookDelivery")
    Attempt = apps.get_model("notifications", "DeliveryAttempt")
    OldAttempt = apps.get_model("api_app", "DeliveryAttempt")
    Event = apps.get_model("outbox", "Event")
    for batch in batches(Old.objects.order_by("pk")):
        Delivery.objects.bulk_create(
            Delivery(
                id=old.pk,
                channel="webhook",
                endpoint_id=old.endpoint_id,
                event_id=old.event_id,
                event_type=old.event_type,
                body=old.body,
                is_test=old.is_test,
                status=old.status,
                attempts=old.attempts,
                next_attempt_at=old.next_attempt_at,
                enqueued_at=old.enqueued_at,
                claim_token=old.claim_token,
                claim_expires_at=old.claim_expires_at,
                response_code=old.response_code,
                error=old.error,
                created_at=old.created_at,
                finished_at=old.finished_at,
            )
            for old in batch
        )
        events = dict(
            Event.objects.filter(key__in={old.event_id for old in batch}).values_list("key", "pk")
        )
        Link.objects.bulk_create(
            Link(
                delivery_id=old.pk,
                event_id=events[old.event_id],
                channel="webhook",
                endpoint_id=old.endpoint_id,
            )
            for old in batch
            if old.event_id in events and not old.is_test
        )
    for batch in batches(OldAttempt.objects.order_by("pk")):
        Attempt.objects.bulk_create(
            Attempt(
                id=old.pk,
                delivery_id=old.delivery_id,
                number=old.number,
                started_at=old.started_at,
                duration_ms=old.duration_ms,
                response_code=old.response_code,
                error=old.error,
                response_body=old.response_body,
            )
            for old in batch
        )


def copy_alerts(apps, Delivery, Link):
    Alert = apps.get_model("containers_app", "Alert")
    AlertItem = apps.get_model("containers_app", "AlertItem")
    after = Delivery.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    for batch in batches(Alert.objects.order_by("pk")):
        Delivery.objects.bulk_create(
            Delivery(
                id=after + old.pk,
                legacy_id=old.pk,
                channel="email",
                user_id=old.user_id,
                recipient=old.recipient,
                account_id=old.account_id,
                query_id=old.query_id,
                subject=old.subject,
                event_count=old.event_count,
                status=STATUS.get(old.status, "pending"),
                attempts=old.attempts,
                next_attempt_at=old.next_attempt_at,
                # One being sent: its sender's claim lapses, and the sweep marks it
                # undelivered (in case it went out), as it did an alert.
                claim_token="migrated" if old.status == "sending" else "",
                claim_expires_at=old.claimed_until if old.status == "sending" else None,
                error=old.error,
                created_at=old.created_at,
                finished_at=old.sent_at if old.status == "sent" else (
                    old.updated_at if old.status == "failed" else None
                ),
            )
            for old in batch
        )
    for batch in batches(AlertItem.objects.order_by("pk")):
        Link.objects.bulk_create(
            Link(
                delivery_id=after + item.alert_id,
                event_id=item.event_id,
                channel="email",
                user_id=item.user_id,
            )
            for item in batch
        )


def one_table(apps, schema_editor):
    Delivery = apps.get_model("notifications", "Delivery")
    Link = apps.get_model("notifications", "DeliveryEvent")
    copy_webhooks(apps, Delivery, Link)
    copy_alerts(apps, Delivery, Link)
    # Ids written explicitly: the next ones follow them (PostgreSQL's sequences).
    models_with_ids = [Delivery, apps.get_model("notifications", "DeliveryAttempt")]
    for sql in schema_editor.connection.ops.sequence_reset_sql(no_style(), models_with_ids):
        schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('api_app', '0003_request_counts_in_the_cache'),
        ('containers_app', '0009_alert_preference_to_notifications'),
        ('notifications', '0002_alert_preference'),
        ('outbox', '0003_appointment_events'),
        ('queries_app', '0012_retire_scheduled_query'),
        ('sessions_app', '0008_held_workflows'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Delivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('channel', models.CharField(choices=[('email', 'E-mail'), ('webhook', 'Webhook')], max_length=10)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Delivered'), ('failed', 'Failed'), ('cancelled', 'Not sent')], default='pending', max_length=10)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('enqueued_at', models.DateTimeField(blank=True, null=True)),
                ('claim_token', models.CharField(blank=True, max_length=32)),
                ('claim_expires_at', models.DateTimeField(blank=True, null=True)),
                ('error', models.CharField(blank=True, max_length=500)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('recipient', models.EmailField(blank=True, max_length=254)),
                ('subject', models.CharField(blank=True, max_length=200)),
                ('event_count', models.PositiveIntegerField(default=0)),
                ('legacy_id', models.PositiveIntegerField(blank=True, editable=False, null=True)),
                ('event_id', models.CharField(blank=True, max_length=100)),
                ('event_type', models.CharField(blank=True, max_length=60)),
                ('body', models.TextField(blank=True)),
                ('is_test', models.BooleanField(default=False)),
                ('response_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('account', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='sessions_app.account')),
                ('endpoint', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='api_app.webhookendpoint')),
                ('query', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='queries_app.query')),
                ('user', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name_plural': 'deliveries',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='DeliveryAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveSmallIntegerField()),
                ('started_at', models.DateTimeField()),
                ('duration_ms', models.PositiveIntegerField(default=0)),
                ('response_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('error', models.CharField(blank=True, max_length=500)),
                ('response_body', models.CharField(blank=True, max_length=200)),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_log', to='notifications.delivery')),
            ],
            options={
                'ordering': ['delivery', 'number'],
            },
        ),
        migrations.CreateModel(
            name='DeliveryEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('channel', models.CharField(choices=[('email', 'E-mail'), ('webhook', 'Webhook')], max_length=10)),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='links', to='notifications.delivery')),
                ('endpoint', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='api_app.webhookendpoint')),
                ('event', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='delivery_links', to='outbox.event')),
                ('user', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(fields=['status', 'next_attempt_at'], name='delivery_status_due'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(fields=['endpoint', 'created_at'], name='delivery_endpoint_time'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(fields=['user', 'created_at'], name='delivery_user_time'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('channel', 'email'), ('endpoint__isnull', True), ('user__isnull', False)), models.Q(('channel', 'webhook'), ('endpoint__isnull', False), ('user__isnull', True)), _connector='OR'), name='delivery_one_recipient'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.UniqueConstraint(condition=models.Q(('channel', 'webhook')), fields=('endpoint', 'event_id'), name='delivery_webhook_once_per_event_id'),
        ),
        migrations.AddConstraint(
            model_name='deliveryevent',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('channel', 'email'), ('endpoint__isnull', True), ('user__isnull', False)), models.Q(('channel', 'webhook'), ('endpoint__isnull', False), ('user__isnull', True)), _connector='OR'), name='deliveryevent_one_recipient'),
        ),
        migrations.AddConstraint(
            model_name='deliveryevent',
            constraint=models.UniqueConstraint(fields=('channel', 'user', 'event'), name='deliveryevent_once_per_person'),
        ),
        migrations.AddConstraint(
            model_name='deliveryevent',
            constraint=models.UniqueConstraint(fields=('channel', 'endpoint', 'event'), name='deliveryevent_once_per_endpoint'),
        ),
        migrations.RunPython(one_table, migrations.RunPython.noop),
    ]
