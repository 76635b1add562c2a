"""django-q2's "Scheduled tasks" admin cannot run arbitrary code: only superusers edit
schedules, and only with the portal's own task functions; recurring queries made by the
command are validated before anything is stored, and kept as the board's recurring runs."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.test import Client
from django.urls import reverse
from django_q.models import Schedule

from queries_app.models import RecurringRun
from sessions_app.models import Account

pytestmark = pytest.mark.django_db

ADD = reverse("admin:django_q_schedule_add")


@pytest.fixture
def scheduler_staff(django_user_model: Any) -> Any:
    """Staff (not superuser) holding every permission django-q2 has on schedules."""
    user = django_user_model.objects.create_user("dora", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_q"))
    return user


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def schedule_form(**changes: str) -> dict[str, str]:
    return {
        "name": "nightly",
        "func": "queries_app.tasks.sweep_queries",
        "hook": "",
        "args": "",
        "kwargs": "",
        "schedule_type": Schedule.DAILY,
        "minutes": "",
        "repeats": "-1",
        "next_run_0": "2030-01-01",
        "next_run_1": "03:00:00",
        "cron": "",
        "cluster": "",
        "intended_date_kwarg": "",
        **changes,
    }


def test_staff_with_every_schedule_permission_cannot_add_a_schedule(scheduler_staff: Any) -> None:
    client = logged_in(scheduler_staff)
    assert client.get(ADD).status_code == 403
    response = client.post(ADD, schedule_form(func="os.system", args="'id'"))
    assert response.status_code == 403
    assert not Schedule.objects.filter(name="nightly").exists()
    changelist = client.get(reverse("admin:django_q_schedule_changelist"))
    assert changelist.status_code == 200  # they still see the schedules
    assert ADD not in changelist.content.decode()  # but no "Add" button


def test_staff_with_every_schedule_permission_cannot_change_or_delete_one(
    scheduler_staff: Any,
) -> None:
    sweep = Schedule.objects.get(func="queries_app.tasks.sweep_queries")
    client = logged_in(scheduler_staff)
    change = reverse("admin:django_q_schedule_change", args=[sweep.pk])
    page = client.get(change)
    assert page.status_code == 200  # read-only view
    assert 'name="func"' not in page.content.decode()
    response = client.post(change, schedule_form(func="os.system", args="'id'"))
    assert response.status_code == 403
    delete = reverse("admin:django_q_schedule_delete", args=[sweep.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    sweep.refresh_from_db()
    assert sweep.func == "queries_app.tasks.sweep_queries"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"func": "os.system", "args": "'id'"}, "func", "Only the portal's own tasks"),
        ({"func": "builtins.exec"}, "func", "Only the portal's own tasks"),
        ({"hook": "os.system"}, "hook", "This hook is not allowed"),
        ({"kwargs": "hook='os.system'"}, "kwargs", "Task options cannot be set"),
        ({"kwargs": "{'q_options': {'hook': 'os.system'}}"}, "kwargs", "Task options cannot"),
        ({"args": "__import__('os')"}, "args", "must be Python literals"),
        ({"args": "1, 2"}, None, "These arguments do not fit"),
    ],
    ids=["os-system", "exec", "hook", "hook-in-kwargs", "q-options", "code-in-args", "extra-args"],
)
def test_a_superuser_cannot_schedule_anything_outside_the_allowlist(
    staff: Any, changes: dict[str, str], field: str | None, message: str
) -> None:
    before = Schedule.objects.count()
    response = logged_in(staff).post(ADD, schedule_form(**changes))
    assert response.status_code == 200  # the form again, with its error
    form = response.context["adminform"].form
    errors = form.errors.get(field or "__all__", [])
    assert any(message in error for error in errors), form.errors
    assert Schedule.objects.count() == before


def test_a_superuser_schedules_an_allowed_task(staff: Any, alice: Account) -> None:
    client = logged_in(staff)
    response = client.post(ADD, schedule_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Schedule.objects.get(name="nightly").func == "queries_app.tasks.sweep_queries"
    recurring = schedule_form(
        name="alice containers",
        func="queries_app.tasks.run_recurring_query",
        args="7",
        kwargs="",
    )
    assert client.post(ADD, recurring).status_code == 302
    assert Schedule.objects.get(name="alice containers").args == "7"


def test_the_allowlist_is_one_setting(staff: Any, settings: Any) -> None:
    settings.SCHEDULED_TASK_FUNCS = ["queries_app.tasks.run_recurring_query"]
    response = logged_in(staff).post(ADD, schedule_form())
    errors = response.context["adminform"].form.errors
    assert "Only the portal's own tasks" in errors["func"][0]


def test_scheduling_recurring_queries_with_bad_parameters_stores_nothing_and_says_why(
    alice: Account,
) -> None:
    with pytest.raises(CommandError, match="container"):
        call_command(
            "run_queries",
            "--kind",
            "timeline",
            "--all",
            "--param",
            "container_id=<script>",
            "--schedule",
            "daily",
            stdout=StringIO(),
        )
    assert not Schedule.objects.filter(func="queries_app.tasks.run_recurring_query").exists()
    assert not RecurringRun.objects.exists()


def test_recurring_queries_store_the_cleaned_parameters(alice: Account) -> None:
    def schedule(at: str) -> None:
        call_command(
            "run_queries",
            "--kind",
            "timeline",
            "--all",
            "--param",
            "container_id= mscu1234567 ",
            "--schedule",
            "daily",
            "--at",
            at,
            stdout=StringIO(),
        )

    schedule("06:30")
    run = RecurringRun.objects.get()
    assert run.params == {"container_id": "MSCU1234567"}
    assert (run.weekdays, run.times, run.time_zone) == (
        list(range(7)),
        ["06:30"],
        "America/Los_Angeles",
    )
    assert run.schedule.func == "queries_app.tasks.run_recurring_query"
    assert run.schedule.args == f"({run.pk},)"
    # Run again, the command updates its recurring run rather than adding one.
    schedule("7:05")
    run = RecurringRun.objects.get()
    assert run.times == ["07:05"]
    assert Schedule.objects.filter(func="queries_app.tasks.run_recurring_query").count() == 1


def test_the_command_refuses_a_bad_time(alice: Account) -> None:
    with pytest.raises(CommandError, match="not a time of day"):
        call_command(
            "run_queries",
            "--kind",
            "containers",
            "--all",
            "--schedule",
            "daily",
            "--at",
            "25:00",
            stdout=StringIO(),
        )
    assert not RecurringRun.objects.exists()


def test_a_stored_schedule_outside_the_allowlist_fails_the_system_checks(db: Any) -> None:
    call_command("check", stdout=StringIO())  # the sweep and nothing else: fine
    rogue = Schedule.objects.create(name="backdoor", func="os.system", args="'id'")
    with pytest.raises(SystemCheckError, match=f"Scheduled task #{rogue.pk} \\(backdoor\\)"):
        call_command("check", stdout=StringIO())
    rogue.delete()
    Schedule.objects.create(func="queries_app.tasks.sweep_queries", hook="os.system")
    with pytest.raises(SystemCheckError, match="with hook 'os.system'"):
        call_command("check", stdout=StringIO())
