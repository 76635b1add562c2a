"""The API's rules through Django's test client: the same services and access rules as the
pages (validation, trigger limit, one live query, ownership, staff permissions), one error
shape, and the containers with the page's filters."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from containers_app.board import update_board
from containers_app.models import Container, Watch
from history.models import HistoryEntry
from queries_app.models import AppointmentCheck, ContainerRow, Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..changes import add_change
from ..conftest import make_account
from ..taskqueue import TaskQueue

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"status", "code", "message"}


def is_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) >= ERROR_KEYS and body["status"] == status and body["code"] == code, body
    assert body["message"]
    return body


def finished(account: Account, kind: str = "containers", **fields: Any) -> Query:
    return Query.objects.create(
        account=account,
        kind=kind,
        status=Query.Status.SUCCEEDED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        **fields,
    )


def add_rows(query: Query, count: int, today: date) -> None:
    ContainerRow.objects.bulk_create(
        ContainerRow(
            query=query,
            container_number=f"MSCU{index:07d}",
            trade_type="IMPORT" if index % 2 else "EXPORT",
            holds=index % 3 == 0,
            last_free_day=today + timedelta(days=index),
            status="IN YARD",
        )
        for index in range(count)
    )


def test_no_token_bad_token_and_wrong_scheme_get_401_in_one_shape(alice: Account) -> None:
    client = Client()
    body = is_error(client.get("/api/v1/queries/"), 401, "not_authenticated")
    assert "credentials" in body["message"]
    response = client.get("/api/v1/queries/", HTTP_AUTHORIZATION="Bearer emp_nope")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    is_error(response, 401, "authentication_failed")
    is_error(
        client.get("/api/v1/queries/", HTTP_AUTHORIZATION="Token abc"), 401, "authentication_failed"
    )


def test_unknown_paths_methods_and_bodies_answer_json(alice: Account, api: Any) -> None:
    client = api(alice.user)
    body = is_error(client.get("/api/v1/nothing-here/"), 404, "not_found")
    assert "/api/v1/nothing-here/" in body["message"]
    body = is_error(client.get("/api/v1/queries"), 404, "not_found")
    assert "end with a slash: /api/v1/queries/" in body["message"]
    is_error(client.get("/api/nope"), 404, "not_found")
    is_error(client.delete("/api/v1/queries/"), 405, "method_not_allowed")
    body = is_error(
        client.post("/api/v1/queries/", "{not json", content_type="application/json"),
        400,
        "parse_error",
    )
    huge = '{"kind": "bulk_info", "params": {"import_containers": "' + "x" * 300_000 + '"}}'
    is_error(
        client.post("/api/v1/queries/", huge, content_type="application/json"),
        413,
        "payload_too_large",
    )
    is_error(client.get("/api/v1/queries/999999/"), 404, "not_found")


def test_starting_a_query_validates_with_the_kinds_form(
    alice: Account, api: Any, task_queue: TaskQueue
) -> None:
    client = api(alice.user)
    body = is_error(
        client.post(
            "/api/v1/queries/",
            {"kind": "timeline", "params": {"container_id": "NOPE"}},
            content_type="application/json",
        ),
        400,
        "invalid",
    )
    assert list(body["fields"]) == ["params.container_id"]
    assert "is not a container number" in body["message"]
    body = is_error(
        client.post("/api/v1/queries/", {"kind": "teleport"}, content_type="application/json"),
        400,
        "invalid",
    )
    assert "Unknown query kind “teleport”" in body["message"]
    body = is_error(
        client.post(
            "/api/v1/queries/",
            {"kind": "containers", "params": {"container_id": "MSCU1234567"}},
            content_type="application/json",
        ),
        400,
        "invalid",
    )
    assert "takes no parameter container_id" in body["message"]
    assert Query.objects.count() == 0

    response = client.post(
        "/api/v1/queries/",
        {"kind": "timeline", "params": {"container_id": "mscu 123456-7"}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    started = response.json()
    assert response["Location"] == f"/api/v1/queries/{started['id']}/"
    assert started["params"] == {"container_id": "MSCU1234567"}
    assert started["status"] == "pending" and started["account"] == alice.pk
    assert started["started_by"] == "alice"
    # The same query again: the running one, not a second.
    again = client.post(
        "/api/v1/queries/",
        {"kind": "timeline", "params": {"container_id": "MSCU1234567"}},
        content_type="application/json",
    )
    assert again.status_code == 200 and again.json()["id"] == started["id"]
    assert Query.objects.count() == 1


def test_the_trigger_limit_answers_429_with_retry_after(
    alice: Account, api: Any, settings: Any, task_queue: TaskQueue
) -> None:
    settings.QUERY_TRIGGER_LIMIT = 2
    client = api(alice.user)
    for number in ("MSCU1111111", "MSCU2222222"):
        response = client.post(
            "/api/v1/queries/",
            {"kind": "timeline", "params": {"container_id": number}},
            content_type="application/json",
        )
        assert response.status_code == 201
    response = client.post(
        "/api/v1/queries/",
        {"kind": "timeline", "params": {"container_id": "MSCU3333333"}},
        content_type="application/json",
    )
    body = is_error(response, 429, "trigger_limit")
    assert 1 <= int(response["Retry-After"]) <= settings.QUERY_TRIGGER_WINDOW_SECONDS
    assert "You have started 2 queries" in body["message"]
    assert Query.objects.count() == 2


def test_a_user_without_an_account_cannot_start_and_staff_need_both_permissions(
    alice: Account, django_user_model: Any, api: Any, task_queue: TaskQueue
) -> None:
    nobody = django_user_model.objects.create_user("nobody")
    is_error(
        api(nobody).post(
            "/api/v1/queries/", {"kind": "containers"}, content_type="application/json"
        ),
        403,
        "permission_denied",
    )
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_query"))
    client = api(clerk)
    assert [a["id"] for a in client.get("/api/v1/accounts/").json()] == [alice.pk]
    assert client.get("/api/v1/accounts/").json()[0]["may_start_queries"] is False
    is_error(
        client.post(
            "/api/v1/queries/",
            {"kind": "containers", "account": alice.pk},
            content_type="application/json",
        ),
        403,
        "permission_denied",
    )
    clerk.user_permissions.add(Permission.objects.get(codename="run_query"))
    client = api(django_user_model.objects.get(pk=clerk.pk))
    response = client.post(
        "/api/v1/queries/",
        {"kind": "containers", "account": alice.pk},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["account"] == alice.pk and response.json()["started_by"] == "clerk"
    # A user names only their own account.
    bob = make_account("bob")
    is_error(
        api(bob.user).post(
            "/api/v1/queries/",
            {"kind": "containers", "account": alice.pk},
            content_type="application/json",
        ),
        404,
        "not_found",
    )


def test_a_user_sees_and_cancels_only_their_own(
    alice: Account, bob: Account, staff: Any, api: Any, task_queue: TaskQueue
) -> None:
    mine, _ = start_query(account=alice, kind="containers")
    theirs, _ = start_query(account=bob, kind="containers")
    client = api(alice.user)
    listed = client.get("/api/v1/queries/").json()
    assert [q["id"] for q in listed["results"]] == [mine.pk]
    is_error(client.get(f"/api/v1/queries/{theirs.pk}/"), 404, "not_found")
    is_error(client.get(f"/api/v1/queries/{theirs.pk}/containers/"), 404, "not_found")
    is_error(client.post(f"/api/v1/queries/{theirs.pk}/cancel/"), 404, "not_found")

    response = client.post(f"/api/v1/queries/{mine.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    body = is_error(client.post(f"/api/v1/queries/{mine.pk}/cancel/"), 409, "conflict")
    assert "had already ended" in body["message"]

    # Staff (a superuser) see both and filter them.
    every = api(staff).get("/api/v1/queries/", {"status": "pending"}).json()
    assert [q["id"] for q in every["results"]] == [theirs.pk]
    is_error(api(staff).get("/api/v1/queries/", {"status": "sleeping"}), 400, "invalid")


def test_a_querys_containers_take_the_pages_filters_sort_and_pages(
    alice: Account, api: Any
) -> None:
    today = timezone.localdate()
    query = finished(alice, progress_total=0)
    add_rows(query, 30, today)
    AppointmentCheck.objects.create(
        query=query, container_number="MSCU0000003", slot_count=2, outcome="available"
    )
    add_change(
        query,
        "MSCU0000004",
        HistoryEntry.Change.CHANGED,
        {"last_free_day": ["2026-01-01", "2026-01-03"]},
    )
    client = api(alice.user)
    url = f"/api/v1/queries/{query.pk}/containers/"
    page = client.get(url, {"page_size": 10}).json()
    assert page["count"] == 30 and len(page["results"]) == 10
    assert page["results"][0]["container_number"] == "MSCU0000000"
    assert "page=2" in page["next"]
    filtered = client.get(url, {"holds": "yes", "lfd_within": 9, "sort": "-last_free_day"}).json()
    assert [r["container_number"] for r in filtered["results"]] == [
        "MSCU0000009",
        "MSCU0000006",
        "MSCU0000003",
        "MSCU0000000",
    ]
    slot = client.get(url, {"slot": "yes"}).json()["results"]
    assert [(r["container_number"], r["slot_count"]) for r in slot] == [("MSCU0000003", 2)]
    changed = client.get(url, {"changed": "yes"}).json()["results"]
    assert changed[0]["change"] == {
        "kind": "changed",
        "fields": {"last_free_day": ["2026-01-01", "2026-01-03"]},
    }
    assert client.get(url, {"trade": "EXPORT"}).json()["count"] == 15
    body = is_error(client.get(url, {"holds": "maybe", "sort": "colour"}), 400, "invalid")
    assert set(body["fields"]) == {"holds", "sort"}
    is_error(client.get(url, {"page": 99}), 404, "not_found")
    detail = client.get(f"/api/v1/queries/{query.pk}/").json()
    assert detail["results"] == {
        "containers": 30,
        "infos": 0,
        "checks": 1,
        "appointments": 0,
        "changes": 1,
    }
    checks = client.get(f"/api/v1/queries/{query.pk}/checks/").json()["results"]
    assert checks[0]["container_number"] == "MSCU0000003"


def test_the_containers_endpoint_is_the_board(
    alice: Account, bob: Account, staff: Any, api: Any
) -> None:
    today = timezone.localdate()
    older = finished(alice)
    add_rows(older, 5, today)
    update_board(older.pk)
    latest = finished(alice, kind="availability")
    add_rows(latest, 4, today)
    moved = today + timedelta(days=9)
    ContainerRow.objects.filter(query=latest, container_number="MSCU0000001").update(
        last_free_day=moved, holds=True
    )
    update_board(latest.pk)
    Query.objects.create(account=alice, kind="containers", status=Query.Status.FAILED)
    bobs = finished(bob)
    add_rows(bobs, 2, today)
    update_board(bobs.pk)

    client = api(alice.user)
    rows = client.get("/api/v1/containers/").json()
    # MSCU0000004 is gone from the latest list: off the board unless asked for.
    assert rows["count"] == 4
    assert {r["account"] for r in rows["results"]} == {alice.pk}
    assert [r["container_number"] for r in rows["results"]][:2] == ["MSCU0000000", "MSCU0000002"]
    first = rows["results"][0]
    assert first["days_left"] == 0 and first["sheet_query"] == latest.pk and first["sheet_seen_at"]
    # Due dates count only for imports still to pull: MSCU0000000 (an export) is due today, not
    # in the list; MSCU0000003 (an import on hold) is.
    due = client.get("/api/v1/containers/", {"due_within": 3}).json()["results"]
    assert [(r["container_number"], r["pickup"]) for r in due] == [("MSCU0000003", "on_hold")]
    assert first["pickup"] == "export" and first["charges_to_date"] is None
    assert client.get("/api/v1/containers/", {"holds": "yes"}).json()["count"] == 3
    gone = client.get("/api/v1/containers/", {"show": "gone"}).json()["results"]
    assert [(r["container_number"], r["last_change"]["change"]) for r in gone] == [
        ("MSCU0000004", "gone")
    ]
    by_number = client.get("/api/v1/containers/", {"sort": "-container"}).json()["results"]
    assert by_number[0]["container_number"] == "MSCU0000003"
    body = is_error(
        client.get("/api/v1/containers/", {"holds": "maybe", "sort": "colour", "due_within": -1}),
        400,
        "invalid",
    )
    assert set(body["fields"]) == {"holds", "sort", "due_within"}

    one = client.get("/api/v1/containers/mscu0000001/").json()
    assert one["container_number"] == "MSCU0000001"
    assert [(r["account"], r["last_free_day"], r["holds"]) for r in one["rows"]] == [
        (alice.pk, str(moved), True)
    ]
    assert one["history"][0]["change"] == "changed" and one["history"][0]["query"] == latest.pk
    assert one["history"][0]["fields"]["last_free_day"] == [
        str(today + timedelta(days=1)),
        str(moved),
    ]
    is_error(client.get("/api/v1/containers/MSCU9999999/"), 404, "not_found")
    # Bob's containers are not Alice's, even by number.
    assert api(bob.user).get("/api/v1/containers/MSCU0000001/").json()["rows"][0]["account"] == (
        bob.pk
    )

    everyone = api(staff).get("/api/v1/containers/", {"sort": "container"}).json()
    assert everyone["count"] == 6
    assert api(staff).get("/api/v1/containers/", {"account": bob.pk}).json()["count"] == 2
    both = api(staff).get("/api/v1/containers/MSCU0000001/").json()["rows"]
    assert [r["account"] for r in both] == sorted([alice.pk, bob.pk])
    # Without "Can view container", staff see only their own (none here).
    clerk = make_account("clerk").user
    clerk.is_staff = True
    clerk.save()
    assert api(clerk).get("/api/v1/containers/").json()["count"] == 0
    is_error(api(clerk).get("/api/v1/containers/MSCU0000001/"), 404, "not_found")


def test_a_watched_container_says_so_for_its_watcher_only(
    alice: Account, staff: Any, api: Any
) -> None:
    run = finished(alice)
    add_rows(run, 3, timezone.localdate())
    update_board(run.pk)
    Watch.objects.create(
        user=alice.user, container=Container.objects.get(container_number="MSCU0000002")
    )
    mine = api(alice.user).get("/api/v1/containers/", {"watched": "yes"}).json()["results"]
    assert [(r["container_number"], r["watched"]) for r in mine] == [("MSCU0000002", True)]
    assert api(staff).get("/api/v1/containers/", {"watched": "yes"}).json()["count"] == 0


def test_kinds_and_event_types_are_listed(alice: Account, api: Any) -> None:
    client = api(alice.user)
    kinds = {kind["code"]: kind for kind in client.get("/api/v1/kinds/").json()}
    assert kinds["timeline"]["params"][0]["name"] == "container_id"
    assert kinds["bulk_info"]["params"][0]["type"] == "list of container numbers"
    types = [e["type"] for e in client.get("/api/v1/event-types/").json()]
    assert "container.lfd_changed" in types and "query.finished" in types


def test_a_crash_and_a_refused_host_answer_json_without_details(
    alice: Account, api: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from api_app.views import accounts

    def broken() -> list[Any]:
        raise RuntimeError("the registry fell over")

    monkeypatch.setattr(accounts, "all_kinds", broken)
    body = is_error(api(alice.user).get("/api/v1/kinds/"), 500, "server_error")
    assert "registry" not in body["message"]
    assert "the registry fell over" in caplog.text  # logged for the operators
    refused = Client(HTTP_HOST="evil.example.com").get("/api/v1/queries/")
    is_error(refused, 400, "bad_request")
