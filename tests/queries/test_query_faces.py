"""Query admin actions and the run_queries command."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_run_availability_action_confirms_then_starts_one_query_per_account(
    staff_client: Client, alice: Account, bob: Account, task_queue: TaskQueue
) -> None:
    url = reverse("admin:sessions_app_account_changelist")
    data = {"action": "run_availability", "_selected_action": [alice.pk, bob.pk]}
    page = staff_client.post(url, data)
    assert "spends a paid captcha solve" in page.content.decode()
    assert not Query.objects.exists()
    done = staff_client.post(url, {**data, "confirmed": "yes"}, follow=True)
    assert "Started availability run for 2 accounts." in done.content.decode()
    assert sorted(Query.objects.values_list("account__user__username", "kind")) == [
        ("alice", "availability"),
        ("bob", "availability"),
    ]
    assert task_queue.funcs() == ["queries_app.tasks.run_query_step"] * 2
    assert LogEntry.objects.filter(change_message__startswith="Started availability").count() == 2


def test_run_containers_action_reports_accounts_it_could_not_start(
    staff_client: Client, alice: Account, db: Any
) -> None:
    carl = make_account("carl", truck_plate="")
    url = reverse("admin:sessions_app_account_changelist")
    done = staff_client.post(
        url,
        {"action": "run_availability", "_selected_action": [carl.pk], "confirmed": "yes"},
        follow=True,
    )
    assert "trucking company and truck plate" in done.content.decode()
    assert not Query.objects.exists()


def test_query_admin_pages_search_and_actions(
    staff_client: Client, alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    query, _ = start_query(account=alice, kind="containers")
    run_queued_tasks(task_queue, until=lambda: not Query.objects.get(pk=query.pk).is_live)
    number = query.containers.first().container_number
    changelist = reverse("admin:queries_app_query_changelist")
    assert staff_client.get(changelist).status_code == 200
    found = staff_client.get(changelist, {"q": number}).content.decode()
    assert f"/admin/queries_app/query/{query.pk}/change/" in found
    assert staff_client.get(changelist, {"q": "ZZZZ9999999"}).context["cl"].result_count == 0
    assert (
        staff_client.get(reverse("admin:queries_app_query_change", args=[query.pk])).status_code
        == 200
    )

    staff_client.post(changelist, {"action": "rerun", "_selected_action": [query.pk]})
    rerun = Query.objects.exclude(pk=query.pk).get()
    assert (rerun.kind, rerun.status) == ("containers", Query.Status.PENDING)
    staff_client.post(changelist, {"action": "cancel", "_selected_action": [rerun.pk]})
    rerun.refresh_from_db()
    assert rerun.status == Query.Status.CANCELLED


@pytest.fixture
def csrf_staff_client(staff: Any) -> Client:
    """A staff client that must send the CSRF token, holding one from a changelist."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    client.get(reverse("admin:queries_app_query_changelist"))
    return client


def post_with_token(client: Client, url: str, data: dict[str, Any]) -> Any:
    token = client.cookies["csrftoken"].value
    return client.post(url, {**data, "csrfmiddlewaretoken": token}, follow=True)


def finished_timelines(account: Account, count: int) -> list[Query]:
    return [
        Query.objects.create(
            account=account,
            kind="timeline",
            params={"container_id": f"MSCU{i:07d}"},
            status=Query.Status.SUCCEEDED,
        )
        for i in range(1, count + 1)
    ]


def test_rerun_stops_at_the_trigger_limit_and_says_what_was_left(
    csrf_staff_client: Client, alice: Account, settings: Any, task_queue: TaskQueue
) -> None:
    settings.QUERY_TRIGGER_LIMIT = 2
    chosen = finished_timelines(alice, 3)
    done = post_with_token(
        csrf_staff_client,
        reverse("admin:queries_app_query_changelist"),
        {"action": "rerun", "_selected_action": [q.pk for q in chosen]},
    )
    html = done.content.decode()
    assert "You have started 2 queries in the last 10\xa0minutes, the most allowed." in html
    assert "The last 1 of the selection was not started." in html
    assert "Started 2 queries." in html
    assert Query.objects.live().count() == 2
    assert task_queue.size() == 2
    assert LogEntry.objects.filter(change_message__startswith="Re-run").count() == 2


def test_rerunning_a_query_already_running_starts_nothing_and_says_so(
    csrf_staff_client: Client, alice: Account, task_queue: TaskQueue
) -> None:
    live, _ = start_query(account=alice, kind="timeline", params={"container_id": "MSCU0000001"})
    done = post_with_token(
        csrf_staff_client,
        reverse("admin:queries_app_query_changelist"),
        {"action": "rerun", "_selected_action": [live.pk]},
    )
    assert "Started 0 queries. 1 was already running: nothing new started for it." in (
        done.content.decode()
    )
    assert Query.objects.count() == 1


def test_run_containers_action_stops_at_the_trigger_limit(
    csrf_staff_client: Client, alice: Account, bob: Account, settings: Any, task_queue: TaskQueue
) -> None:
    settings.QUERY_TRIGGER_LIMIT = 1
    carol = make_account("carol")
    start_query(account=bob, kind="containers")  # already running: not counted
    done = post_with_token(
        csrf_staff_client,
        reverse("admin:sessions_app_account_changelist"),
        {
            "action": "run_containers",
            "_selected_action": [alice.pk, bob.pk, carol.pk],
            "confirmed": "yes",
        },
    )
    html = done.content.decode()
    assert "Started containers for 1 account. 1 was already running" in html
    assert "The last 1 of the selection was not started." in html
    assert sorted(Query.objects.values_list("account__user__username", flat=True)) == [
        "alice",
        "bob",
    ]


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command("run_queries", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_run_queries_wait_exits_zero_when_all_succeed(
    alice: Account, bob: Account, sim: SimControl, clusters: Any
) -> None:
    clusters()
    out = run_command("--kind", "containers", "--all", "--wait", "--timeout", "120")
    assert "2/2 queries ended" in out
    assert out.count(": succeeded in ") == 2
    assert set(Query.objects.values_list("batch", flat=True)) != {""}


def test_run_queries_wait_fails_when_a_query_fails(
    alice: Account, sim: SimControl, clusters: Any
) -> None:
    clusters()
    with pytest.raises(CommandError, match="1 of 1 queries did not succeed"):
        run_command(
            "--kind",
            "timeline",
            "--user",
            "alice",
            "--param",
            "container_id=NOTF0000000",
            "--wait",
            "--timeout",
            "120",
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "timeline", "--user", "alice", "--param", "container_id=123"], "bad input"),
        (["--kind", "containers", "--user", "nobody"], "No E-Modal account for: nobody"),
        (["--kind", "containers", "--all", "--param", "oops"], "key=value"),
    ],
)
def test_run_queries_bad_input_exits_non_zero(
    alice: Account, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run_command(*args)
    assert not Query.objects.exists()


def test_run_queries_dry_run_starts_nothing(alice: Account, task_queue: TaskQueue) -> None:
    out = run_command("--kind", "availability", "--all", "--dry-run")
    assert "alice: would start availability" in out
    assert not Query.objects.exists()
    assert task_queue.size() == 0


def test_run_queries_schedule_creates_one_recurring_run_per_account(
    alice: Account, bob: Account, task_queue: TaskQueue
) -> None:
    from queries_app.models import RecurringRun

    out = run_command("--kind", "containers", "--all", "--schedule", "daily")
    assert "2 daily recurring run(s)" in out
    runs = RecurringRun.objects.all()
    assert runs.count() == 2
    schedules = Schedule.objects.filter(func="queries_app.tasks.run_recurring_query")
    assert schedules.count() == 2
    run_command("--kind", "containers", "--all", "--schedule", "hourly")
    assert runs.count() == schedules.count() == 2  # updated, not duplicated
    import ast

    from django.utils.module_loading import import_string

    run = runs.get(account=alice)
    assert len(run.times) == 24
    # Its schedule fires: the query starts.
    RecurringRun.objects.filter(pk=run.pk).update(next_run_at=timezone.now())
    schedule = Schedule.objects.get(pk=run.schedule_id)
    import_string(schedule.func)(*ast.literal_eval(schedule.args))
    assert Query.objects.get().account == alice
