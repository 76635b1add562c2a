"""The board's records are kept for BOARD_RETENTION_DAYS: old sent alerts, events, history and
containers long gone go, in batches; containers on the list, alerts still waiting to be sent and
their events stay, whatever their age."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from containers_app.models import Container, Event, Watch
from containers_app.retention import prune_board
from history.models import HistoryEntry
from notifications.models import Delivery, DeliveryEvent
from notifications.retention import prunable
from ops_app import tasks
from queries_app.events import EventType
from sessions_app.models import Account

pytestmark = pytest.mark.django_db


def ago(days: int) -> Any:
    return timezone.now() - timedelta(days=days)


def alert(account: Account, event: Event, status: str, days: int, attempts: int = 1) -> Delivery:
    made = Delivery.objects.create(
        channel=Delivery.Channel.EMAIL,
        user=account.user,
        recipient="alice@example.com",
        account=account,
        subject="Changes",
        status=status,
        event_count=1,
        attempts=attempts,
    )
    Delivery.objects.filter(pk=made.pk).update(created_at=ago(days))
    DeliveryEvent.objects.create(delivery=made, event=event, channel="email", user=account.user)
    return made


def event(account: Account, key: str, days: int) -> Event:
    return Event.objects.create(
        key=key,
        type=EventType.LFD_CHANGED,
        account=account,
        occurred_at=ago(days),
        dispatched_at=ago(days),
    )


@pytest.fixture
def history(alice: Account) -> dict[str, Any]:
    """A year of one account's board."""
    listed = Container.objects.create(
        account=alice, container_number="MSCU0000001", first_seen_at=ago(400)
    )
    long_gone = Container.objects.create(
        account=alice, container_number="MSCU0000002", gone_at=ago(200)
    )
    just_gone = Container.objects.create(
        account=alice, container_number="MSCU0000003", gone_at=ago(10)
    )
    Watch.objects.create(user=alice.user, container=long_gone)
    for container, days in ((listed, 300), (listed, 5), (long_gone, 250), (just_gone, 10)):
        HistoryEntry.objects.create(
            container=container, observed_at=ago(days), change=HistoryEntry.Change.CHANGED
        )
    old_sent = event(alice, "old-sent", 200)
    old_waiting = event(alice, "old-waiting", 200)
    recent = event(alice, "recent", 3)  # in an undeliverable alert older than the cut-off
    return {
        "listed": listed,
        "long_gone": long_gone,
        "just_gone": just_gone,
        "sent": alert(alice, old_sent, Delivery.Status.SUCCEEDED, 200),
        "undeliverable": alert(alice, recent, Delivery.Status.FAILED, 190),
        "waiting": alert(alice, old_waiting, Delivery.Status.PENDING, 200),
    }


def test_old_records_go_and_what_is_still_needed_stays(history: dict[str, Any]) -> None:
    counted = prune_board(older_than_days=180, dry_run=True, first=prunable)
    assert counted.tables == {"alerts": 2, "events": 1, "history": 2, "gone containers": 1}
    assert Delivery.objects.count() == 3 and HistoryEntry.objects.count() == 4  # nothing gone

    batches: list[tuple[str, int]] = []
    done = prune_board(
        older_than_days=180, batch_size=1, on_batch=lambda *b: batches.append(b), first=prunable
    )
    # Deleted rows count cascades: each alert's item, the long-gone container's star and the
    # history entry it still had.
    assert done.tables == {"alerts": 4, "events": 1, "history": 2, "gone containers": 2}
    assert [name for name, _ in batches].count("alerts") == 2
    assert set(Delivery.objects.values_list("pk", flat=True)) == {history["waiting"].pk}
    assert set(Event.objects.values_list("key", flat=True)) == {"old-waiting", "recent"}
    assert set(Container.objects.values_list("container_number", flat=True)) == {
        "MSCU0000001",
        "MSCU0000003",
    }
    assert sorted(
        (e.container.container_number, (timezone.now() - e.observed_at).days)
        for e in HistoryEntry.objects.select_related("container")
    ) == [("MSCU0000001", 5), ("MSCU0000003", 10)]
    assert not Watch.objects.exists()
    # Nothing left to do the second time.
    assert prune_board(older_than_days=180, first=prunable).rows == 0


def test_the_daily_prune_and_the_command_follow_the_setting(
    history: dict[str, Any], settings: Any
) -> None:
    settings.RESULTS_RETENTION_DAYS = 0
    settings.BOARD_RETENTION_DAYS = 0
    assert tasks.prune_results().endswith("board: off (BOARD_RETENTION_DAYS=0)")
    assert HistoryEntry.objects.count() == 4

    out = StringIO()
    call_command(
        "prune_results", "--older-than", "30", "--board-older-than", "180", "--dry-run", stdout=out
    )
    assert "Would delete 6 rows of the board." in out.getvalue()
    assert HistoryEntry.objects.count() == 4
    with pytest.raises(CommandError, match="negative"):
        call_command("prune_results", "--older-than", "30", "--board-older-than", "-1")

    settings.BOARD_RETENTION_DAYS = 180
    assert "board: 4 alerts, 1 events, 2 history, 2 gone containers" in tasks.prune_results()
    assert HistoryEntry.objects.count() == 2
