"""The results pages: who sees what, the containers table (filters, sorting, pages, changes),
exports that match the page, served files, and a bounded number of SQL queries."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from history.models import HistoryEntry
from queries_app.models import (
    AppointmentCheck,
    AppointmentRow,
    ContainerInfo,
    ContainerRow,
    Query,
    QueryFile,
)
from sessions_app.models import Account

from ..changes import add_change, add_changes
from ..conftest import make_account

pytestmark = pytest.mark.django_db


# -- building results --------------------------------------------------------------------------


def make_query(account: Account, **fields: Any) -> Query:
    now = timezone.now()
    defaults: dict[str, Any] = {
        "kind": "availability",
        "status": Query.Status.SUCCEEDED,
        "started_at": now - timedelta(minutes=3),
        "finished_at": now,
        "progress_done": 5,
        "progress_total": 5,
    }
    return Query.objects.create(account=account, **{**defaults, **fields})


def number(i: int) -> str:
    return f"TCLU{i:07d}"


def add_containers(query: Query, count: int, **overrides: Any) -> list[ContainerRow]:
    """Varied rows: imports and exports, holds or not, last free days around today."""
    today = timezone.localdate()
    rows = [
        ContainerRow(
            query=query,
            container_number=number(i),
            trade_type="IMPORT" if i % 2 == 0 else "EXPORT",
            status=("IN YARD", "ON VESSEL", "GATE OUT")[i % 3],
            holds=(i % 3 == 0) if i % 7 else None,
            origin=("TTI", "ITS", "PCT", "TRP1")[i % 4],
            destination=("", "TTI", "ETSLAX", "PNCT", "WUT")[i % 5],
            line=("MSC", "MAERSK", "COSCO")[i % 3],
            vessel_name=f"Vessel {i % 6}",
            size_type="40HC",
            fees="info" if i % 4 else "",
            last_free_day=today + timedelta(days=i % 15 - 3) if i % 5 else None,
            good_through=today + timedelta(days=i % 11) if i % 5 else None,
            tags=f"tag-{i % 9}" if i % 2 else "",
            raw={"Container #": number(i)},
            **overrides,
        )
        for i in range(count)
    ]
    return ContainerRow.objects.bulk_create(rows, batch_size=2000)


def add_checks(query: Query, numbers: list[str], slots: int = 2) -> None:
    earliest = timezone.now().replace(microsecond=0) + timedelta(days=1)
    AppointmentCheck.objects.bulk_create(
        [
            AppointmentCheck(
                query=query,
                container_number=n,
                trade_type="IMPORT",
                move_type="PICK FULL",
                terminal_code="TTI",
                terminal="Total Terminals Intl LLC",
                outcome=AppointmentCheck.Outcome.AVAILABLE
                if slots
                else AppointmentCheck.Outcome.NONE,
                slot_count=slots,
                slots=[earliest.isoformat()] * slots,
                slot_texts=["Tuesday 10/07/2025 09:00 - 10:00"] * slots,
                earliest_slot=earliest if slots else None,
            )
            for n in numbers
        ]
    )


def login(client: Client, account_or_user: Any) -> Client:
    client.force_login(getattr(account_or_user, "user", account_or_user))
    return client


def detail_url(query: Query, **params: Any) -> str:
    url = reverse("queries:detail", args=[query.pk])
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return url


class TableParser(HTMLParser):
    """The text of every cell of one table, row by row (header row first)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", self.table_id) in attrs:
            self.depth = 1
        elif self.depth:
            if tag == "table":
                self.depth += 1
            elif tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        if tag == "table":
            self.depth -= 1
        elif tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.depth and self.cell is not None:
            self.cell.append(data)


def table(html: str, table_id: str = "containers-table") -> list[list[str]]:
    parser = TableParser(table_id)
    parser.feed(html)
    return parser.rows


def shown_numbers(client: Client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200
    return [row[0] for row in table(response.content.decode())[1:]]


def csv_rows(response: Any) -> list[list[str]]:
    content = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(content)))


def xlsx_rows(response: Any) -> list[list[Any]]:
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    rows = [list(row) for row in workbook.active.iter_rows(values_only=True)]
    # A stored row ends at its last non-empty cell: pad to the header's width.
    return [row + [None] * (len(rows[0]) - len(row)) for row in rows]


# -- who sees what -------------------------------------------------------------------------------


@pytest.fixture
def alices_query(alice: Account, settings: Any, tmp_path: Any) -> Query:
    settings.MEDIA_ROOT = tmp_path
    query = make_query(alice, status=Query.Status.RUNNING, finished_at=None, progress_done=2)
    add_containers(query, 3)
    stored = QueryFile(
        query=query, kind=QueryFile.Kind.CONTAINERS_SHEET, name="containers.xlsx", size=5
    )
    stored.content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    stored.file.save("containers.xlsx", ContentFile(b"PK\x03\x04x"), save=True)
    return query


GET_URLS = {
    "detail": lambda q: reverse("queries:detail", args=[q.pk]),
    "progress": lambda q: reverse("queries:progress", args=[q.pk]),
    "export csv": lambda q: reverse("queries:export_containers_csv", args=[q.pk]),
    "export xlsx": lambda q: reverse("queries:export_containers_xlsx", args=[q.pk]),
    "file": lambda q: reverse("queries:file", args=[q.pk, q.files.get().pk]),
}


@pytest.mark.parametrize("name", GET_URLS)
def test_another_user_gets_not_found_for_every_url_of_a_query(
    client: Client, alices_query: Query, bob: Account, name: str
) -> None:
    response = login(client, bob).get(GET_URLS[name](alices_query))
    assert response.status_code == 404


def test_another_user_cannot_cancel_a_query(
    client: Client, alices_query: Query, bob: Account
) -> None:
    response = login(client, bob).post(reverse("queries:cancel", args=[alices_query.pk]))
    assert response.status_code == 404
    alices_query.refresh_from_db()
    assert alices_query.status == Query.Status.RUNNING
    assert not alices_query.cancel_requested


@pytest.mark.parametrize("name", [*GET_URLS, "cancel"])
def test_anonymous_visitors_are_sent_to_log_in(
    client: Client, alices_query: Query, name: str
) -> None:
    if name == "cancel":
        url = reverse("queries:cancel", args=[alices_query.pk])
        response = client.post(url)
    else:
        url = GET_URLS[name](alices_query)
        response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("name", GET_URLS)
def test_staff_and_the_owner_reach_every_url_of_a_query(
    client: Client, alices_query: Query, staff: Any, name: str
) -> None:
    assert login(client, staff).get(GET_URLS[name](alices_query)).status_code == 200
    assert (
        login(Client(), alices_query.account).get(GET_URLS[name](alices_query)).status_code == 200
    )


def staff_member(username: str, *permissions: str) -> Any:
    """Staff (not superuser) with an E-Modal account of their own and these permissions."""
    account = make_account(username)
    user = account.user
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="queries_app", codename__in=permissions)
    )
    return user


@pytest.mark.parametrize("name", [*GET_URLS, "cancel"])
def test_staff_without_the_view_permission_get_not_found_for_every_url_of_anothers_query(
    client: Client, alices_query: Query, name: str
) -> None:
    login(client, staff_member("sam", "run_query"))
    if name == "cancel":
        response = client.post(reverse("queries:cancel", args=[alices_query.pk]))
    else:
        response = client.get(GET_URLS[name](alices_query))
    assert response.status_code == 404
    alices_query.refresh_from_db()
    assert not alices_query.cancel_requested


def test_staff_without_the_view_permission_reach_their_own_queries(client: Client) -> None:
    sam = staff_member("sam")
    own = make_query(sam.emodal_account, status=Query.Status.RUNNING, finished_at=None)
    login(client, sam)
    assert client.get(reverse("queries:detail", args=[own.pk])).status_code == 200
    assert client.get(reverse("queries:progress", args=[own.pk])).status_code == 200
    client.post(reverse("queries:cancel", args=[own.pk]))
    own.refresh_from_db()
    assert own.status == Query.Status.CANCELLED


def test_staff_who_may_view_but_not_run_queries_see_anothers_query_but_cannot_cancel_it(
    client: Client, alices_query: Query
) -> None:
    login(client, staff_member("val", "view_query"))
    page = client.get(reverse("queries:detail", args=[alices_query.pk]))
    assert page.status_code == 200
    assert "Cancel query" not in page.content.decode()
    progress = client.get(reverse("queries:progress", args=[alices_query.pk])).json()
    assert "Cancel query" not in progress["status_html"]
    assert client.post(reverse("queries:cancel", args=[alices_query.pk])).status_code == 403
    alices_query.refresh_from_db()
    assert not alices_query.cancel_requested


def test_staff_who_may_view_and_run_queries_cancel_anothers_query(
    client: Client, alices_query: Query
) -> None:
    login(client, staff_member("rob", "view_query", "run_query"))
    page = client.get(reverse("queries:detail", args=[alices_query.pk])).content.decode()
    assert "Cancel query" in page
    client.post(reverse("queries:cancel", args=[alices_query.pk]))
    alices_query.refresh_from_db()
    assert alices_query.cancel_requested or alices_query.status == Query.Status.CANCELLED


@pytest.mark.parametrize(
    ("permissions", "sees_others", "chooses_account"),
    [
        ((), False, False),
        (("run_query",), False, False),
        (("view_query",), True, False),
        (("view_query", "run_query"), True, True),
    ],
    ids=["none", "run-only", "view-only", "view-and-run"],
)
def test_the_list_shows_other_accounts_and_the_account_choice_only_with_the_permissions(
    client: Client,
    alice: Account,
    permissions: tuple[str, ...],
    sees_others: bool,
    chooses_account: bool,
) -> None:
    alices = make_query(alice)
    user = staff_member("sam", *permissions)
    own = make_query(user.emodal_account)
    html = login(client, user).get(reverse("queries:list")).content.decode()
    rows = table(html, "queries-table")
    shown = {row[0] for row in rows[1:]}
    assert f"#{own.pk}" in shown
    assert (f"#{alices.pk}" in shown) is sees_others
    assert (rows[0][1] == "Account") is sees_others
    assert ('name="account"' in html) is chooses_account


def test_a_file_of_another_query_is_not_reachable_through_ones_own_query(
    client: Client, alices_query: Query, bob: Account
) -> None:
    bobs_query = make_query(bob)
    alices_file = alices_query.files.get()
    response = login(client, bob).get(reverse("queries:file", args=[bobs_query.pk, alices_file.pk]))
    assert response.status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        reverse("queries:start"),
        reverse("queries:set_timezone"),
        reverse("queries:cancel", args=[1]),
    ],
)
def test_views_that_change_state_refuse_get(client: Client, alice: Account, url: str) -> None:
    assert login(client, alice).get(url).status_code == 405


def test_home_sends_users_to_their_containers_board(client: Client, alice: Account) -> None:
    response = login(client, alice).get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("containers:board")


# -- my queries --------------------------------------------------------------------------------


def test_my_queries_lists_only_ones_own_queries_with_status_words_and_progress(
    client: Client, alice: Account, bob: Account
) -> None:
    running = make_query(
        alice,
        kind="bulk_info",
        status=Query.Status.RUNNING,
        finished_at=None,
        progress_done=3,
        progress_total=7,
        params={"import_containers": ["MSCU1234567"], "export_containers": []},
    )
    failed = make_query(alice, status=Query.Status.FAILED, error="Login rejected")
    bobs = make_query(bob)
    html = login(client, alice).get(reverse("queries:list")).content.decode()
    rows = table(html, "queries-table")
    assert [row[0] for row in rows[1:]] == [f"#{failed.pk}", f"#{running.pk}"]
    assert f"#{bobs.pk}" not in html
    by_id = {row[0]: row for row in rows[1:]}
    assert "Running" in by_id[f"#{running.pk}"]
    assert "3 of 7" in " ".join(by_id[f"#{running.pk}"])
    assert "MSCU1234567" in by_id[f"#{running.pk}"]
    assert "Failed" in by_id[f"#{failed.pk}"]
    assert "3 min 00 s" in by_id[f"#{failed.pk}"]
    assert 'class="status status-failed"' in html
    assert 'name="kind"' in html


def test_staff_see_everyones_queries_with_the_account(
    client: Client, alice: Account, bob: Account, staff: Any
) -> None:
    make_query(alice)
    make_query(bob)
    rows = table(
        login(client, staff).get(reverse("queries:list")).content.decode(), "queries-table"
    )
    assert rows[0][1] == "Account"
    assert {row[1] for row in rows[1:]} == {"alice", "bob"}


def test_my_queries_are_paginated(client: Client, alice: Account) -> None:
    for _ in range(30):
        make_query(alice)
    login(client, alice)
    first = table(client.get(reverse("queries:list")).content.decode(), "queries-table")
    second = table(
        client.get(reverse("queries:list") + "?page=2").content.decode(), "queries-table"
    )
    assert len(first) - 1 == 25
    assert len(second) - 1 == 5
    assert not {r[0] for r in first[1:]} & {r[0] for r in second[1:]}


def test_a_user_without_an_account_is_told_why_there_is_no_start_form(
    client: Client, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user("dana", password="pw")
    html = login(client, user).get(reverse("queries:list")).content.decode()
    assert "has no E-Modal account" in html
    assert 'id="start-form"' not in html
    assert (
        login(client, user).post(reverse("queries:start"), {"kind": "containers"}).status_code
        == 403
    )


def test_only_staff_with_the_permission_choose_the_account(
    client: Client, alice: Account, staff: Any
) -> None:
    assert (
        'name="account"' not in login(client, alice).get(reverse("queries:list")).content.decode()
    )
    html = login(Client(), staff).get(reverse("queries:list")).content.decode()
    assert 'name="account"' in html
    assert ">alice</option>" in html


# -- one query ---------------------------------------------------------------------------------


def test_the_detail_page_shows_parameters_status_step_error_and_times(
    client: Client, alice: Account
) -> None:
    query = make_query(
        alice,
        kind="timeline",
        status=Query.Status.FAILED,
        params={"container_id": "MSCU1234567"},
        error="Container MSCU1234567: not found on any terminal",
    )
    html = login(client, alice).get(detail_url(query)).content.decode()
    assert "Container timeline" in html
    assert "MSCU1234567" in html
    assert "Why it failed:" in html
    assert "not found on any terminal" in html
    assert "Times are shown in America/Los_Angeles" in html
    assert "Cancel query" not in html
    assert "data-progress-url" not in html
    assert "This query has no results." in html


def test_a_live_query_has_a_poller_and_a_cancel_button(client: Client, alice: Account) -> None:
    query = make_query(
        alice,
        status=Query.Status.RUNNING,
        step="appointment_check",
        finished_at=None,
        progress_done=2,
        progress_total=8,
    )
    html = login(client, alice).get(detail_url(query)).content.decode()
    assert f'data-progress-url="{reverse("queries:progress", args=[query.pk])}"' in html
    assert "Checking appointment slots" in html
    assert "2 of 8" in html
    assert f'action="{reverse("queries:cancel", args=[query.pk])}"' in html


def test_the_progress_endpoint_reports_figures_and_when_to_reload_results(
    client: Client, alice: Account
) -> None:
    query = make_query(
        alice,
        status=Query.Status.RUNNING,
        step="appointment_check",
        finished_at=None,
        progress_done=1,
        progress_total=4,
        error="Retrying after: upstream unavailable",
    )
    url = reverse("queries:progress", args=[query.pk])
    data = login(client, alice).get(url).json()
    assert data["status"] == "running"
    assert data["status_label"] == "Running"
    assert data["step"] == "appointment_check"
    assert (data["progress_done"], data["progress_total"], data["percent"]) == (1, 4, 25)
    assert data["error"] == "Retrying after: upstream unavailable"
    assert data["is_live"] is True
    assert data["reload_results"] is False
    assert "1 of 4" in data["status_html"]
    assert "it will be retried" in data["status_html"]

    Query.objects.filter(pk=query.pk).update(
        status=Query.Status.SUCCEEDED, progress_done=4, step="", error=""
    )
    data = client.get(url).json()
    assert data["is_live"] is False
    assert data["reload_results"] is True
    assert data["percent"] == 100
    assert "Cancel query" not in data["status_html"]


def test_only_result_tables_with_rows_are_shown(client: Client, alice: Account) -> None:
    query = make_query(alice, kind="appointments")
    AppointmentRow.objects.create(
        query=query,
        row_number=1,
        appointment_number="APT123",
        container_number="MSCU1234567",
        appointment_date=date(2025, 10, 7),
        time_slot="09:00 - 10:00",
    )
    html = login(client, alice).get(detail_url(query)).content.decode()
    assert table(html, "appointments-table")[1][:3] == ["1", "APT123", "MSCU1234567"]
    for absent in ("containers-table", "infos-table", "checks-table", "changes-table"):
        assert f'id="{absent}"' not in html


def test_infos_checks_and_changes_are_shown_with_their_errors(
    client: Client, alice: Account
) -> None:
    query = make_query(alice)
    add_containers(query, 2)
    ContainerInfo.objects.create(
        query=query,
        container_number=number(0),
        trade_type="IMPORT",
        passed_pregate=True,
        milestones=[{"milestone": "Departed Terminal", "date": "10/01/2025 08:00"}],
    )
    ContainerInfo.objects.create(
        query=query, container_number=number(1), success=False, error="Not found"
    )
    add_checks(query, [number(0)], slots=3)
    AppointmentCheck.objects.create(
        query=query,
        container_number=number(1),
        success=False,
        outcome=AppointmentCheck.Outcome.FAILED,
        error="Phase 1 failed",
    )
    add_change(query, "GONE0000001", HistoryEntry.Change.GONE)
    html = login(client, alice).get(detail_url(query)).content.decode()
    infos = table(html, "infos-table")
    assert infos[1][0] == number(0) and infos[1][3] == "Yes"
    assert infos[2][2] == "Failed Not found"
    checks = table(html, "checks-table")
    assert checks[1][0] == number(0) and checks[1][6] == "3"
    assert checks[2][5] == "Failed Phase 1 failed"
    assert table(html, "changes-table")[1][:2] == ["GONE0000001", "gone"]


def test_times_are_shown_in_the_zone_the_user_chose(client: Client, alice: Account) -> None:
    started = datetime(2025, 1, 15, 18, 30, tzinfo=UTC)
    query = make_query(alice, started_at=started, finished_at=started + timedelta(minutes=1))
    login(client, alice)
    assert "2025-01-15 10:30:00 PST" in client.get(detail_url(query)).content.decode()
    response = client.post(
        reverse("queries:set_timezone"),
        {"timezone": "America/New_York", "next": detail_url(query)},
    )
    assert response["Location"] == detail_url(query)
    html = client.get(detail_url(query)).content.decode()
    assert "2025-01-15 13:30:00 EST" in html
    assert "Times are shown in America/New_York" in html


def test_choosing_a_time_zone_never_redirects_off_site(client: Client, alice: Account) -> None:
    response = login(client, alice).post(
        reverse("queries:set_timezone"), {"timezone": "UTC", "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("queries:list")


def test_files_are_served_as_attachments_with_their_content_type(
    client: Client, alices_query: Query
) -> None:
    stored = alices_query.files.get()
    response = login(client, alices_query.account).get(
        reverse("queries:file", args=[alices_query.pk, stored.pk])
    )
    assert response["Content-Type"] == stored.content_type
    assert response["Content-Disposition"] == 'attachment; filename="containers.xlsx"'
    assert b"".join(response.streaming_content) == b"PK\x03\x04x"
    html = client.get(detail_url(alices_query)).content.decode()
    assert reverse("queries:file", args=[alices_query.pk, stored.pk]) in html
    assert stored.file.url not in html


# -- the containers table ----------------------------------------------------------------------


@pytest.fixture
def results(alice: Account) -> Query:
    """A finished availability run: 40 containers, slots for some, changes for a few."""
    query = make_query(alice)
    add_containers(query, 40)
    add_checks(query, [number(i) for i in range(0, 40, 4)], slots=2)
    add_checks(query, [number(i) for i in range(2, 40, 4)], slots=0)
    add_change(query, number(3), HistoryEntry.Change.NEW)
    add_change(
        query,
        number(5),
        HistoryEntry.Change.CHANGED,
        {"holds": [True, False], "last free day": ["2025-10-01", "2025-10-03"]},
    )
    return query


def test_holds_and_trade_type_filters(client: Client, results: Query) -> None:
    login(client, results.account)
    rows = ContainerRow.objects.filter(query=results)
    held = shown_numbers(client, detail_url(results, holds="yes"))
    assert held == sorted(r.container_number for r in rows if r.holds is True)
    free_imports = shown_numbers(client, detail_url(results, holds="no", trade="IMPORT"))
    assert free_imports == sorted(
        r.container_number for r in rows if r.holds is False and r.trade_type == "IMPORT"
    )


def test_last_free_day_filter_keeps_those_due_within_n_days_and_overdue_ones(
    client: Client, results: Query
) -> None:
    login(client, results.account)
    limit = timezone.localdate() + timedelta(days=2)
    expected = sorted(
        r.container_number
        for r in ContainerRow.objects.filter(query=results)
        if r.last_free_day is not None and r.last_free_day <= limit
    )
    assert expected
    assert shown_numbers(client, detail_url(results, lfd_within=2)) == expected


def test_available_slot_filter_joins_the_checks_of_the_same_query(
    client: Client, results: Query, alice: Account
) -> None:
    # Another query's check of the same container must not count.
    other = make_query(alice)
    add_checks(other, [number(1)], slots=5)
    login(client, results.account)
    assert shown_numbers(client, detail_url(results, slot="yes")) == [
        number(i) for i in range(0, 40, 4)
    ]
    assert number(1) in shown_numbers(client, detail_url(results, slot="no"))
    assert number(0) not in shown_numbers(client, detail_url(results, slot="no"))


def test_changed_filter_and_container_search(client: Client, results: Query) -> None:
    login(client, results.account)
    assert shown_numbers(client, detail_url(results, changed="yes")) == [number(3), number(5)]
    assert shown_numbers(client, detail_url(results, q="0000012")) == [number(12)]


def test_a_bad_filter_value_is_reported_and_the_others_still_apply(
    client: Client, results: Query
) -> None:
    login(client, results.account)
    response = client.get(detail_url(results, holds="yes", lfd_within="soon"))
    assert "Enter a whole number." in response.content.decode()
    rows = table(response.content.decode())[1:]
    assert rows and all(row[4] == "Yes" for row in rows)


def test_changed_containers_are_marked_with_words_not_only_colour(
    client: Client, results: Query
) -> None:
    html = login(client, results.account).get(detail_url(results)).content.decode()
    rows = {row[0]: row for row in table(html)[1:]}
    assert rows[number(3)][1] == "new"
    assert rows[number(5)][1] == "changed: holds, last free day"
    assert rows[number(4)][1] == ""
    assert 'class="is-changed"' in html and 'class="is-new"' in html
    assert "holds: Yes → No; last free day: 2025-10-01 → 2025-10-03" in html


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("last_free_day", lambda r: (r.last_free_day is None, r.last_free_day, r.container_number)),
        (
            "-good_through",
            lambda r: (
                r.good_through is None,
                -(r.good_through.toordinal() if r.good_through else 0),
                r.container_number,
            ),
        ),
        ("destination", lambda r: (r.destination, r.container_number)),
        ("-container_number", lambda r: [-ord(c) for c in r.container_number]),
    ],
)
def test_sorting_by_a_column_either_way_with_blanks_last(
    client: Client, results: Query, sort: str, key: Any
) -> None:
    login(client, results.account)
    expected = [
        r.container_number for r in sorted(ContainerRow.objects.filter(query=results), key=key)
    ]
    assert shown_numbers(client, detail_url(results, sort=sort)) == expected


def test_sorting_by_slots_and_change(client: Client, results: Query) -> None:
    login(client, results.account)
    by_slots = shown_numbers(client, detail_url(results, sort="-slot_count"))
    assert by_slots[:10] == [number(i) for i in range(0, 40, 4)]
    assert shown_numbers(client, detail_url(results, sort="change"))[:2] == [number(5), number(3)]


def test_an_unknown_sort_falls_back_to_the_container_number(client: Client, results: Query) -> None:
    login(client, results.account)
    numbers = shown_numbers(client, detail_url(results, sort="raw__evil"))
    assert numbers == sorted(numbers)


def test_column_headers_link_to_sorting_and_mark_the_current_order(
    client: Client, results: Query
) -> None:
    html = login(client, results.account).get(detail_url(results, sort="fees")).content.decode()
    assert 'aria-sort="ascending"' in html
    assert "?sort=-fees#containers" in html
    assert "?sort=holds#containers" in html


def test_containers_are_paginated_a_hundred_at_a_time(client: Client, alice: Account) -> None:
    query = make_query(alice)
    add_containers(query, 250)
    login(client, alice)
    pages = [shown_numbers(client, detail_url(query, page=n)) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [100, 100, 50]
    assert sum(pages, []) == [number(i) for i in range(250)]
    html = client.get(detail_url(query, holds="no")).content.decode()
    assert "?holds=no&amp;page=2" in html


# -- exports -----------------------------------------------------------------------------------


EXPORT_FILTERS = {"trade": "IMPORT", "sort": "-last_free_day"}


def test_csv_export_holds_exactly_what_the_page_shows_under_the_same_filters(
    client: Client, results: Query
) -> None:
    login(client, results.account)
    page = table(client.get(detail_url(results, **EXPORT_FILTERS)).content.decode())
    url = reverse("queries:export_containers_csv", args=[results.pk])
    response = client.get(url, EXPORT_FILTERS)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    assert csv_rows(response) == page
    assert len(page) == 21


def test_xlsx_export_holds_exactly_what_the_page_shows_under_the_same_filters(
    client: Client, results: Query
) -> None:
    login(client, results.account)
    page = table(client.get(detail_url(results, **EXPORT_FILTERS)).content.decode())
    url = reverse("queries:export_containers_xlsx", args=[results.pk])
    rows = xlsx_rows(client.get(url, EXPORT_FILTERS))
    header = rows[0]

    def as_shown(value: Any, label: str) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            dates = ("Last free day", "Good through")
            return value.strftime("%Y-%m-%d" if label in dates else "%Y-%m-%d %H:%M")
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    assert [
        [as_shown(v, label) for v, label in zip(row, header, strict=True)] for row in rows
    ] == page


def test_exports_hold_every_page_not_just_the_current_one(client: Client, alice: Account) -> None:
    query = make_query(alice)
    add_containers(query, 250)
    login(client, alice)
    csv_export = csv_rows(
        client.get(reverse("queries:export_containers_csv", args=[query.pk]), {"page": 2})
    )
    assert [row[0] for row in csv_export[1:]] == [number(i) for i in range(250)]
    xlsx_export = xlsx_rows(client.get(reverse("queries:export_containers_xlsx", args=[query.pk])))
    assert len(xlsx_export) == 251


def test_formula_like_cells_are_neutralised_in_both_exports(client: Client, alice: Account) -> None:
    query = make_query(alice)
    for i, tags in enumerate(['=HYPERLINK("http://evil.example","x")', "+1", "-2", "@SUM(A1)"]):
        ContainerRow.objects.create(query=query, container_number=number(i), tags=tags)
    ContainerRow.objects.create(query=query, container_number=number(9), origin="\tTAB")
    login(client, alice)
    csv_export = csv_rows(client.get(reverse("queries:export_containers_csv", args=[query.pk])))
    tags = csv_export[0].index("Tags")
    assert [row[tags] for row in csv_export[1:5]] == [
        """'=HYPERLINK("http://evil.example","x")""",
        "'+1",
        "'-2",
        "'@SUM(A1)",
    ]
    origin = csv_export[0].index("Origin")
    assert csv_export[5][origin] == "'\tTAB"
    xlsx_export = xlsx_rows(client.get(reverse("queries:export_containers_xlsx", args=[query.pk])))
    assert xlsx_export[1][tags] == """'=HYPERLINK("http://evil.example","x")"""
    assert all(not str(row[tags] or "").startswith(("=", "+", "-", "@")) for row in xlsx_export[1:])
    # The page shows the text as it is (HTML does not run formulas).
    html = client.get(detail_url(query)).content.decode()
    assert "=HYPERLINK(&quot;http://evil.example&quot;,&quot;x&quot;)" in html


# -- SQL query counts --------------------------------------------------------------------------


def _results_page_queries(client: Client, query: Query, **params: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(detail_url(query, **params))
    assert response.status_code == 200
    return len(captured)


def _big_run(account: Account, count: int) -> Query:
    query = make_query(account)
    add_containers(query, count)
    add_checks(query, [number(i) for i in range(0, count, 3)])
    add_changes(query, [number(i) for i in range(0, count, 10)], "new")
    ContainerInfo.objects.bulk_create(
        ContainerInfo(query=query, container_number=number(i)) for i in range(0, count, 3)
    )
    return query


def test_a_results_page_of_ten_thousand_containers_needs_a_bounded_number_of_queries(
    client: Client, alice: Account, django_assert_max_num_queries: Any
) -> None:
    small = _big_run(alice, 100)
    large = _big_run(alice, 10_000)
    login(client, alice)
    params = {"sort": "-earliest_slot", "holds": "yes", "slot": "yes", "page": 3}
    with django_assert_max_num_queries(20):
        response = client.get(detail_url(large, **params))
    assert len(table(response.content.decode())) == 101
    assert _results_page_queries(client, small) == _results_page_queries(client, large)
    assert _results_page_queries(client, small, **params) == _results_page_queries(
        client, large, **params
    )


def test_exports_need_a_bounded_number_of_queries(
    client: Client, alice: Account, django_assert_max_num_queries: Any
) -> None:
    query = _big_run(alice, 2_000)
    login(client, alice)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("queries:export_containers_csv", args=[query.pk]))
        assert len(csv_rows(response)) == 2_001
    with django_assert_max_num_queries(12):
        response = client.get(reverse("queries:export_containers_xlsx", args=[query.pk]))
    assert len(xlsx_rows(response)) == 2_001


def test_pages_of_queries_never_load_account_secrets(
    client: Client, alices_query: Query, staff: Any
) -> None:
    login(client, staff)
    with CaptureQueriesContext(connection) as captured:
        for url in (
            reverse("queries:list"),
            detail_url(alices_query),
            reverse("queries:progress", args=[alices_query.pk]),
        ):
            assert client.get(url).status_code == 200
    selected = " ".join(q["sql"] for q in captured.captured_queries)
    assert "sessions_app_account" in selected
    for secret in Account.SECRET_FIELDS:
        assert f'"sessions_app_account"."{secret}"' not in selected


def test_the_list_page_needs_a_bounded_number_of_queries(
    client: Client, alice: Account, bob: Account, staff: Any, django_assert_max_num_queries: Any
) -> None:
    for _ in range(20):
        make_query(alice)
        make_query(bob)
    login(client, staff)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("queries:list")).status_code == 200
