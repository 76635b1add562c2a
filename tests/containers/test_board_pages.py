"""The board's pages: who sees what, filters (bad input is a form error), stars as POSTs with
CSRF, exports, the strict Content-Security-Policy, a bounded number of SQL queries, the alert
settings page and the schedules form."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from containers_app.models import (
    Container,
    Tariff,
    Watch,
)
from history.models import HistoryEntry
from notifications.models import AlertPreference, Delivery
from queries_app.events import EventType
from queries_app.models import Query, RecurringRun, Terminal
from sessions_app.models import Account

from ..portal.test_http_surface import STRICT_POLICY, inline_code, policy

pytestmark = pytest.mark.django_db

BOARD = reverse("containers:board")


def logged_in(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def box(account: Account, number: str, **fields: Any) -> Container:
    """A container on the board; one still to pull unless `pickup` says otherwise."""
    fields.setdefault("pickup", "ready")
    return Container.objects.create(account=account, container_number=number, **fields)


def shown_numbers(response: Any) -> list[str]:
    """The container numbers of the board's rows, in order."""
    html = response.content.decode()
    body = html.split('id="board-table"', 1)[1].split("</tbody>", 1)[0]
    return [
        chunk.split(">", 1)[1].split("<", 1)[0]
        for chunk in body.split('<th scope="row"><a href="')[1:]
    ]


@pytest.fixture
def viewer(django_user_model: Any) -> Any:
    """Staff with the permission to see every account's containers (and nothing else)."""
    user = django_user_model.objects.create_user("vera", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_container"))
    return user


def test_a_user_lands_on_the_board_after_logging_in(alice: Account, client: Client) -> None:
    alice.user.set_password("board password 1")
    alice.user.save()
    response = client.post(reverse("login"), {"username": "alice", "password": "board password 1"})
    assert response.status_code == 302 and response["Location"] == BOARD
    assert client.get("/")["Location"] == BOARD


def test_people_see_their_own_accounts_containers_and_staff_with_the_permission_all(
    alice: Account, bob: Account, viewer: Any, django_user_model: Any
) -> None:
    mine = box(alice, "MSCU1000001")
    theirs = box(bob, "MSCU2000002")
    assert shown_numbers(logged_in(alice.user).get(BOARD)) == ["MSCU1000001"]
    assert shown_numbers(logged_in(bob.user).get(BOARD)) == ["MSCU2000002"]
    # Someone else's container, its page or its star: as if it did not exist.
    client = logged_in(alice.user)
    assert (
        client.get(reverse("containers:detail", args=[theirs.container_number])).status_code == 404
    )
    assert client.post(reverse("containers:watch", args=[theirs.pk])).status_code == 404
    assert not Watch.objects.exists()
    # Staff with the permission: every account, with an account filter.
    staff = logged_in(viewer)
    assert shown_numbers(staff.get(BOARD)) == ["MSCU1000001", "MSCU2000002"]
    assert shown_numbers(staff.get(BOARD, {"account": bob.pk})) == ["MSCU2000002"]
    page = staff.get(reverse("containers:detail", args=[mine.container_number]))
    assert page.status_code == 200
    # Staff without it are people like any other (no account: nothing to show).
    plain = django_user_model.objects.create_user("stan", is_staff=True)
    response = logged_in(plain).get(BOARD)
    assert (
        shown_numbers(response) == [] if 'id="board-table"' in response.content.decode() else True
    )
    assert "no E-Modal account" in response.content.decode()
    assert (
        logged_in(plain).get(reverse("containers:detail", args=["MSCU1000001"])).status_code == 404
    )


def test_the_board_sorts_by_days_left_and_due_dates_stand_out(alice: Account) -> None:
    today = timezone.localdate()
    box(alice, "MSCU0000005", last_free_day=today + timedelta(days=5))
    box(alice, "MSCU0000000", last_free_day=today)
    box(alice, "MSCU0000009")
    box(alice, "MSCU0000001", last_free_day=today + timedelta(days=1))
    box(alice, "MSCU0000003", last_free_day=today - timedelta(days=3))
    response = logged_in(alice.user).get(BOARD)
    assert shown_numbers(response) == [
        "MSCU0000003",
        "MSCU0000000",
        "MSCU0000001",
        "MSCU0000005",
        "MSCU0000009",
    ]
    html = response.content.decode()
    assert '<span class="due due-overdue">overdue by 3 days</span>' in html
    assert '<span class="due due-today">today</span>' in html
    assert '<span class="due due-tomorrow">tomorrow</span>' in html
    assert '<span class="days">in 5 days</span>' in html
    descending = logged_in(alice.user).get(BOARD, {"sort": "-lfd"})
    assert shown_numbers(descending)[:2] == ["MSCU0000005", "MSCU0000001"]


def test_each_filter_keeps_what_it_says(alice: Account) -> None:
    today = timezone.localdate()
    now = timezone.now()
    tti, _ = Terminal.objects.update_or_create(
        code="TTI", defaults={"name": "Total Terminals Intl LLC"}
    )
    box(alice, "MSCU0000001", last_free_day=today - timedelta(days=1), holds=True)
    box(alice, "MSCU0000002", last_free_day=today + timedelta(days=2), slot_count=3)
    box(
        alice,
        "MSCU0000003",
        last_free_day=today + timedelta(days=3),
        terminal_code="TTI",
        terminal=tti,
    )
    box(alice, "MSCU0000004", last_change_at=now, last_change={"change": "new", "fields": {}})
    box(alice, "MSCU0000005", last_change_at=now - timedelta(days=3))
    box(alice, "MSCU0000006", gone_at=now)
    watched = box(alice, "MSCU0000007")
    Watch.objects.create(user=alice.user, container=watched)
    client = logged_in(alice.user)

    def numbers(**params: Any) -> set[str]:
        response = client.get(BOARD, params)
        assert response.status_code == 200
        return set(shown_numbers(response))

    assert numbers(due_within=2) == {"MSCU0000001", "MSCU0000002"}
    assert numbers(holds="yes") == {"MSCU0000001"}
    assert numbers(slot="yes") == {"MSCU0000002"}
    assert numbers(terminal="TTI") == {"MSCU0000003"}
    assert numbers(changed_since=today.isoformat()) == {"MSCU0000004"}
    assert numbers(q="0000005") == {"MSCU0000005"}
    assert numbers(watched="yes") == {"MSCU0000007"}
    assert numbers(show="gone") == {"MSCU0000006"}
    assert "MSCU0000006" not in numbers()
    assert "MSCU0000006" in numbers(show="all")
    assert "Total Terminals Intl LLC (TTI)" in client.get(BOARD).content.decode()


@pytest.mark.parametrize(
    "params",
    [
        {"due_within": "soon"},
        {"due_within": "-4"},
        {"changed_since": "yesterday"},
        {"terminal": "<script>"},
        {"account": "99"},
        {"holds": "maybe", "sort": "password"},
        {"page": "9999"},
        {"q": "x" * 300},
    ],
    ids=[
        "words",
        "negative",
        "bad-date",
        "unknown-terminal",
        "account",
        "bad-choice",
        "page",
        "long",
    ],
)
def test_bad_filter_input_is_a_form_error_never_a_500(
    alice: Account, params: dict[str, str]
) -> None:
    box(alice, "MSCU0000001")
    response = logged_in(alice.user).get(BOARD, params)
    assert response.status_code == 200
    form = response.context["form"]
    if set(params) - {"page", "sort"}:
        assert form.errors or "account" in params  # (the account filter is staff-only)
    assert "<script>" not in response.content.decode().split("<main", 1)[1]


def test_a_star_is_a_post_with_csrf(alice: Account) -> None:
    container = box(alice, "MSCU0000001")
    url = reverse("containers:watch", args=[container.pk])
    strict = logged_in(alice.user, enforce_csrf_checks=True)
    assert strict.post(url, {"watch": "1"}).status_code == 403
    assert logged_in(alice.user).get(url).status_code == 405
    client = logged_in(alice.user)
    response = client.post(url, {"watch": "1", "next": "https://evil.example.com/"})
    assert response["Location"] == BOARD  # never off the portal
    assert Watch.objects.filter(user=alice.user, container=container).exists()
    assert "★" in client.get(BOARD).content.decode()
    client.post(url, {"watch": "0", "next": f"{BOARD}?watched=yes"})
    assert not Watch.objects.exists()


def test_the_export_has_the_rows_the_board_shows_with_formulas_defused(alice: Account) -> None:
    today = timezone.localdate()
    box(alice, "MSCU0000001", status='=HYPERLINK("http://x")', last_free_day=today)
    box(alice, "MSCU0000002", status="IN YARD", last_free_day=today + timedelta(days=9))
    client = logged_in(alice.user)
    response = client.get(reverse("containers:export_csv"), {"due_within": 2})
    assert response["Content-Disposition"].startswith('attachment; filename="containers-')
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, body = rows[0], rows[1:]
    assert [row[0] for row in body] == ["MSCU0000001"]
    assert body[0][header.index("Status")] == '\'=HYPERLINK("http://x")'
    assert body[0][header.index("Days left")] == "0"
    xlsx = client.get(reverse("containers:export_xlsx"))
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = list(sheet.values)
    assert [row[0] for row in values[1:]] == ["MSCU0000001", "MSCU0000002"]
    assert values[1][values[0].index("Status")].startswith("'=")


def test_the_boards_pages_carry_the_strict_policy_and_no_inline_code(alice: Account) -> None:
    container = box(alice, "MSCU0000001", last_change={"change": "new", "fields": {}})
    HistoryEntry.objects.create(
        container=container,
        observed_at=timezone.now(),
        change="changed",
        fields={"holds": [True, False]},
    )
    client = logged_in(alice.user)
    for url in (
        BOARD,
        reverse("containers:detail", args=["MSCU0000001"]),
        reverse("notifications:alerts"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert policy(response) == STRICT_POLICY, url
        assert set(inline_code(response).counts().values()) == {0}, url
    assert (
        "holds released"
        in client.get(reverse("containers:detail", args=["MSCU0000001"])).content.decode()
    )


def test_the_board_reads_a_bounded_number_of_sql_queries(
    alice: Account, viewer: Any, django_assert_max_num_queries: Any
) -> None:
    today = timezone.localdate()
    query = Query.objects.create(account=alice, kind="containers", status=Query.Status.SUCCEEDED)
    Terminal.objects.update_or_create(code="TTI", defaults={"name": "Total Terminals Intl LLC"})
    terminal = Terminal.objects.get(code="TTI")
    tariff = Tariff.objects.create(terminal=terminal, effective_from=today - timedelta(days=30))
    tariff.tiers.create(from_day=1, daily_rate=Decimal("100.00"))
    rows = Container.objects.bulk_create(
        Container(
            account=alice,
            container_number=f"MSCU{n:07d}",
            pickup="ready" if n % 5 else "picked_up",
            last_free_day=today + timedelta(days=n % 12 - 3),
            terminal=terminal,
            terminal_code="TTI",
            sheet_query=query,
            sheet_seen_at=timezone.now(),
            slot_count=n % 3,
            check_query=query,
            check_seen_at=timezone.now(),
            last_change={"change": "changed", "fields": {"holds": [True, False]}},
            last_change_at=timezone.now(),
        )
        for n in range(350)
    )
    Watch.objects.bulk_create(Watch(user=alice.user, container=row) for row in rows[::7])
    for user, params in (
        (alice.user, {}),
        (alice.user, {"due_within": 2, "sort": "slot"}),
        (alice.user, {"sort": "money"}),
        (viewer, {}),
    ):
        client = logged_in(user)
        client.get(BOARD)  # the session and the user, loaded once
        # Session, user, permissions (2), terminals, tariffs and their tiers, count, rows,
        # summary, money at risk, accounts (2, staff only), stopped accounts (staff only),
        # a run going, recurring runs: none per row.
        with django_assert_max_num_queries(16):
            response = client.get(BOARD, params)
        assert response.status_code == 200
        assert len(shown_numbers(response)) == 100 or params


def test_alert_settings_start_from_the_defaults_and_save(alice: Account) -> None:
    alice.user.email = "alice@example.com"
    alice.user.save()
    client = logged_in(alice.user)
    assert reverse("notifications:alerts") == "/containers/alerts/"  # where it always was
    page = client.get(reverse("notifications:alerts"))
    form = page.context["form"]
    assert set(form["events"].value()) == {
        EventType.LFD_CHANGED,
        EventType.LFD_DUE,
        EventType.HOLDS_RELEASED,
        EventType.SLOT_APPEARED,
        EventType.QUERY_FAILED,
        EventType.CREDENTIALS_REJECTED,
        EventType.APPOINTMENT_BOOKED,
        EventType.APPOINTMENT_NOT_CONFIRMED,
        EventType.APPOINTMENT_UNKNOWN,
    }
    assert form["scope"].value() == "all" and form["lfd_due_days"].value() == 2
    assert "alice@example.com" in page.content.decode()
    assert '<a href="/containers/alerts/" aria-current="page">Alerts</a>' in page.content.decode()
    assert 'aria-current="page">Containers</a>' not in page.content.decode()
    bad = client.post(
        reverse("notifications:alerts"),
        {
            "channel": "email",
            "events": ["container.new", "no.such"],
            "scope": "all",
            "lfd_due_days": "99",
        },
    )
    assert bad.status_code == 400
    assert set(bad.context["form"].errors) == {"events", "lfd_due_days"}
    assert not AlertPreference.objects.exists()
    saved = client.post(
        reverse("notifications:alerts"),
        {
            "channel": "email",
            "events": ["container.gone", "query.failed"],
            "scope": "watched",
            "lfd_due_days": "1",
        },
    )
    assert saved.status_code == 302
    preference = AlertPreference.objects.get(user=alice.user)
    assert preference.events == ["container.gone", "query.failed"]
    assert (preference.scope, preference.lfd_due_days) == ("watched", 1)
    Delivery.objects.create(
        channel=Delivery.Channel.EMAIL,
        user=alice.user,
        recipient="alice@example.com",
        subject="E-Modal: 1 holds released",
        attempts=1,
        error="Try 1 failed: ConnectionRefusedError",
    )
    listed = client.get(reverse("notifications:alerts")).content.decode()
    assert "E-Modal: 1 holds released" in listed and "ConnectionRefusedError" in listed
    assert "Waiting to retry" in listed


def schedule_form(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "containers",
        "weekdays": ["0", "2", "4"],
        "times": "06:30, 14:00",
        "time_zone": "America/Chicago",
        **changes,
    }


def test_a_person_schedules_pauses_and_deletes_runs_on_the_board(
    alice: Account, bob: Account
) -> None:
    client = logged_in(alice.user)
    response = client.post(reverse("containers:schedule_add"), schedule_form())
    assert response.status_code == 302
    run = RecurringRun.objects.get()
    assert (run.account, run.created_by, run.kind) == (alice, alice.user, "containers")
    assert (run.weekdays, run.times, run.time_zone) == (
        [0, 2, 4],
        ["06:30", "14:00"],
        "America/Chicago",
    )
    assert run.next_run_at is not None and run.schedule.next_run == run.next_run_at
    board = client.get(BOARD).content.decode()
    assert "Mon, Wed, Fri at 06:30, 14:00 America/Chicago" in board
    # Someone else's run is not theirs to touch.
    other = logged_in(bob.user)
    assert other.post(reverse("containers:schedule_pause", args=[run.pk])).status_code == 404
    assert other.post(reverse("containers:schedule_delete", args=[run.pk])).status_code == 404
    assert "06:30, 14:00" not in other.get(BOARD).content.decode()
    client.post(reverse("containers:schedule_pause", args=[run.pk]), {"paused": "1"})
    run.refresh_from_db()
    assert run.paused and run.next_run_at is None and run.schedule.repeats == 0
    client.post(reverse("containers:schedule_pause", args=[run.pk]), {"paused": "0"})
    run.refresh_from_db()
    assert not run.paused and run.schedule.repeats == 1
    schedule_id = run.schedule_id
    client.post(reverse("containers:schedule_delete", args=[run.pk]))
    assert not RecurringRun.objects.exists()
    from django_q.models import Schedule

    assert not Schedule.objects.filter(pk=schedule_id).exists()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"times": "25:00"}, "times", "not a time of day"),
        ({"times": "7h30"}, "times", "not a time of day"),
        ({"times": ""}, "times", "at least one time"),
        (
            {"times": ",".join([*(f"{h:02d}:00" for h in range(24)), "00:30"])},
            "times",
            "At most",
        ),
        ({"weekdays": []}, "weekdays", "at least one day"),
        ({"weekdays": ["7"]}, "weekdays", "not one of the available"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "not one of the available"),
        ({"kind": "timeline"}, "kind", "not one of the available"),
        ({"kind": "os.system"}, "kind", "not one of the available"),
    ],
    ids=["hour", "format", "none", "too-many", "no-day", "day", "zone", "needs-params", "func"],
)
def test_a_bad_schedule_is_a_form_error_and_stores_nothing(
    alice: Account, changes: dict[str, Any], field: str, message: str
) -> None:
    response = logged_in(alice.user).post(
        reverse("containers:schedule_add"), schedule_form(**changes)
    )
    assert response.status_code == 400
    errors = response.context["schedule_form"].errors
    assert any(message in error for error in errors.get(field, [])), errors
    assert not RecurringRun.objects.exists()


def test_a_schedule_is_validated_like_any_start(alice: Account) -> None:
    alice.trucking_company = ""
    alice.save()
    response = logged_in(alice.user).post(
        reverse("containers:schedule_add"), schedule_form(kind="availability")
    )
    assert response.status_code == 400
    assert "trucking company" in str(response.context["schedule_form"].errors)
    assert not RecurringRun.objects.exists()


def test_staff_allowed_to_run_for_any_account_schedule_for_one(
    alice: Account, bob: Account, viewer: Any
) -> None:
    viewer.user_permissions.add(Permission.objects.get(codename="run_query"))
    client = logged_in(viewer)
    response = client.post(reverse("containers:schedule_add"), schedule_form(account=bob.pk))
    assert response.status_code == 302
    assert RecurringRun.objects.get().account == bob
    # Without the permission, staff schedule for nobody else.
    viewer.user_permissions.remove(Permission.objects.get(codename="run_query"))
    response = logged_in(viewer).post(
        reverse("containers:schedule_add"), schedule_form(account=bob.pk)
    )
    assert response.status_code == 404
    assert RecurringRun.objects.count() == 1
