"""The board's events move into the outbox without loss: same ids, the alerts that told them
still pointing at them, counted as dispatched (never sent again), and new events numbered
after them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from containers_app.models import AlertItem
from notifications.dispatcher import dispatch
from outbox.models import Event
from sessions_app.models import Account

BEFORE = [("containers_app", "0002_schedules"), ("outbox", None), ("notifications", None)]


@pytest.mark.django_db(transaction=True)
def test_the_boards_events_move_into_the_outbox(alice: Account) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE[0]).apps
    now = timezone.now()
    events = [
        old.get_model("containers_app", "Event").objects.create(
            key=f"container.lfd_changed:{alice.pk}:MSCU000000{n}:x",
            type="container.lfd_changed",
            account_id=alice.pk,
            container_number=f"MSCU000000{n}",
            data={"before": None, "after": "2026-12-09"},
            occurred_at=now,
        )
        for n in range(3)
    ]
    alert = old.get_model("containers_app", "Alert").objects.create(
        user_id=alice.user_id, recipient="alice@example.com", subject="Changes", status="sent"
    )
    old.get_model("containers_app", "AlertItem").objects.create(
        alert=alert, user_id=alice.user_id, event=events[1]
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    moved = list(Event.objects.order_by("pk"))
    assert [(e.pk, e.key, e.data) for e in moved] == [(e.pk, e.key, e.data) for e in events]
    assert all(e.dispatched_at is not None for e in moved)
    assert AlertItem.objects.get().event_id == events[1].pk
    assert dispatch() == 0  # told when they were recorded: never again
    fresh = Event.objects.create(
        key="query.failed:1", type="query.failed", account=alice, occurred_at=now
    )
    assert fresh.pk > events[-1].pk
