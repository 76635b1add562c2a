"""Staff in the admin: the index starts with accounts, queries and the board; a query's page
follows a live run and cancels or re-runs it (POSTs, with the permission); the accounts list
shows the credentials' state in full."""

from __future__ import annotations

from datetime import datetime
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account
from sessions_app.services.logins import stop_logins

from ..taskqueue import TaskQueue

pytestmark = pytest.mark.django_db


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_index_starts_with_accounts_queries_and_the_board(staff: Any) -> None:
    response = logged_in(staff).get(reverse("admin:index"))
    assert response.status_code == 200
    apps = [app["app_label"] for app in response.context["app_list"]]
    assert apps[:3] == ["sessions_app", "queries_app", "containers_app"]
    first_models = [app["models"][0]["object_name"] for app in response.context["app_list"][:3]]
    assert first_models == ["Account", "Query", "Container"]
    html = response.content.decode()
    start = html.index('id="start-here"')
    assert start < html.index('class="app-auth')
    for url in (
        reverse("admin:sessions_app_account_changelist"),
        reverse("admin:queries_app_query_changelist"),
        reverse("containers:board"),
    ):
        assert f'href="{url}"' in html[start:]


def test_a_live_query_page_follows_progress_and_cancels(
    staff: Any, alice: Account, task_queue: TaskQueue
) -> None:
    query, _ = start_query(account=alice, kind="containers")
    client = logged_in(staff)
    page = reverse("admin:queries_app_query_change", args=[query.pk])
    html = client.get(page).content.decode()
    progress_url = reverse("queries:progress", args=[query.pk])
    assert f'data-progress-url="{progress_url}"' in html
    assert "queries/queries.js" in html
    # The poller's source answers staff for another account's query.
    assert client.get(progress_url).json()["is_live"] is True

    cancel = reverse("admin:queries_app_query_cancel", args=[query.pk])
    assert f'action="{cancel}"' in html
    assert client.get(cancel).status_code == 403  # a POST only
    response = client.post(cancel)
    assert response.status_code == 302 and response["Location"] == page
    query.refresh_from_db()
    assert query.status == Query.Status.CANCELLED
    html = client.get(page).content.decode()
    assert "data-progress-url" not in html and f'action="{cancel}"' not in html


def test_re_run_starts_a_new_query_and_opens_it(
    staff: Any, alice: Account, task_queue: TaskQueue
) -> None:
    query = Query.objects.create(
        account=alice, kind="containers", status=Query.Status.FAILED, error="Cancelled."
    )
    client = logged_in(staff)
    response = client.post(reverse("admin:queries_app_query_rerun", args=[query.pk]))
    new = Query.objects.exclude(pk=query.pk).get()
    assert new.kind == "containers" and new.account_id == alice.pk and new.is_live
    assert new.started_by_id == staff.pk
    assert response["Location"] == reverse("admin:queries_app_query_change", args=[new.pk])
    # Again while it runs: nothing new.
    client.post(reverse("admin:queries_app_query_rerun", args=[query.pk]))
    assert Query.objects.count() == 2


def test_cancel_and_re_run_need_the_permission_to_run_queries(
    django_user_model: Any, alice: Account, task_queue: TaskQueue
) -> None:
    viewer = django_user_model.objects.create_user("vic", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_query"))
    query, _ = start_query(account=alice, kind="containers")
    client = logged_in(viewer)
    html = client.get(reverse("admin:queries_app_query_change", args=[query.pk])).content
    assert b"query-cancel" not in html and b"query-rerun" not in html
    for name in ("cancel", "rerun"):
        url = reverse(f"admin:queries_app_query_{name}", args=[query.pk])
        assert client.post(url).status_code == 403
    query.refresh_from_db()
    assert query.is_live and Query.objects.count() == 1


def test_the_accounts_list_shows_the_credentials_state_in_full(staff: Any, alice: Account) -> None:
    reason = (
        "E-Modal rejected the username or password (LoginErrorType.INVALID_CREDENTIALS); "
        "the whole of a long reason is kept, to its very last words"
    )
    stop_logins(alice, Account.CredentialState.REJECTED, reason)
    since = datetime(2026, 12, 7, 15, 30, tzinfo=ZoneInfo("UTC"))
    Account.objects.filter(pk=alice.pk).update(logins_stopped_at=since)
    html = unescape(
        logged_in(staff).get(reverse("admin:sessions_app_account_changelist")).content.decode()
    )
    assert (
        f'<span class="credentials-state">Rejected (since 2026-12-07 07:30 PST): {reason}' in html
    )
    # Second column, after the user: not pushed off to the right.
    header = html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert header.index("column-user") < header.index("column-credential_state_display")
    assert header.index("column-credential_state_display") < header.index(
        "column-session_state_display"
    )
