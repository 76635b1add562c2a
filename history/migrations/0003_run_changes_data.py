"""The entries' container numbers; and the changes the queries app computed (ContainerChange,
whose table queries_app 0013 drops) kept where the board observed nothing for the run: a run the
board never merged (before the board, or its first run) keeps the changes its page showed, as
history entries of the containers the board has (a change of a container the board never had
has no container to belong to and goes). A run the board merged shows the board's entries, as
every run does from now on."""

from django.db import migrations
from django.db.models import OuterRef, Subquery

BATCH_SIZE = 1000


def fill_container_numbers(apps, schema_editor):
    HistoryEntry = apps.get_model("history", "HistoryEntry")
    Container = apps.get_model("containers_app", "Container")
    number = Container.objects.filter(pk=OuterRef("container_id")).values("container_number")
    HistoryEntry.objects.filter(container_number="").update(container_number=Subquery(number[:1]))


def keep_run_changes(apps, schema_editor):
    ContainerChange = apps.get_model("queries_app", "ContainerChange")
    HistoryEntry = apps.get_model("history", "HistoryEntry")
    Container = apps.get_model("containers_app", "Container")
    Query = apps.get_model("queries_app", "Query")
    merged = set(
        HistoryEntry.objects.exclude(query=None).order_by().values_list("query_id", flat=True)
    )
    runs = ContainerChange.objects.order_by().values_list("query_id", flat=True).distinct()
    boards: dict[int, dict[str, int]] = {}
    for query_id in sorted(set(runs) - merged):
        query = Query.objects.only("account_id", "created_at", "finished_at").get(pk=query_id)
        if query.account_id not in boards:
            boards[query.account_id] = dict(
                Container.objects.filter(account_id=query.account_id).values_list(
                    "container_number", "id"
                )
            )
        board = boards[query.account_id]
        entries = [
            HistoryEntry(
                container_id=board[change.container_number],
                container_number=change.container_number,
                query_id=query_id,
                previous_query_id=change.previous_query_id,
                observed_at=query.finished_at or query.created_at,
                change=change.change,
                fields=change.fields,
            )
            for change in ContainerChange.objects.filter(query_id=query_id).iterator()
            if change.container_number in board
        ]
        HistoryEntry.objects.bulk_create(entries, batch_size=BATCH_SIZE)


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0002_run_changes"),
        ("containers_app", "0011_history_to_its_app"),
        ("queries_app", "0012_retire_scheduled_query"),
    ]

    operations = [
        migrations.RunPython(fill_container_numbers, migrations.RunPython.noop),
        migrations.RunPython(keep_run_changes, migrations.RunPython.noop),
    ]
