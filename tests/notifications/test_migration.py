"""The board's events move into the outbox without loss: same ids, the alerts that told them
still pointing at them, counted as dispatched (never sent again), and new events numbered
after them. Then webhook deliveries and e-mail alerts become one delivery table: the webhook
deliveries keep their ids (the API shows them) and attempts, the alerts come after them keeping
their Message-ID, each still linked to the events it told of."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from notifications.dispatcher import dispatch
from notifications.models import Delivery, DeliveryAttempt, DeliveryEvent
from notifications.sending import sweep_deliveries
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
    assert DeliveryEvent.objects.get().event_id == events[1].pk
    assert dispatch() == 0  # told when they were recorded: never again
    fresh = Event.objects.create(
        key="query.failed:1", type="query.failed", account=alice, occurred_at=now
    )
    assert fresh.pk > events[-1].pk


ONE_TABLE_BEFORE = [
    ("notifications", "0002_alert_preference"),
    ("api_app", "0003_request_counts_in_the_cache"),
    ("containers_app", "0009_alert_preference_to_notifications"),
]


@pytest.mark.django_db(transaction=True)
def test_webhook_deliveries_and_alerts_become_one_delivery_table(alice: Account) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(ONE_TABLE_BEFORE)
    old = executor.loader.project_state(ONE_TABLE_BEFORE).apps
    now = timezone.now()
    event = old.get_model("outbox", "Event").objects.create(
        key="query.failed:7",
        type="query.failed",
        account_id=alice.pk,
        occurred_at=now,
        dispatched_at=now,
    )
    endpoint = old.get_model("api_app", "WebhookEndpoint").objects.create(
        user_id=alice.user_id, url="https://tms.example.com/h", events=["query.failed"], secret="s"
    )
    WebhookDelivery = old.get_model("api_app", "WebhookDelivery")
    hooks = [
        WebhookDelivery.objects.create(
            id=pk,
            endpoint=endpoint,
            event_id=event_id,
            event_type="query.failed",
            body='{"type":"query.failed"}',
            status=status,
            attempts=1,
            response_code=500 if status == "pending" else 200,
            error="HTTP 500" if status == "pending" else "",
            next_attempt_at=now if status == "pending" else None,
            finished_at=None if status == "pending" else now,
        )
        for pk, event_id, status in ((7, "query.failed:7", "pending"), (9, "evt_gone", "succeeded"))
    ]
    old.get_model("api_app", "DeliveryAttempt").objects.create(
        delivery=hooks[0], number=1, started_at=now, duration_ms=12, response_code=500
    )
    Alert = old.get_model("containers_app", "Alert")
    sent = Alert.objects.create(
        user_id=alice.user_id,
        recipient="alice@example.com",
        account_id=alice.pk,
        subject="E-Modal: 1 query failed",
        event_count=1,
        status="sent",
        attempts=1,
        sent_at=now,
    )
    old.get_model("containers_app", "AlertItem").objects.create(
        alert=sent, user_id=alice.user_id, event=event
    )
    sending = Alert.objects.create(
        user_id=alice.user_id,
        recipient="alice@example.com",
        subject="E-Modal: sending",
        status="sending",
        claimed_until=now - timedelta(seconds=1),
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    # The webhook deliveries: same ids, fields and attempts; linked to their event if it is kept.
    webhooks = list(Delivery.objects.webhooks().order_by("pk"))
    assert [(d.pk, d.event_id, d.status, d.endpoint_id) for d in webhooks] == [
        (7, "query.failed:7", "pending", endpoint.pk),
        (9, "evt_gone", "succeeded", endpoint.pk),
    ]
    assert (webhooks[0].response_code, webhooks[0].error) == (500, "HTTP 500")
    assert list(DeliveryAttempt.objects.values_list("delivery_id", "number", "duration_ms")) == [
        (7, 1, 12)
    ]
    assert list(webhooks[0].links.values_list("event_id", "endpoint_id")) == [
        (event.pk, endpoint.pk)
    ]
    assert not webhooks[1].links.exists()

    # The alerts: after them, their Message-ID kept, their events still linked.
    emails = {d.legacy_id: d for d in Delivery.objects.emails()}
    assert set(emails) == {sent.pk, sending.pk}
    assert all(d.pk > 9 for d in emails.values())
    told = emails[sent.pk]
    assert (told.status, told.sent_at, told.subject) == ("succeeded", now, sent.subject)
    assert told.message_key() == f"alert-{sent.pk}"
    assert list(told.links.values_list("event_id", "user_id")) == [(event.pk, alice.user_id)]
    # One being sent when the tables changed: never sent again, in case it went out.
    assert sweep_deliveries()["stuck"] == 1
    emails[sending.pk].refresh_from_db()
    assert emails[sending.pk].status == "failed"
    assert "in case it went out" in emails[sending.pk].error

    # New deliveries are numbered after all of them.
    fresh = Delivery.objects.create(channel="email", user=alice.user, subject="new")
    assert fresh.pk > max(d.pk for d in emails.values())
    assert fresh.message_key() == f"alert-{fresh.pk}"
