import hashlib
import json

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

LIVE = ["pending", "running"]


def key_live_queries(apps, schema_editor):
    """Give the live queries their parameters' key, so that a new identical trigger finds
    them. Of live duplicates started before this change, the oldest gets the key and the
    others keep none (they end as they would have)."""
    Query = apps.get_model("queries_app", "Query")
    seen = set()
    for query in Query.objects.filter(status__in=LIVE).order_by("created_at", "id").iterator():
        # The same key as queries_app.models.params_key (frozen here, as migrations are).
        text = json.dumps(query.params, sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(text.encode()).hexdigest()
        if (query.account_id, query.kind, key) in seen:
            continue
        seen.add((query.account_id, query.kind, key))
        Query.objects.filter(pk=query.pk).update(params_key=key)


class Migration(migrations.Migration):

    dependencies = [
        ('queries_app', '0002_sweep_schedule'),
        ('sessions_app', '0003_upstreambreaker'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='query',
            name='params_key',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='query',
            name='started_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='query',
            index=models.Index(fields=['started_by', 'created_at'], name='queries_app_started_c5d277_idx'),
        ),
        migrations.AddConstraint(
            model_name='query',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['pending', 'running'])), fields=('account', 'kind', 'params_key'), name='query_one_live_per_account_kind_params'),
        ),
        # Last: no schema change follows the data change in this transaction (PostgreSQL).
        migrations.RunPython(key_live_queries, migrations.RunPython.noop),
    ]
