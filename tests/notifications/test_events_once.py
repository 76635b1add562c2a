"""One event, one delivery: a failed query, a cancelled one and a run whose board merge records
container events each give exactly one delivery per subscribed endpoint and person, under one
stable event id, whatever is retried or told again; a dispatcher that dies holding events, and
a delivery cluster killed before it dispatched, still deliver each event exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone
from django_q.brokers import get_broker

from containers_app import board
from notifications import dispatcher, tasks
from notifications.dispatcher import dispatch
from notifications.endpoints import create_endpoint
from notifications.models import AlertPreference, Delivery, DeliveryEvent
from outbox.models import Event
from outbox.vocabulary import EventType
from portal.claims import CLAIM
from queries_app.events import record_end
from queries_app.models import Query
from queries_app.services import cancel_query, start_query
from queries_app.signals import query_finished
from sessions_app.models import Account

from ..conftest import make_account
from ..containers.smtp import SmtpServer
from ..engine.test_query_cluster import wait_until
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks, run_through_retries

pytestmark = pytest.mark.django_db(transaction=True)

EVERYTHING = list(EventType.values)


def subscribe(account: Account, url: str, **permissions: Any) -> Any:
    """The account's person hears every event by e-mail and on an endpoint of their own."""
    account.user.email = f"{account.user.username}@example.com"
    account.user.save()
    AlertPreference.objects.create(user=account.user, events=EVERYTHING, lfd_due_days=7)
    return create_endpoint(
        user=account.user, url=f"{url}/{account.user.username}", events=EVERYTHING
    )[0]


def staff_endpoint(url: str) -> Any:
    """Staff who see every account's queries and containers, on an endpoint of their own."""
    person = make_account("sid").user
    person.is_staff = True
    person.save()
    person.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_query", "view_container"])
    )
    return create_endpoint(user=person, url=f"{url}/sid", events=EVERYTHING)[0]


def told_again(queries: list[Query], queue: TaskQueue) -> None:
    """Everything that could announce these events again: the engine's record of each end,
    the end told to listeners, the board's task, the dispatcher and the sweep — and every
    event handed to the channels once more, as if its dispatch had never been recorded."""
    for query in queries:
        with transaction.atomic():
            record_end(query.pk)
        query_finished.send_robust(sender=Query, query=query)
        board.update_board(query.pk)
    run_queued_tasks(queue, until=lambda: queue.size() == 0, max_rounds=2000)
    dispatch()
    tasks.sweep()
    run_queued_tasks(queue, until=lambda: queue.size() == 0, max_rounds=2000)
    Event.objects.update(dispatched_at=None)
    assert dispatch() == Event.objects.count()
    run_queued_tasks(queue, until=lambda: queue.size() == 0, max_rounds=2000)


def test_a_failed_a_cancelled_and_a_merged_run_give_one_delivery_per_subscriber(
    sim: SimControl, task_queue: TaskQueue, smtp: SmtpServer, receiver: Any, alice: Account
) -> None:
    rita = make_account("rita", password="wrong-password")
    hooks = {alice.pk: subscribe(alice, receiver.url), rita.pk: subscribe(rita, receiver.url)}
    staff = staff_endpoint(receiver.url)

    # A run whose merge records container events (the second sees what the simulator moved).
    run_through_retries(start_query(account=alice, kind="containers")[0], task_queue)
    sim.advance(alice.emodal_username)
    merged = run_through_retries(start_query(account=alice, kind="containers")[0], task_queue)
    assert merged.status == Query.Status.SUCCEEDED, merged.error
    # A cancelled one, and a failed one (E-Modal rejects rita's password).
    cancelled = start_query(account=alice, kind="appointments")[0]
    assert cancel_query(query=cancelled)
    failed = run_through_retries(start_query(account=rita, kind="containers")[0], task_queue)
    assert failed.status == Query.Status.FAILED
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0, max_rounds=2000)
    told_again([merged, cancelled, failed], task_queue)
    told_again([merged, cancelled, failed], task_queue)

    # One stable id per event.
    ends = dict(Event.objects.filter(type__startswith="query.").values_list("query_id", "key"))
    assert ends[cancelled.pk] == f"query.finished:{cancelled.pk}"
    assert ends[failed.pk] == f"query.failed:{failed.pk}"
    container_events = Event.objects.filter(query=merged, type__startswith="container.")
    assert container_events.exists()
    assert Event.objects.filter(type=EventType.CREDENTIALS_REJECTED, account=rita).count() == 1
    events = list(Event.objects.all())
    assert all(event.dispatched_at is not None for event in events)

    # Each event: one delivery to its account's person's endpoint and one to staff's, each
    # received once (the same webhook-id on each endpoint's path).
    deliveries = Counter(Delivery.objects.webhooks().values_list("endpoint_id", "event_id"))
    expected = Counter(
        pair
        for event in events
        for pair in [(hooks[event.account_id].pk, event.key), (staff.pk, event.key)]
    )
    assert deliveries == expected
    wait_until(lambda: not Delivery.objects.webhooks().filter(status="pending").exists())
    assert set(Delivery.objects.webhooks().values_list("status", flat=True)) == {"succeeded"}
    received = Counter((r.path, r.headers["webhook-id"]) for r in receiver.requests())
    assert set(received.values()) == {1}
    assert len(received) == sum(expected.values())

    # One table: each endpoint and each person told of an event by one delivery, once.
    links = Counter(DeliveryEvent.objects.values_list("channel", "user_id", "endpoint_id", "event"))
    assert links and set(links.values()) == {1}
    assert DeliveryEvent.objects.filter(channel="webhook").count() == sum(expected.values())
    assert not Delivery.objects.filter(links=None).exists()

    # Each person: each event they chose in at most one e-mail, one e-mail per run; the failure
    # and the stop in rita's one message for the failed run.
    mails = DeliveryEvent.objects.filter(channel="email")
    items = Counter(mails.values_list("user_id", "event_id"))
    assert items and set(items.values()) == {1}
    per_run = Counter(Delivery.objects.emails().values_list("user_id", "query_id"))
    assert set(per_run.values()) == {1}
    told_rita = set(mails.filter(user=rita.user).values_list("event__type", "delivery__query_id"))
    assert told_rita == {
        (EventType.QUERY_FAILED, failed.pk),
        (EventType.CREDENTIALS_REJECTED, failed.pk),
    }
    told_alice = set(mails.filter(user=alice.user).values_list("event_id", flat=True))
    assert set(container_events.values_list("pk", flat=True)) <= told_alice
    assert len(smtp.inbox.to("rita@example.com")) == 1


def test_a_dispatcher_that_dies_holding_events_leaves_them_to_the_next(
    alice: Account, receiver: Any, task_queue: TaskQueue
) -> None:
    hook = subscribe(alice, receiver.url)
    query = Query.objects.create(account=alice, kind="containers", status="failed", error="x")
    with transaction.atomic():
        [event] = record_end(query.pk)
    # A dispatcher took it, then died before its commit.
    assert CLAIM.take(Event.objects.filter(pk=event.pk), token="dead", seconds=120)
    assert dispatch() == 0  # its claim holds: nobody else takes it meanwhile
    assert not Delivery.objects.webhooks().exists()
    later = timezone.now() + timedelta(seconds=121)
    assert dispatch(now=later) == 1
    assert dispatch(now=later) == 0
    assert list(Delivery.objects.webhooks().values_list("endpoint_id", "event_id")) == [
        (hook.pk, f"query.failed:{query.pk}")
    ]
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    assert [r.headers["webhook-id"] for r in receiver.requests()] == [f"query.failed:{query.pk}"]


@pytest.mark.slow
def test_events_recorded_while_the_delivery_cluster_is_down_are_delivered_once_after_restart(
    sim: SimControl, task_queue: TaskQueue, clusters: Any, receiver: Any, alice: Account
) -> None:
    hook = subscribe(alice, receiver.url)
    worker = {"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true"}
    clusters(workers=2, **worker)
    deliveries = clusters(workers=1, Q_CLUSTER_NAME="deliveries", **worker)
    first, _ = start_query(account=alice, kind="containers")
    # Its end (and its due dates), delivered.
    wait_until(lambda: Event.objects.filter(query=first, dispatched_at__isnull=False).exists())
    wait_until(
        lambda: (
            not Event.objects.filter(dispatched_at=None).exists()
            and not Delivery.objects.webhooks().filter(status="pending").exists()
        )
    )
    before = len(receiver.requests())
    # The delivery cluster crashes; a second run ends and the board records what moved.
    deliveries.kill()
    sim.advance(alice.emodal_username)
    second, _ = start_query(account=alice, kind="containers")
    wait_until(lambda: not Query.objects.get(pk=second.pk).is_live)
    wait_until(
        lambda: Event.objects.filter(query=second, type__startswith="container.").exists(),
        timeout=60,
    )
    waiting = set(Event.objects.filter(dispatched_at=None).values_list("key", flat=True))
    assert f"query.finished:{second.pk}" in waiting and len(waiting) > 1
    # The wake-ups the crashed cluster never took are lost too (a broker that dropped them).
    get_broker("deliveries").purge_queue()
    clusters(workers=1, Q_CLUSTER_NAME="deliveries", **worker)
    tasks.sweep()  # the minute's sweep
    receiver.wait_for(lambda got: len(got) == before + len(waiting))
    tasks.sweep()
    wait_until(lambda: not Delivery.objects.webhooks().filter(status="pending").exists())
    ids = Counter(r.headers["webhook-id"] for r in receiver.requests())
    assert set(ids.values()) == {1}
    assert waiting <= set(ids)
    assert Delivery.objects.webhooks().filter(endpoint=hook).count() == len(ids)


def test_a_run_with_more_events_than_a_batch_is_one_email_per_person(
    alice: Account, receiver: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(dispatcher, "BATCH", 2)
    subscribe(alice, receiver.url)
    query = Query.objects.create(account=alice, kind="availability", status="succeeded")
    other = Query.objects.create(account=alice, kind="availability", status="succeeded")
    now = timezone.now()
    Event.objects.bulk_create(
        [
            Event(
                key=f"{EventType.LFD_CHANGED}:{run.pk}:{n}",
                type=EventType.LFD_CHANGED,
                account=alice,
                query=run,
                container_number=f"MSCU{run.pk:03d}{n:04d}",
                occurred_at=now,
            )
            for run in (query, other)
            for n in range(5)
        ]
    )
    # The first batch lists two events of the first run: the run's other three go with them.
    assert dispatcher.dispatch_batch() == 5
    assert dispatcher.dispatch_batch() == 5
    assert dispatcher.dispatch_batch() == 0
    mails = DeliveryEvent.objects.filter(channel="email", user=alice.user)
    digests = Counter(mails.values_list("delivery__query_id", flat=True))
    assert digests == {query.pk: 5, other.pk: 5}
    assert mails.values("delivery").distinct().count() == 2
