"""A run's changes are read from the board's history: what the board observed when it merged the
run (new, gone, back, fields moved), on the run's page (section, column, filter) and in the API,
each said against the run the board held before it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from containers_app.board import update_board
from containers_app.models import Container
from queries_app.models import ContainerRow, Query
from sessions_app.models import Account

from ..api.conftest import api_client
from .test_pages import detail_url, login, shown_numbers, table

pytestmark = pytest.mark.django_db

A, B, C, D = "MSCU0000001", "MSCU0000002", "MSCU0000003", "MSCU0000004"


def sheet_run(account: Account, rows: dict[str, dict[str, Any]], kind: str = "containers") -> Query:
    """A succeeded run whose sheet lists these containers, merged into the board."""
    now = timezone.now()
    query = Query.objects.create(
        account=account,
        kind=kind,
        status=Query.Status.SUCCEEDED,
        started_at=now - timedelta(minutes=2),
        finished_at=now,
    )
    today = timezone.localdate()
    ContainerRow.objects.bulk_create(
        ContainerRow(
            query=query,
            container_number=number,
            trade_type="IMPORT",
            status="IN YARD",
            holds=fields.get("holds", False),
            last_free_day=today + timedelta(days=fields.get("lfd", 5)),
        )
        for number, fields in rows.items()
    )
    update_board(query.pk)
    return query


@pytest.fixture
def runs(alice: Account) -> list[Query]:
    """Three runs: the board's first (A, B, C); C gone and B's holds released; C back, D new
    (an availability run: the kind's name does not matter, the board's sheet does)."""
    first = sheet_run(alice, {A: {}, B: {"holds": True}, C: {}})
    second = sheet_run(alice, {A: {}, B: {"holds": False}})
    third = sheet_run(alice, {A: {}, B: {"holds": False}, C: {}, D: {}}, kind="availability")
    return [first, second, third]


def test_the_boards_first_run_has_no_changes(client: Client, runs: list[Query]) -> None:
    first = runs[0]
    assert not first.changes.exists()
    html = login(client, first.account).get(detail_url(first)).content.decode()
    assert 'id="changes-table"' not in html
    assert table(html)[0][1] != "Change"  # no change column either


def test_a_run_shows_what_went_and_what_moved(client: Client, runs: list[Query]) -> None:
    second = runs[1]
    login(client, second.account)
    html = client.get(detail_url(second)).content.decode()
    changes = table(html, "changes-table")[1:]
    assert [row[:2] for row in changes] == [[B, "changed: holds"], [C, "gone"]]
    assert "holds: Yes → No" in html
    rows = {row[0]: row for row in table(html)[1:]}
    assert rows[B][1] == "changed: holds" and rows[A][1] == ""
    # C is not on this run's sheet: its change is in the section, not in the table.
    assert C not in rows
    assert shown_numbers(client, detail_url(second, changed="yes")) == [B]


def test_a_run_shows_what_came_back_and_what_is_new(client: Client, runs: list[Query]) -> None:
    third = runs[2]
    login(client, third.account)
    html = client.get(detail_url(third)).content.decode()
    assert [row[:2] for row in table(html, "changes-table")[1:]] == [[C, "back"], [D, "new"]]
    rows = {row[0]: row for row in table(html)[1:]}
    assert (rows[C][1], rows[D][1], rows[B][1]) == ("back", "new", "")
    assert 'class="is-back"' in html and 'class="is-new"' in html
    assert shown_numbers(client, detail_url(third, changed="yes")) == [C, D]
    assert shown_numbers(client, detail_url(third, sort="change"))[:2] == [C, D]


def test_the_api_reads_the_same_changes(runs: list[Query]) -> None:
    first, second, third = runs
    client = api_client(third.account.user)
    listed = client.get(f"/api/v1/queries/{second.pk}/changes/").json()["results"]
    assert listed == [
        {
            "container_number": B,
            "change": "changed",
            "fields": {"holds": [True, False]},
            "previous_query": first.pk,
        },
        {"container_number": C, "change": "gone", "fields": {}, "previous_query": first.pk},
    ]
    listed = client.get(f"/api/v1/queries/{third.pk}/changes/").json()["results"]
    assert [(r["container_number"], r["change"], r["previous_query"]) for r in listed] == [
        (C, "back", second.pk),
        (D, "new", second.pk),
    ]
    rows = client.get(f"/api/v1/queries/{third.pk}/containers/", {"changed": "yes"}).json()
    assert [(r["container_number"], r["change"]) for r in rows["results"]] == [
        (C, {"kind": "back", "fields": {}}),
        (D, {"kind": "new", "fields": {}}),
    ]
    assert client.get(f"/api/v1/queries/{third.pk}/").json()["results"]["changes"] == 2
    assert client.get(f"/api/v1/queries/{first.pk}/").json()["results"]["changes"] == 0


def test_the_run_and_the_container_page_read_one_history(runs: list[Query]) -> None:
    """The run's change of C is the entry the container's history shows."""
    second, third = runs[1], runs[2]
    container = Container.objects.get(account=third.account, container_number=C)
    assert [(e.change, e.query_id) for e in container.history.all()] == [
        ("back", third.pk),
        ("gone", second.pk),
    ]
    client = api_client(third.account.user)
    history = client.get(f"/api/v1/containers/{C}/").json()["history"]
    assert [(h["change"], h["query"]) for h in history] == [("back", third.pk), ("gone", second.pk)]


def test_a_run_merged_twice_keeps_one_set_of_changes(runs: list[Query]) -> None:
    second = runs[1]
    update_board(second.pk)
    assert second.changes.count() == 2


def test_a_kind_that_feeds_no_board_has_no_changes(client: Client, alice: Account) -> None:
    now = timezone.now()
    query = Query.objects.create(
        account=alice,
        kind="appointments",
        status=Query.Status.SUCCEEDED,
        started_at=now,
        finished_at=now,
    )
    update_board(query.pk)
    response = login(client, alice).get(detail_url(query))
    assert response.status_code == 200 and 'id="changes-table"' not in response.content.decode()
    body = api_client(alice.user).get(f"/api/v1/queries/{query.pk}/changes/").json()
    assert body["count"] == 0
