"""The changes the queries app computed (ContainerChange) go with their table; what a run's page
showed is kept as history where the board observed nothing for the run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from history.models import HistoryEntry
from queries_app.models import Query
from sessions_app.models import Account

BEFORE = [
    ("queries_app", "0012_retire_scheduled_query"),
    ("containers_app", "0010_alerts_are_deliveries"),
]


@pytest.mark.django_db(transaction=True)
def test_the_changes_a_run_showed_are_kept_as_its_history(alice: Account) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    OldQuery = old.get_model("queries_app", "Query")
    Change = old.get_model("queries_app", "ContainerChange")
    Container = old.get_model("containers_app", "Container")
    Entry = old.get_model("containers_app", "HistoryEntry")
    early, late = datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 2, 12, tzinfo=UTC)
    first = OldQuery.objects.create(account_id=alice.pk, kind="containers", status="succeeded")
    # Before the board: the page showed the queries app's changes only.
    unmerged = OldQuery.objects.create(
        account_id=alice.pk, kind="containers", status="succeeded", finished_at=early
    )
    merged = OldQuery.objects.create(
        account_id=alice.pk, kind="containers", status="succeeded", finished_at=late
    )
    on_board = Container.objects.create(account_id=alice.pk, container_number="MSCU0000001")
    Change.objects.create(
        query=unmerged,
        previous_query=first,
        container_number="MSCU0000001",
        change="changed",
        fields={"holds": [True, False]},
    )
    Change.objects.create(query=unmerged, container_number="MSCU0000009", change="gone")
    Change.objects.create(
        query=merged,
        container_number="MSCU0000001",
        change="changed",
        fields={"status": ["A", "B"]},
    )
    Entry.objects.create(
        container=on_board, query=merged, observed_at=late, change="back", fields={}
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    kept = list(Query.objects.get(pk=unmerged.pk).changes.all())
    assert [
        (e.container_id, e.container_number, e.change, e.fields, e.previous_query_id, e.observed_at)
        for e in kept
    ] == [(on_board.pk, "MSCU0000001", "changed", {"holds": [True, False]}, first.pk, early)]
    # A run the board merged shows the board's entries (numbered now), not the old rows.
    board = list(Query.objects.get(pk=merged.pk).changes.all())
    assert [(e.container_number, e.change) for e in board] == [("MSCU0000001", "back")]
    # The gone container the board never had has nothing to belong to.
    assert not HistoryEntry.objects.filter(container_number="MSCU0000009").exists()
