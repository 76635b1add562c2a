"""Two availability runs against the simulator, with its data moved on between them: the board
follows the containers, the container page tells their history, each person gets one e-mail
(received by a real SMTP server on loopback) with exactly the events the simulator's changes
make, a second delivery sends nothing, and an SMTP outage delays an alert without losing it."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from containers_app import board
from containers_app.models import (
    Container,
    Event,
    Tariff,
    Watch,
)
from containers_app.verdict import NEEDS_PICKUP, pickup_verdict
from notifications import tasks
from notifications.channels.email import plan_alerts
from notifications.dispatcher import dispatch
from notifications.models import AlertPreference, Delivery, DeliveryEvent
from notifications.sending import send, sweep_deliveries
from queries_app import parsing
from queries_app.events import EventType
from queries_app.models import AppointmentCheck, ContainerInfo, Query, Terminal
from queries_app.services import start_query
from sessions_app.models import Account

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks, run_through_retries
from .clock import clock
from .smtp import SmtpServer, text_and_html

pytestmark = pytest.mark.django_db(transaction=True)

ALL_CONTAINER_EVENTS = [
    EventType.LFD_CHANGED,
    EventType.LFD_DUE,
    EventType.HOLDS_RELEASED,
    EventType.PREGATE_DONE,
    EventType.SLOT_APPEARED,
    EventType.CONTAINER_NEW,
    EventType.CONTAINER_GONE,
]
DEFAULT_EVENTS = {
    EventType.LFD_CHANGED,
    EventType.LFD_DUE,
    EventType.HOLDS_RELEASED,
    EventType.SLOT_APPEARED,
}


def run(account: Account, kind: str, queue: TaskQueue) -> Query:
    """A run to its end, then everything it set going (the board's update, the alerts)."""
    query = run_through_retries(start_query(account=account, kind=kind)[0], queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    assert queue.size() == 0
    return query


def sheet(sim: SimControl, username: str, generation: int) -> dict[str, dict[str, Any]]:
    rows = sim.containers(username, generation)["containers"]
    return {fields["container_number"]: fields for fields in map(parsing.container_fields, rows)}


def slot_counts(query: Query) -> dict[str, int]:
    return dict(
        AppointmentCheck.objects.filter(
            query=query,
            outcome__in=[AppointmentCheck.Outcome.AVAILABLE, AppointmentCheck.Outcome.NONE],
        ).values_list("container_number", "slot_count")
    )


def passed_pregate(query: Query) -> dict[str, bool | None]:
    return dict(
        ContainerInfo.objects.filter(query=query, success=True).values_list(
            "container_number", "passed_pregate"
        )
    )


def expected_events(
    sim: SimControl,
    username: str,
    changes: dict[str, list[str]],
    first: Query,
    second: Query,
    today: date,
) -> set[tuple[str, str]]:
    """The events the simulator's changes from generation 0 to 1 make, as (type, container):
    from its change list, with the slot and pregate facts the two runs read."""
    before, after = sheet(sim, username, 0), sheet(sim, username, 1)
    found: set[tuple[str, str]] = set()
    for number in changes["lfd"]:
        assert before[number]["last_free_day"] != after[number]["last_free_day"]
        found.add((EventType.LFD_CHANGED, number))
    found |= {(EventType.HOLDS_RELEASED, n) for n in changes["holds_released"]}
    found |= {(EventType.PREGATE_DONE, n) for n in changes["pregate_ticket_set"]}
    found |= {(EventType.CONTAINER_GONE, n) for n in changes["removed"]}
    found |= {(EventType.CONTAINER_NEW, n) for n in changes["added"]}
    # A slot appeared: the second run's check found slots where the first found none (or did
    # not check it). Every container whose slots the simulator opened and that the second run
    # checked is one of them.
    slots_before, slots_after = slot_counts(first), slot_counts(second)
    appeared = {n for n, count in slots_after.items() if count and not slots_before.get(n)}
    assert set(changes["slots_opened"]) & slots_after.keys() <= appeared
    found |= {(EventType.SLOT_APPEARED, n) for n in appeared}
    # Passed pregate: details read by both runs, not passed before, passed now.
    pregate_before, pregate_after = passed_pregate(first), passed_pregate(second)
    found |= {
        (EventType.PREGATE_DONE, n)
        for n, passed in pregate_after.items()
        if passed and pregate_before.get(n) is False
    }

    # Overdue or due within a week, still to pull: containers new, whose date moved, or that
    # came to need a pickup (the others' were recorded by the first run, once a day).
    def needs(fields: dict[str, Any] | None) -> bool:
        if fields is None:
            return False
        verdict = pickup_verdict(
            trade_type=fields["trade_type"], status=fields["status"], holds=fields["holds"]
        )
        return verdict.pickup in NEEDS_PICKUP

    for number, fields in after.items():
        lfd = fields["last_free_day"]
        if lfd is None or (lfd - today).days > 7 or not needs(fields):
            continue
        if number in {*changes["lfd"], *changes["added"]} or not needs(before.get(number)):
            found.add((EventType.LFD_DUE, number))
    return found


def due_within(account: Account, today: date, days: int) -> set[str]:
    """Containers still to pull (ready or on hold) that are overdue or due within `days`."""
    return set(
        Container.objects.filter(
            account=account,
            gone_at__isnull=True,
            pickup__in=["ready", "on_hold"],
            last_free_day__lte=today + timedelta(days=days),
        ).values_list("container_number", flat=True)
    )


def mailed(message: Any) -> str:
    text, html = text_and_html(message)
    return text + html


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_two_runs_make_the_board_its_history_and_one_email_per_person(
    sim: SimControl,
    task_queue: TaskQueue,
    smtp: SmtpServer,
    alice: Account,
    bob: Account,
    announced: list[list[dict[str, Any]]],
) -> None:
    for account in (alice, bob):
        account.user.email = f"{account.user.username}@example.com"
        account.user.save()
    # Bob wants every container event, within a week for due dates, but only for the
    # containers he watches; Alice keeps the defaults.
    AlertPreference.objects.create(
        user=bob.user,
        events=[e.value for e in ALL_CONTAINER_EVENTS],
        scope=AlertPreference.Scope.WATCHED,
        lfd_due_days=7,
    )
    today = timezone.localdate()

    # The first runs: the board is made; only due dates are news.
    first = {account: run(account, "availability", task_queue) for account in (alice, bob)}
    for account in first:
        listed = sheet(sim, account.emodal_username, 0)
        on_board = Container.objects.filter(account=account)
        assert set(on_board.values_list("container_number", flat=True)) == set(listed)
        # Each container's verdict is the rule's, from the sheet it was read from.
        for number, pickup in on_board.values_list("container_number", "pickup"):
            fields = listed[number]
            assert (
                pickup
                == pickup_verdict(
                    trade_type=fields["trade_type"], status=fields["status"], holds=fields["holds"]
                ).pickup
            ), number
        board_events = Event.objects.filter(account=account, type__startswith="container.")
        assert not board_events.exclude(type=EventType.LFD_DUE).exists()
        assert set(board_events.values_list("container_number", flat=True)) == due_within(
            account, today, 7
        )
    alice_due = due_within(alice, today, 2)
    first_mails = smtp.inbox.to("alice@example.com")
    assert len(first_mails) == (1 if alice_due else 0)
    if alice_due:
        assert all(number in mailed(first_mails[0]) for number in alice_due)
    assert smtp.inbox.to("bob@example.com") == []  # he watches nothing yet

    # What the simulator will change, then the change.
    changes = {a: sim.changes(a.emodal_username) for a in (alice, bob)}
    bob_changes = changes[bob]
    watched = [bob_changes["lfd"][0], bob_changes["removed"][0]]
    bob_client = logged_in(bob.user)
    for number in watched:
        container = Container.objects.get(account=bob, container_number=number)
        response = bob_client.post(reverse("containers:watch", args=[container.pk]), {"watch": "1"})
        assert response.status_code == 302
    assert Watch.objects.filter(user=bob.user).count() == 2
    for account in (alice, bob):
        sim.advance(account.emodal_username)
    inbox_before = len(smtp.inbox.messages)
    announced.clear()

    second = {account: run(account, "availability", task_queue) for account in (alice, bob)}

    # The events: exactly what the simulator changed, once each, announced once.
    expected = {
        account: expected_events(
            sim, account.emodal_username, changes[account], first[account], second[account], today
        )
        for account in (alice, bob)
    }
    for account in (alice, bob):
        recorded = set(
            Event.objects.filter(query=second[account], type__startswith="container.").values_list(
                "type", "container_number"
            )
        )
        assert recorded == expected[account], account
    announced_ids = [event["id"] for batch in announced for event in batch]
    assert sorted(announced_ids) == sorted(
        Event.objects.filter(query__in=second.values()).values_list("key", flat=True)
    )
    assert len(announced_ids) == len(set(announced_ids))  # each dispatched once

    # One e-mail per person, with exactly their events.
    new_mail = smtp.inbox.messages[inbox_before:]
    assert sorted(rcpt[0] for rcpt, _ in new_mail) == ["alice@example.com", "bob@example.com"]
    want = {
        alice: {
            (kind, n)
            for kind, n in expected[alice]
            if kind in DEFAULT_EVENTS
            and (kind != EventType.LFD_DUE or n in due_within(alice, today, 2))
        },
        bob: {(kind, n) for kind, n in expected[bob] if n in watched},
    }
    assert want[alice] and (EventType.LFD_CHANGED, watched[0]) in want[bob]
    for account in (alice, bob):
        alert = Delivery.objects.emails().get(user=account.user, query=second[account])
        assert alert.status == Delivery.Status.SUCCEEDED and alert.attempts == 1
        got = set(
            DeliveryEvent.objects.filter(delivery=alert).values_list(
                "event__type", "event__container_number"
            )
        )
        assert got == want[account], account
        [message] = [m for rcpt, m in new_mail if account.user.email in rcpt]
        assert message["Subject"] == alert.subject
        assert message["Message-ID"] == f"<alert-{alert.pk}@portal.example.com>"
        body = mailed(message)
        for _, number in got:
            assert number in body
        for _, number in expected[account] - got:
            if number not in {n for _, n in got}:
                assert number not in body
        # Nothing secret in an e-mail.
        for secret in (f"{account.user.username}-password", f"{account.user.username}-captcha-key"):
            assert secret not in body
        assert "https://portal.example.com/containers/" in body

    # The board follows the containers.
    after = sheet(sim, alice.emodal_username, 1)
    present = Container.objects.filter(account=alice, gone_at__isnull=True)
    assert set(present.values_list("container_number", flat=True)) == set(after)
    [gone_number] = changes[alice]["removed"]
    gone = Container.objects.get(account=alice, container_number=gone_number)
    assert gone.gone_at is not None and gone.last_change["change"] == "gone"
    [new_number] = changes[alice]["added"]
    assert Container.objects.get(
        account=alice, container_number=new_number
    ).first_seen_query_id == (second[alice].pk)
    for number in changes[alice]["lfd"]:
        row = Container.objects.get(account=alice, container_number=number)
        assert row.last_free_day == after[number]["last_free_day"]
        assert row.sheet_query_id == second[alice].pk
        assert row.last_change_query_id == second[alice].pk
    for number in changes[alice]["holds_released"]:
        assert Container.objects.get(account=alice, container_number=number).holds is False
    for number in changes[alice]["status"]:
        assert (
            Container.objects.get(account=alice, container_number=number).status
            == after[number]["status"]
        )

    # The container pages tell the history; another person's container is a 404.
    alice_client = logged_in(alice.user)
    lfd_number = changes[alice]["lfd"][0]
    page = alice_client.get(reverse("containers:detail", args=[lfd_number]))
    assert page.status_code == 200
    html = page.content.decode()
    moved = after[lfd_number]["last_free_day"].strftime("%a %Y-%m-%d")
    assert f"to {moved}" in html and "last free day moved from" in html
    assert f"run #{second[alice].pk}" in html
    gone_page = alice_client.get(reverse("containers:detail", args=[gone_number])).content.decode()
    assert "gone from the list" in gone_page
    assert alice_client.get(reverse("containers:detail", args=[watched[0]])).status_code == 404

    # A second delivery of the same events sends nothing: the board's task run again for the
    # same run, the same events planned again, the same alert sent again.
    sent_so_far = len(smtp.inbox.messages)
    alerts_so_far = Delivery.objects.count()
    announced.clear()
    again = board.update_board(second[alice].pk)
    assert again.events == [] and dispatch() == 0
    assert plan_alerts(list(Event.objects.filter(query=second[alice])), query=None) == []
    alert = Delivery.objects.emails().get(user=alice.user, query=second[alice])
    assert send(alert.pk) == "not due, taken or finished"
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    assert len(smtp.inbox.messages) == sent_so_far
    assert Delivery.objects.count() == alerts_so_far
    assert announced == []


def test_an_smtp_outage_delays_an_alert_with_back_off_but_does_not_lose_it(
    sim: SimControl,
    task_queue: TaskQueue,
    smtp: SmtpServer,
    alice: Account,
    settings: Any,
) -> None:
    settings.ALERT_RETRY_BASE_SECONDS = 60
    alice.user.email = "alice@example.com"
    alice.user.save()
    AlertPreference.objects.create(
        user=alice.user, events=[EventType.CONTAINER_NEW, EventType.CONTAINER_GONE]
    )
    run(alice, "containers", task_queue)
    sim.advance(alice.emodal_username)
    smtp.stop()  # the mail server goes away

    started = timezone.now()
    second = run(alice, "containers", task_queue)
    alert = Delivery.objects.emails().get(query=second)
    assert (alert.status, alert.attempts) == (Delivery.Status.PENDING, 1)  # to retry
    assert "ConnectionRefusedError" in alert.error
    assert 48 <= (alert.next_attempt_at - started).total_seconds() <= 75
    assert smtp.inbox.messages == []

    # Not due yet: the sweep leaves it. Due, with the server still down: a second try, twice
    # the back-off.
    swept = sweep_deliveries(now=alert.next_attempt_at - timedelta(seconds=1))
    assert swept["enqueued"] == 0
    retry_at = alert.next_attempt_at + timedelta(seconds=1)
    with clock(retry_at):
        assert sweep_deliveries()["enqueued"] == 1
        run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == (Delivery.Status.PENDING, 2)
    assert 115 <= (alert.next_attempt_at - retry_at).total_seconds() <= 125

    # The server is back: the next sweep delivers it, once.
    smtp.start()
    with clock(alert.next_attempt_at + timedelta(seconds=1)):
        tasks.sweep()
        run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
        assert sweep_deliveries() == {"enqueued": 0, "stuck": 0, "deliveries_deleted": 0}
    alert.refresh_from_db()
    assert alert.status == Delivery.Status.SUCCEEDED and alert.attempts == 3 and alert.error == ""
    [message] = smtp.inbox.wait_for(1)
    body = mailed(message)
    new = Event.objects.get(query=second, type=EventType.CONTAINER_NEW)
    gone = Event.objects.get(query=second, type=EventType.CONTAINER_GONE)
    assert new.container_number in body and gone.container_number in body


def test_a_refused_recipient_is_not_retried_and_says_why(
    alice: Account, smtp: SmtpServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smtplib

    event = Event.objects.create(
        key="query.failed:x",
        type=EventType.QUERY_FAILED,
        account=alice,
        data={"kind": "containers", "error": "E-Modal gave no containers sheet"},
        occurred_at=timezone.now(),
    )
    alice.user.email = "alice@example.com"
    alice.user.save()
    AlertPreference.objects.create(user=alice.user, events=[EventType.QUERY_FAILED])
    [alert] = plan_alerts([event], query=None)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise smtplib.SMTPRecipientsRefused({"alice@example.com": (550, b"No such user")})

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)
    assert send(alert.pk) == "attempt 1: failed (the mail server refused the recipient)"
    alert.refresh_from_db()
    assert alert.status == Delivery.Status.FAILED and alert.next_attempt_at is None
    assert "refused the recipient" in alert.error


def test_a_sender_that_died_mid_send_is_not_sent_again(alice: Account, db: Any) -> None:
    alice.user.email = "alice@example.com"
    alice.user.save()
    alert = Delivery.objects.create(
        channel=Delivery.Channel.EMAIL,
        user=alice.user,
        recipient="alice@example.com",
        subject="x",
        next_attempt_at=timezone.now() - timedelta(minutes=5),
        claim_token="a-sender-that-died",
        claim_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert send(alert.pk) == "not due, taken or finished"  # nor taken over
    assert sweep_deliveries()["stuck"] == 1
    alert.refresh_from_db()
    assert alert.status == Delivery.Status.FAILED and "in case it went out" in alert.error
    assert send(alert.pk) == "not due, taken or finished"


def test_a_failed_query_and_rejected_credentials_alert_the_account_once(
    sim: SimControl,
    task_queue: TaskQueue,
    smtp: SmtpServer,
    announced: list[list[dict[str, Any]]],
) -> None:
    from ..conftest import make_account

    rita = make_account("rita", password="wrong-password")
    rita.user.email = "rita@example.com"
    rita.user.save()
    AlertPreference.objects.create(
        user=rita.user, events=[EventType.QUERY_FAILED, EventType.CREDENTIALS_REJECTED]
    )
    query = run_through_retries(start_query(account=rita, kind="containers")[0], task_queue)
    assert query.status == Query.Status.FAILED
    rita.refresh_from_db()
    assert rita.credential_state == Account.CredentialState.REJECTED
    kinds = {e["type"] for batch in announced for e in batch}
    assert kinds == {EventType.QUERY_FAILED, EventType.CREDENTIALS_REJECTED}
    [message] = smtp.inbox.wait_for(1)
    body = mailed(message)
    assert "rejected" in body and "wrong-password" not in body
    # Another failed query: its own failure is news, the same rejection is not.
    again = run_through_retries(start_query(account=rita, kind="appointments")[0], task_queue)
    assert again.status == Query.Status.FAILED
    second = Delivery.objects.emails().get(query=again)
    assert list(second.links.values_list("event__type", flat=True)) == [EventType.QUERY_FAILED]


def test_the_days_due_dates_are_alerted_once_a_day(
    alice: Account, smtp: SmtpServer, task_queue: TaskQueue
) -> None:
    alice.user.email = "alice@example.com"
    alice.user.save()
    today = timezone.localdate()
    terminal, _ = Terminal.objects.get_or_create(code="TTI")
    tariff = Tariff.objects.create(terminal=terminal, effective_from=today - timedelta(days=60))
    tariff.tiers.create(from_day=1, daily_rate=Decimal("150.00"))
    for number, days, pickup in (
        ("MSCU0000001", 0, "ready"),
        ("MSCU0000002", 2, "on_hold"),
        ("MSCU0000003", 5, "ready"),
        ("MSCU0000005", -3, "ready"),  # overdue, still in the yard: costing money
        ("MSCU0000006", 0, "picked_up"),  # gone out: its last free day no longer matters
        ("MSCU0000007", -1, "export"),
        ("MSCU0000008", 1, "not_arrived"),
        ("MSCU0000009", 1, "unknown"),
    ):
        Container.objects.create(
            account=alice,
            container_number=number,
            last_free_day=today + timedelta(days=days),
            pickup=pickup,
            terminal=terminal,
            terminal_code="TTI",
        )
    Container.objects.create(
        account=alice,
        container_number="MSCU0000004",
        last_free_day=today,
        pickup="ready",
        gone_at=timezone.now(),
    )
    done = board.record_due_dates(today=today)
    assert {e.container_number for e in done.events} == {
        "MSCU0000001",
        "MSCU0000002",
        "MSCU0000003",
        "MSCU0000005",
    }
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    [message] = smtp.inbox.wait_for(1)
    body = mailed(message)
    # The default: within 2 days, and the overdue ones first, with what they cost.
    assert "MSCU0000001" in body and "MSCU0000002" in body and "MSCU0000003" not in body
    assert "today" in body
    text = text_and_html(message)[0]
    assert message["Subject"].startswith("E-Modal: 1 overdue; 2 last free day within a few days")
    assert text.index("MSCU0000005") < text.index("MSCU0000001") < text.index("MSCU0000002")
    assert "Overdue, still to pick up: $450.00 so far" in text
    assert "overdue by 3 days · ready to pick up at TTI · $450.00 so far, +$150.00 a day" in text
    assert "on hold at TTI" in text
    for calm in ("MSCU0000006", "MSCU0000007", "MSCU0000008", "MSCU0000009"):
        assert calm not in body
    # Again the same day: nothing. The next day: again.
    assert board.record_due_dates(today=today).events == []
    tomorrow = board.record_due_dates(today=today + timedelta(days=1))
    assert {e.container_number for e in tomorrow.events} == {
        "MSCU0000001",
        "MSCU0000002",
        "MSCU0000003",
        "MSCU0000005",
    }
