"""The board's events move into the outbox, ids kept (the alerts' items point at them). They
were announced when they were recorded: they count as dispatched, and are never sent again."""

from django.core.management.color import no_style
from django.db import migrations

COLUMNS = [
    "id",
    "key",
    "type",
    "account_id",
    "container_id",
    "container_number",
    "query_id",
    "data",
    "occurred_at",
]


def move_events(apps, schema_editor):
    Old = apps.get_model("containers_app", "Event")
    New = apps.get_model("outbox", "Event")
    batch = []
    for row in Old.objects.order_by("pk").values(*COLUMNS).iterator(chunk_size=2000):
        batch.append(New(**row, dispatched_at=row["occurred_at"]))
        if len(batch) >= 2000:
            New.objects.bulk_create(batch)
            batch = []
    New.objects.bulk_create(batch)
    connection = schema_editor.connection
    statements = connection.ops.sequence_reset_sql(no_style(), [New])
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


def move_back(apps, schema_editor):
    Old = apps.get_model("containers_app", "Event")
    New = apps.get_model("outbox", "Event")
    Old.objects.bulk_create(
        [Old(**row) for row in New.objects.order_by("pk").values(*COLUMNS)], batch_size=2000
    )


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0001_initial"),
        ("containers_app", "0002_schedules"),
    ]

    operations = [migrations.RunPython(move_events, move_back)]
