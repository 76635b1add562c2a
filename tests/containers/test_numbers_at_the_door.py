"""Container numbers and upstream fields are checked where they enter. A sheet row whose
`Container #` is not a container number (`EVIL/../../admin/x`, markup, `..\\ZZZ`) is left out
and told on the run (escaped), never stored, linked or sent; the run's e-mail still goes with
its good events, and the board and container pages work. A field of the wrong type in an
upstream answer fails that one item, saying so, and is never stored as text or a flag."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from containers_app.models import Container, Event
from notifications.channels.email import plan_alerts
from notifications.models import AlertPreference, Delivery
from notifications.sending import send
from queries_app import parsing
from queries_app.events import EventType
from queries_app.kinds.bulk_info import infos_from_bulk
from queries_app.kinds.checking import answer_problems
from queries_app.kinds.lookups import booking_outcome, timeline_outcome
from queries_app.models import ContainerInfo, ContainerRow, Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries
from .smtp import SmtpServer, text_and_html

BAD_NUMBERS = ["EVIL/../../admin/x", "NEWU<i>2</i>", "..\\ZZZ"]


def run(account: Account, kind: str, queue: TaskQueue) -> Query:
    query = run_through_retries(start_query(account=account, kind=kind)[0], queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    return query


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db(transaction=True)
def test_bad_container_numbers_in_a_sheet_are_left_out_and_the_runs_email_still_goes(
    sim: SimControl, task_queue: TaskQueue, smtp: SmtpServer, alice: Account
) -> None:
    alice.user.email = "alice@example.com"
    alice.user.save()
    AlertPreference.objects.create(
        user=alice.user,
        events=[EventType.LFD_CHANGED, EventType.CONTAINER_NEW, EventType.CONTAINER_GONE],
    )
    username = str(alice.emodal_username)
    run(alice, "containers", task_queue)  # the board's first run: nothing is news
    good = {row["Container #"] for row in sim.containers(username)["containers"]}
    sim.add_rows(username, BAD_NUMBERS)
    sim.advance(username)
    changes = sim.changes(username, generation=0)
    inbox_before = len(smtp.inbox.messages)

    second = run(alice, "containers", task_queue)

    # The sheet held them: the run stored every good row and none of the bad ones.
    served = [row["Container #"] for row in sim.containers(username)["containers"]]
    assert set(BAD_NUMBERS) <= set(served)
    stored = set(ContainerRow.objects.filter(query=second).values_list("container_number", flat=1))
    assert stored == set(served) - set(BAD_NUMBERS)
    on_board = set(Container.objects.filter(account=alice).values_list("container_number", flat=1))
    assert on_board == good | set(changes["added"])
    assert all(parsing.is_container_number(number) for number in on_board)
    # Said on the run, each as written.
    assert "The containers sheet had 3 rows whose container number is not one" in second.notes
    for number in BAD_NUMBERS:
        assert f"“{number}”" in second.notes

    # The run's one e-mail went, with its good events and links only to container pages.
    events = Event.objects.filter(query=second)
    assert events.filter(type=EventType.LFD_CHANGED).exists()
    alert = Delivery.objects.emails().get(user=alice.user, query=second)
    assert alert.status == Delivery.Status.SUCCEEDED, alert.error
    [(_, message)] = smtp.inbox.messages[inbox_before:]
    text, html = text_and_html(message)
    told = Event.objects.filter(delivery_links__delivery=alert)
    assert told.filter(type=EventType.LFD_CHANGED).exists()
    for event in told:
        assert f"https://portal.example.com/containers/{event.container_number}/" in text
    for body in (text, html):
        assert "EVIL" not in body and "ZZZ" not in body and "NEWU" not in body

    # The pages: the board links its rows to their own pages, the run's page says what was
    # left out, escaped.
    client = logged_in(alice.user)
    board = client.get(reverse("containers:board"), {"pickup": ""})
    assert board.status_code == 200
    page = board.content.decode()
    assert "EVIL" not in page and "/admin/" not in page.split('<section id="schedules"')[0]
    number = sorted(on_board)[0]
    assert client.get(reverse("containers:detail", args=[number])).status_code == 200
    detail = client.get(reverse("queries:detail", args=[second.pk])).content.decode()
    assert "“NEWU&lt;i&gt;2&lt;/i&gt;”" in detail and "<i>2</i>" not in detail
    assert "“EVIL/../../admin/x”" in detail


@pytest.mark.django_db(transaction=True)
def test_a_bad_number_recorded_before_the_check_loses_its_link_not_the_email_or_the_page(
    smtp: SmtpServer, alice: Account, task_queue: TaskQueue
) -> None:
    """Rows stored before numbers were checked at the door: each link is built on its own."""
    alice.user.email = "alice@example.com"
    alice.user.save()
    AlertPreference.objects.create(user=alice.user, events=[EventType.LFD_CHANGED])
    now = timezone.now()
    query = Query.objects.create(
        account=alice, kind="containers", status=Query.Status.SUCCEEDED, finished_at=now
    )
    events = []
    for number in ("MSCU1234565", "EVIL/../../ADMIN/X"):
        container = Container.objects.create(
            account=alice,
            container_number=number,
            first_seen_at=now,
            updated_at=now,
            sheet_query=query,
            sheet_seen_at=now,
            last_free_day=timezone.localdate() + timedelta(days=3),
        )
        events.append(
            Event.objects.create(
                key=f"test:{number}",
                type=EventType.LFD_CHANGED,
                account=alice,
                container=container,
                container_number=number,
                query=query,
                data={"before": None, "after": container.last_free_day.isoformat()},
                occurred_at=now,
            )
        )
    [alert] = plan_alerts(events, query=query)
    assert send(alert.pk) == "attempt 1: delivered"
    [(_, message)] = smtp.inbox.messages
    text, html = text_and_html(message)
    assert "https://portal.example.com/containers/MSCU1234565/" in text
    assert "EVIL/../../ADMIN/X" in text  # named, but with no link
    assert 'href="https://portal.example.com/containers/EVIL' not in html
    assert "/admin/" not in text.replace("EVIL/../../ADMIN/X", "")

    board = logged_in(alice.user).get(reverse("containers:board"), {"pickup": ""})
    assert board.status_code == 200
    page = board.content.decode()
    assert 'href="/containers/MSCU1234565/"' in page
    assert "EVIL/../../ADMIN/X" in page and 'href="/containers/EVIL' not in page


# -- wrong-typed upstream fields ------------------------------------------------------------------


def bulk(imports: list[Any], exports: list[Any] = ()) -> dict[str, Any]:
    return {"success": True, "results": {"import_results": imports, "export_results": exports}}


@pytest.mark.django_db
def test_a_bulk_entry_of_the_wrong_types_fails_alone_and_nothing_of_it_is_stored_as_text(
    alice: Account,
) -> None:
    query = Query.objects.create(account=alice, kind="bulk_info")
    good = {
        "container_id": "MSCU1234565",
        "success": True,
        "pregate_status": True,
        "pregate_details": None,
        "timeline": [{"milestone": "Departed Terminal", "date": "N/A", "status": "pending"}],
        "milestone_count": 1,
    }
    infos, note = infos_from_bulk(
        query,
        bulk(
            [
                good,
                # `bool("false")` is True: a flag written as text must not become one.
                {**good, "container_id": "TCLU3648865", "success": "false"},
                {**good, "container_id": "MSDU4431979", "pregate_status": "true"},
                {**good, "container_id": "CAIU7181746", "timeline": [["Departed", "N/A"]]},
                {**good, "container_id": "../../admin"},
                "not an entry",
            ],
            [{"container_id": "MSCU5165756", "success": True, "booking_number": 12345}],
        ),
    )
    by_number = {info.container_number: info for info in infos}
    assert set(by_number) == {
        "MSCU1234565",
        "TCLU3648865",
        "MSDU4431979",
        "CAIU7181746",
        "MSCU5165756",
    }
    ok = by_number.pop("MSCU1234565")
    assert (ok.success, ok.passed_pregate, ok.milestones) == (True, True, good["timeline"])
    for info in by_number.values():
        assert not info.success and info.error.startswith("E-Modal's answer could not be read")
        assert info.passed_pregate is None and info.booking_number == "" and not info.milestones
    assert "`success` is text, not true/false" in by_number["TCLU3648865"].error
    assert "`booking_number` is a number, not text or null" in by_number["MSCU5165756"].error
    assert "had 2 entries whose container number is not one" in note
    assert "“../../admin”" in note and "“not an entry”" in note
    assert "could not be read" in note and "TCLU3648865" in note


@pytest.mark.django_db
def test_a_timeline_or_booking_answer_of_the_wrong_types_is_a_failed_item_with_a_note(
    alice: Account,
) -> None:
    query = Query.objects.create(account=alice, kind="timeline")
    outcome = timeline_outcome(query, "MSCU1234565", {"passed_pregate": "yes", "timeline": []})
    outcome.write()
    info = ContainerInfo.objects.get(query=query)
    assert (info.success, info.passed_pregate) == (False, None)
    assert "`passed_pregate` is text, not true/false or null" in info.error
    assert outcome.note.startswith("Container MSCU1234565: E-Modal's answer could not be read")

    good = timeline_outcome(query, "MSCU1234565", {"passed_pregate": False, "timeline": None})
    good.write()
    assert ContainerInfo.objects.get(query=query).passed_pregate is False and not good.note

    query = Query.objects.create(account=alice, kind="booking_number")
    outcome = booking_outcome(query, "MSCU1234565", {"booking_number": ["BK1"]})
    outcome.write()
    info = ContainerInfo.objects.get(query=query)
    assert (
        not info.success
        and info.booking_number == ""
        and "`booking_number` is a list" in (info.error)
    )


def test_a_check_answer_of_the_wrong_types_is_not_read() -> None:
    assert answer_problems({"available_times": ["Tuesday 10/07/2025 09:00 - 10:00"]}) == []
    assert answer_problems({"calendar_found": "false"}) == [
        "`calendar_found` is text, not true/false or null"
    ]
    assert answer_problems({"available_times": [1, "x"]}) == [
        "an `available_times` entry is not text"
    ]
    assert answer_problems({"available_times": "No Appointments Available"}) == [
        "`available_times` is text, not a list or null"
    ]
