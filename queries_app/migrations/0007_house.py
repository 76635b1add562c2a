"""Query kinds come from the registry (callable choices); a query waiting for a browser, a
breaker or a budget says so in a field of its own; changes are stored by field name."""

from django.db import migrations, models

import queries_app.registry

LABEL_TO_FIELD = {
    "status": "status",
    "holds": "holds",
    "last free day": "last_free_day",
    "pregate": "pregate_ticket",
    "earliest slot": "earliest_slot",
}
WAITING = "Waiting: "


def forward(apps, schema_editor):
    ContainerChange = apps.get_model("queries_app", "ContainerChange")
    for change in ContainerChange.objects.exclude(fields={}).iterator():
        renamed = {LABEL_TO_FIELD.get(key, key): value for key, value in change.fields.items()}
        if renamed != change.fields:
            ContainerChange.objects.filter(pk=change.pk).update(fields=renamed)
    Query = apps.get_model("queries_app", "Query")
    for query in Query.objects.filter(error__startswith=WAITING).iterator():
        Query.objects.filter(pk=query.pk).update(
            waiting_for=query.error[len(WAITING) :][:255], error=""
        )


def backward(apps, schema_editor):
    FIELD_TO_LABEL = {field: label for label, field in LABEL_TO_FIELD.items()}
    ContainerChange = apps.get_model("queries_app", "ContainerChange")
    for change in ContainerChange.objects.exclude(fields={}).iterator():
        renamed = {FIELD_TO_LABEL.get(key, key): value for key, value in change.fields.items()}
        ContainerChange.objects.filter(pk=change.pk).update(fields=renamed)


class Migration(migrations.Migration):
    dependencies = [("queries_app", "0006_terminal_names")]

    operations = [
        migrations.AlterField(
            model_name="query",
            name="kind",
            field=models.CharField(choices=queries_app.registry.kind_choices, max_length=20),
        ),
        migrations.AddField(
            model_name="query",
            name="waiting_for",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.RunPython(forward, backward),
    ]
