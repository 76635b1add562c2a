"""Webhook deliveries to a real receiver on loopback: signed (verified with the standardwebhooks
library), retried on schedule, the endpoint disabled and its owner told after the last
attempt, never sent twice for one event, never to a private address unless allowed, never
through a redirect."""

from __future__ import annotations

import socket
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from notifications.endpoints import create_endpoint
from notifications.models import AlertPreference, Delivery, WebhookEndpoint
from notifications.sending import send, sweep_deliveries
from sessions_app.models import Account

from ..outbox import announce, recorded
from ..taskqueue import TaskQueue, run_queued_tasks
from .receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

LFD = "container.lfd_changed"


def lfd_event(account: Account, number: str = "MSCU1234567", suffix: str = "1") -> dict[str, Any]:
    return {
        "id": f"evt_test_lfd_{account.pk}_{number}_{suffix}",
        "type": LFD,
        "account_id": account.pk,
        "container_number": number,
        "query_id": None,
        "data": {"before": "2026-05-01", "after": "2026-05-03"},
        "occurred_at": timezone.now().isoformat(),
    }


def verified(secret: str, request: Any) -> dict[str, Any]:
    return Webhook(secret).verify(request.body, request.headers)


def test_a_failing_receiver_is_retried_on_schedule_then_the_endpoint_is_disabled(
    alice: Account, receiver: Receiver, settings: Any, task_queue: TaskQueue
) -> None:
    settings.WEBHOOK_RETRY_SECONDS = [60, 120]
    alice.user.email = "alice@example.com"  # (told when the endpoint is disabled; no alerts)
    alice.user.save()
    AlertPreference.objects.create(user=alice.user, channel=AlertPreference.Channel.OFF)
    endpoint, secret = create_endpoint(user=alice.user, url=receiver.url, events=[LFD])
    receiver.status = 500
    announce([lfd_event(alice)])
    delivery = Delivery.objects.webhooks().get()
    assert task_queue.funcs() == ["notifications.tasks.send_delivery"]
    start = timezone.now()

    assert send(delivery.pk, now=start).startswith("attempt 1: failed (HTTP 500)")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("pending", 1, 500)
    retry_at = delivery.next_attempt_at
    assert timedelta(seconds=60) <= retry_at - start < timedelta(seconds=61)
    # Not before its time, whoever asks.
    assert send(delivery.pk, now=retry_at - timedelta(seconds=1)) == "not due, taken or finished"
    assert sweep_deliveries(now=retry_at - timedelta(seconds=1))["enqueued"] == 0
    assert sweep_deliveries(now=retry_at)["enqueued"] == 1
    assert task_queue.funcs() == ["notifications.tasks.send_delivery"]
    assert send(delivery.pk, now=retry_at).startswith("attempt 2: failed")
    delivery.refresh_from_db()
    third = delivery.next_attempt_at
    assert timedelta(seconds=120) <= third - retry_at < timedelta(seconds=121)
    assert send(delivery.pk, now=third).startswith("attempt 3: failed")

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED and delivery.next_attempt_at is None
    assert list(delivery.attempt_log.values_list("number", "response_code")) == [
        (1, 500),
        (2, 500),
        (3, 500),
    ]
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "failed over 3 attempts" in endpoint.disabled_reason
    [alert] = mail.outbox
    assert alert.to == ["alice@example.com"] and receiver.url in alert.body
    assert secret not in alert.body
    # Three requests, one webhook-id, each signed.
    got = receiver.requests()
    assert [r.headers["webhook-id"] for r in got] == [delivery.event_id] * 3
    assert all(verified(secret, r)["data"]["container_number"] == "MSCU1234567" for r in got)

    # A disabled endpoint hears nothing more ...
    announce([lfd_event(alice, suffix="2")])
    assert Delivery.objects.webhooks().count() == 1
    # ... until its owner enables it again.
    client = Client(HTTP_AUTHORIZATION=f"Bearer {_token(alice)}")
    response = client.patch(
        f"/api/v1/webhooks/{endpoint.pk}/", {"enabled": True}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["disabled_reason"] == ""
    receiver.status = 204
    task_queue.purge()
    announce([lfd_event(alice, suffix="3")])
    run_queued_tasks(
        task_queue, until=lambda: Delivery.objects.webhooks().filter(status="succeeded").exists()
    )
    assert verified(secret, receiver.requests()[-1])["data"]["id"].endswith("_3")


def _token(account: Account) -> str:
    from .conftest import token_for

    return token_for(account.user)


def test_an_event_announced_again_is_delivered_once(
    alice: Account, bob: Account, receiver: Receiver, task_queue: TaskQueue
) -> None:
    _, secret = create_endpoint(user=alice.user, url=receiver.url, events=[LFD])
    other = Receiver()
    try:
        create_endpoint(user=bob.user, url=other.url, events=[LFD])
        events = [lfd_event(alice, f"MSCU000000{n}") for n in range(3)]
        for _ in range(3):
            announce(events)
        run_queued_tasks(
            task_queue,
            until=lambda: not Delivery.objects.webhooks().filter(status="pending").exists(),
        )
        # Every queued task ran (some found their delivery already sent), and the sweep finds
        # nothing to send again.
        task_queue.drain()
        assert sweep_deliveries()["enqueued"] == 0
    finally:
        other.stop()
    ids = Counter(r.headers["webhook-id"] for r in receiver.requests())
    assert ids == Counter({event["id"]: 1 for event in events})
    assert {verified(secret, r)["type"] for r in receiver.requests()} == {LFD}
    # Bob may not see Alice's account: his endpoint heard nothing.
    assert other.requests() == []


def test_private_addresses_are_refused_unless_allowed(
    alice: Account, receiver: Receiver, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, _ = create_endpoint(user=alice.user, url=receiver.url, events=[LFD])
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    for url in (
        receiver.url,
        "http://10.1.2.3/hook",
        "http://[::1]:8080/",
        "http://localhost/hook",
        "http://169.254.169.254/latest",
        "ftp://example.com/",
        "https://user:pw@example.com/",
    ):
        with pytest.raises(ValidationError):
            create_endpoint(user=alice.user, url=url, events=[LFD])
    announce([lfd_event(alice)])
    delivery = Delivery.objects.webhooks().get()
    send(delivery.pk)
    delivery.refresh_from_db()
    assert "127.0.0.1 is not a public address" in delivery.error
    assert delivery.response_code is None and receiver.requests() == []

    # A name is resolved at delivery, and every address it has must be public.
    real = socket.getaddrinfo

    def resolver(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.example.com":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.1.20", 443)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="https://hooks.example.com/in")
    Delivery.objects.webhooks().filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    send(delivery.pk)
    delivery.refresh_from_db()
    assert "resolves to 192.168.1.20, not a public address" in delivery.error


def test_a_redirect_is_recorded_and_never_followed(
    alice: Account, receiver: Receiver, task_queue: TaskQueue
) -> None:
    target = Receiver()
    try:
        receiver.status, receiver.location = 307, target.url
        create_endpoint(user=alice.user, url=receiver.url, events=[LFD])
        announce([lfd_event(alice)])
        run_queued_tasks(
            task_queue, until=lambda: Delivery.objects.webhooks().filter(attempts=1).exists()
        )
        assert target.requests() == []
    finally:
        target.stop()
    delivery = Delivery.objects.webhooks().get()
    assert delivery.response_code == 307 and "not followed" in delivery.error
    assert len(receiver.requests()) == 1


def test_the_send_test_event_button_and_the_delivery_log(
    alice: Account, receiver: Receiver, task_queue: TaskQueue
) -> None:
    endpoint, secret = create_endpoint(user=alice.user, url=receiver.url, events=[LFD])
    client = Client()
    client.force_login(alice.user)
    response = client.post(f"/integrations/webhooks/{endpoint.pk}/test/")
    assert response.status_code == 302
    run_queued_tasks(
        task_queue, until=lambda: Delivery.objects.webhooks().filter(status="succeeded").exists()
    )
    [request] = receiver.requests()
    assert verified(secret, request)["type"] == "webhook.test"
    page = client.get(f"/integrations/webhooks/{endpoint.pk}/").content.decode()
    assert "webhook.test" in page and "Delivered" in page and secret not in page
    # A failing test is one attempt and never counts against the endpoint (sent a minute
    # later: one test event per endpoint a minute).
    receiver.status = 500
    Delivery.objects.webhooks().update(created_at=timezone.now() - timedelta(minutes=1))
    client.post(f"/integrations/webhooks/{endpoint.pk}/test/")
    run_queued_tasks(
        task_queue, until=lambda: Delivery.objects.webhooks().filter(status="failed").exists()
    )
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.last_failure_at is None
    # Someone else's endpoint is a 404.
    other = Client()
    other.force_login(Account.objects.create(user=_user("zed")).user)
    assert other.post(f"/integrations/webhooks/{endpoint.pk}/test/").status_code == 404


def _user(name: str) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(name)


def test_query_ends_make_one_event_each_failed_or_finished(
    alice: Account, receiver: Receiver, task_queue: TaskQueue
) -> None:
    from queries_app.events import record_end
    from queries_app.models import Query
    from queries_app.services import start_query
    from queries_app.signals import query_finished

    _, secret = create_endpoint(
        user=alice.user, url=receiver.url, events=["query.finished", "query.failed"]
    )
    failed = Query.objects.create(
        account=alice, kind="containers", status="failed", error="E-Modal said no."
    )
    for _ in range(2):  # recorded twice and its end told twice: sent once
        with transaction.atomic():
            record_end(failed.pk)
        query_finished.send_robust(sender=Query, query=failed)
    cancelled, _ = start_query(account=alice, kind="appointments")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {_token(alice)}")
    assert api.post(f"/api/v1/queries/{cancelled.pk}/cancel/").json()["status"] == "cancelled"
    run_queued_tasks(
        task_queue,
        until=lambda: Delivery.objects.webhooks().filter(status="succeeded").count() == 2,
    )
    payloads = {
        p["data"]["query_id"]: p for p in (verified(secret, r) for r in receiver.requests())
    }
    assert len(receiver.requests()) == 2
    assert payloads[failed.pk]["type"] == "query.failed"
    assert payloads[failed.pk]["data"]["error"] == "E-Modal said no."
    assert payloads[cancelled.pk]["type"] == "query.finished"
    assert payloads[cancelled.pk]["data"]["status"] == "cancelled"
    ids = {r.headers["webhook-id"] for r in receiver.requests()}
    assert ids == {f"query.failed:{failed.pk}", f"query.finished:{cancelled.pk}"}


def test_staff_hear_of_other_accounts_events_as_the_pages_let_them_see_them(
    alice: Account, receiver: Receiver, task_queue: TaskQueue
) -> None:
    from django.contrib.auth.models import Permission

    from notifications.channels.webhook import record_deliveries

    from ..conftest import make_account

    def staff_with(name: str, *codenames: str) -> Any:
        person = make_account(name).user
        person.is_staff = True
        person.save()
        person.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
        create_endpoint(user=person, url=receiver.url, events=[LFD, "query.failed"])
        return person

    queries_only = staff_with("quinn", "view_query")
    board_only = staff_with("bea", "view_container")
    both = staff_with("bo", "view_query", "view_container")
    failed = {**lfd_event(alice), "id": "evt_failed", "type": "query.failed"}
    record_deliveries(recorded([lfd_event(alice), failed]))
    heard = {
        (endpoint_user, event_type)
        for endpoint_user, event_type in Delivery.objects.webhooks().values_list(
            "endpoint__user__username", "event_type"
        )
    }
    assert heard == {
        (queries_only.username, "query.failed"),
        (board_only.username, LFD),
        (both.username, "query.failed"),
        (both.username, LFD),
    }
