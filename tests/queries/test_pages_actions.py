"""Starting and cancelling queries from the results pages (through the query services)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from queries_app.models import Query
from sessions_app.models import Account

from ..conftest import make_account
from ..taskqueue import TaskQueue

pytestmark = pytest.mark.django_db

START = reverse("queries:start")


def login(client: Client, who: Any) -> Client:
    client.force_login(getattr(who, "user", who))
    return client


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_starting_a_query_leads_to_its_page_and_enqueues_its_first_step(
    client: Client, alice: Account, task_queue: TaskQueue, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = login(client, alice).post(START, {"kind": "containers"})
    query = Query.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("queries:detail", args=[query.pk])
    assert (query.account, query.kind, query.started_by) == (alice, "containers", alice.user)
    assert query.status == Query.Status.PENDING
    assert task_queue.funcs() == ["queries_app.tasks.run_query_step"]


def test_starting_an_account_wide_query_twice_shows_the_one_already_running(
    client: Client, alice: Account, task_queue: TaskQueue
) -> None:
    login(client, alice)
    first = client.post(START, {"kind": "containers"})
    second = client.post(START, {"kind": "containers"})
    query = Query.objects.get()
    assert first["Location"] == second["Location"] == reverse("queries:detail", args=[query.pk])
    assert messages_of(first) == [f"Query #{query.pk} (Containers) started."]
    assert "was already running" in messages_of(second)[-1]


def test_bulk_info_containers_are_read_from_free_text(
    client: Client, alice: Account, task_queue: TaskQueue
) -> None:
    login(client, alice).post(
        START,
        {
            "kind": "bulk_info",
            "import_containers": "MSCU1234567, TGHU7654321\nmscu-7654321",
            "export_containers": "",
        },
    )
    query = Query.objects.get()
    assert query.params["import_containers"] == ["MSCU1234567", "TGHU7654321", "MSCU7654321"]
    assert query.params["export_containers"] == []


def test_bad_parameters_show_the_form_again_with_errors_and_the_input_kept(
    client: Client, alice: Account
) -> None:
    response = login(client, alice).post(
        START, {"kind": "timeline", "container_id": "NOT-A-NUMBER"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "is not a container number" in html
    assert 'value="NOT-A-NUMBER"' in html
    assert '<option value="timeline" selected>' in html
    assert not Query.objects.exists()


def test_an_account_level_problem_is_shown_above_the_form(
    client: Client, django_user_model: Any
) -> None:
    account = make_account("erin", trucking_company="", truck_plate="")
    response = login(client, account).post(
        START,
        {
            "kind": "appointment_check",
            "container_type": "import",
            "container_id": "MSCU1234567",
            "terminal": "TTI",
            "move_type": "PICK FULL",
        },
    )
    assert "trucking company and truck plate" in response.content.decode()
    assert not Query.objects.exists()


def test_a_user_cannot_start_a_query_for_another_account(
    client: Client, alice: Account, bob: Account, task_queue: TaskQueue
) -> None:
    login(client, alice).post(START, {"kind": "containers", "account": bob.pk})
    assert Query.objects.get().account == alice


def test_staff_start_a_query_for_the_account_they_choose(
    client: Client, staff: Any, bob: Account, task_queue: TaskQueue
) -> None:
    login(client, staff).post(START, {"kind": "appointments", "account": bob.pk})
    query = Query.objects.get()
    assert (query.account, query.started_by) == (bob, staff)


def test_starting_needs_the_csrf_token(alice: Account) -> None:
    client = login(Client(enforce_csrf_checks=True), alice)
    assert client.post(START, {"kind": "containers"}).status_code == 403
    assert not Query.objects.exists()


def csrf_client(who: Any) -> Client:
    """A client that must send the CSRF token, holding one from the list page."""
    client = login(Client(enforce_csrf_checks=True), who)
    client.get(reverse("queries:list"))
    return client


def post_with_token(client: Client, url: str, data: dict[str, Any]) -> Any:
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def test_starting_the_same_timeline_again_shows_the_one_already_running(
    alice: Account, task_queue: TaskQueue
) -> None:
    client = csrf_client(alice)
    first = post_with_token(client, START, {"kind": "timeline", "container_id": "MSCU1234567"})
    second = post_with_token(client, START, {"kind": "timeline", "container_id": "mscu1234567"})
    other = post_with_token(client, START, {"kind": "timeline", "container_id": "MSCU7654321"})
    running, new = Query.objects.order_by("pk")
    assert first["Location"] == second["Location"] == reverse("queries:detail", args=[running.pk])
    assert other["Location"] == reverse("queries:detail", args=[new.pk])
    assert messages_of(second)[-1] == (
        f"A container timeline query for this account with the same parameters was already "
        f"running (#{running.pk}): showing it."
    )


def test_past_the_trigger_limit_the_form_answers_429_with_the_input_kept_and_when_to_retry(
    alice: Account, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_TRIGGER_LIMIT, settings.QUERY_TRIGGER_WINDOW_SECONDS = 2, 600
    client = csrf_client(alice)
    for number in ("MSCU0000001", "MSCU0000002"):
        started = post_with_token(client, START, {"kind": "timeline", "container_id": number})
        assert started.status_code == 302
    response = post_with_token(client, START, {"kind": "timeline", "container_id": "MSCU0000003"})
    html = response.content.decode()
    assert response.status_code == 429
    oldest = Query.objects.order_by("created_at").first().created_at
    wait = (oldest + timedelta(seconds=600) - timezone.now()).total_seconds()
    assert 0 < int(response["Retry-After"]) <= wait + 1
    assert "You have started 2 queries in the last 10\xa0minutes, the most allowed." in html
    retry_at = timezone.localtime(oldest + timedelta(seconds=600)).strftime("%H:%M:%S")
    assert f"You can start another at {retry_at}" in html
    assert 'value="MSCU0000003"' in html
    assert '<option value="timeline" selected>' in html
    assert Query.objects.count() == 2
    # The running query a trigger returns is still shown at the limit.
    again = post_with_token(client, START, {"kind": "timeline", "container_id": "MSCU0000001"})
    assert again.status_code == 302
    assert "was already running" in messages_of(again)[-1]


def test_cancelling_a_query_between_steps_ends_it_at_once(client: Client, alice: Account) -> None:
    query = Query.objects.create(account=alice, kind="containers", step="containers")
    response = login(client, alice).post(reverse("queries:cancel", args=[query.pk]))
    assert response["Location"] == reverse("queries:detail", args=[query.pk])
    query.refresh_from_db()
    assert query.status == Query.Status.CANCELLED
    assert messages_of(response) == [f"Query #{query.pk} is cancelled."]


def test_cancelling_a_query_whose_step_is_running_stops_it_after_that_step(
    client: Client, alice: Account
) -> None:
    query = Query.objects.create(
        account=alice,
        kind="availability",
        status=Query.Status.RUNNING,
        step="appointment_check",
        claim_token="worker-1",
        claim_expires_at=timezone.now() + timedelta(minutes=5),
    )
    response = login(client, alice).post(reverse("queries:cancel", args=[query.pk]))
    query.refresh_from_db()
    assert query.status == Query.Status.RUNNING
    assert query.cancel_requested
    assert "will stop once the step in progress has finished" in messages_of(response)[0]
    html = client.get(reverse("queries:detail", args=[query.pk])).content.decode()
    assert "cancel requested" in html
    assert "Cancel query" not in html


def test_cancelling_a_finished_query_says_it_had_already_ended(
    client: Client, alice: Account
) -> None:
    query = Query.objects.create(account=alice, kind="containers", status=Query.Status.SUCCEEDED)
    response = login(client, alice).post(reverse("queries:cancel", args=[query.pk]))
    query.refresh_from_db()
    assert query.status == Query.Status.SUCCEEDED
    assert messages_of(response) == [f"Query #{query.pk} had already ended."]


def test_staff_cancel_anyones_query(client: Client, alice: Account, staff: Any) -> None:
    query = Query.objects.create(account=alice, kind="containers", step="containers")
    login(client, staff).post(reverse("queries:cancel", args=[query.pk]))
    query.refresh_from_db()
    assert query.status == Query.Status.CANCELLED
