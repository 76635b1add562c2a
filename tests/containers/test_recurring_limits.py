"""Recurring runs a person can multiply are capped: RECURRING_RUNS_PER_ACCOUNT runs per account,
their start times RECURRING_MIN_INTERVAL_MINUTES apart (all the account's runs together), a
list shown a page at a time; and across a change of the clocks every listed time runs once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django_q.models import Schedule

from queries_app.models import Query, RecurringRun
from queries_app.recurring import TASK, fire, save_recurring_run
from sessions_app.models import Account

from ..conftest import make_account

pytestmark = pytest.mark.django_db

BOARD = reverse("containers:board")


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form(times: str, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "containers",
        "weekdays": [str(d) for d in range(7)],
        "times": times,
        "time_zone": "America/Los_Angeles",
        **changes,
    }


def test_an_account_has_at_most_ten_recurring_runs(alice: Account, settings: Any) -> None:
    """The finding: 501 recurring runs made in 27 s, a django-q schedule each."""
    assert settings.RECURRING_RUNS_PER_ACCOUNT == 10
    client = logged_in(alice.user)
    answers = [
        client.post(reverse("containers:schedule_add"), form(f"{hour:02d}:00"))
        for hour in range(24)
    ]
    assert Counter(a.status_code for a in answers) == {302: 10, 400: 14}
    errors = answers[-1].context["schedule_form"].non_field_errors()
    assert "This account has 10 scheduled runs already, the most it may have" in errors[0]
    assert RecurringRun.objects.filter(account=alice).count() == 10
    assert Schedule.objects.filter(func=TASK).count() == 10
    # A change to one of them is not one more.
    run = RecurringRun.objects.first()
    save_recurring_run(
        account=alice,
        kind="containers",
        params={},
        weekdays=[0],
        times=run.times,
        time_zone=run.time_zone,
        run=run,
    )


@pytest.mark.parametrize(
    ("times", "message"),
    [
        ("06:00, 06:10", "06:00 and 06:10 are 10 minutes apart"),
        ("23:50, 00:10", "23:50 and 00:10 are 20 minutes apart"),
        (
            ", ".join(f"{hour:02d}:{minute:02d}" for hour in range(24) for minute in (0, 1))[:199],
            "At most 24 times a day",
        ),
    ],
    ids=["same-run", "across-midnight", "every-minute"],
)
def test_start_times_closer_than_the_interval_are_a_form_error(
    alice: Account, times: str, message: str
) -> None:
    response = logged_in(alice.user).post(reverse("containers:schedule_add"), form(times))
    assert response.status_code == 400
    assert any(message in e for e in response.context["schedule_form"].errors["times"])
    assert not RecurringRun.objects.exists()


def test_start_times_are_apart_across_all_the_accounts_runs_and_zones(alice: Account) -> None:
    client = logged_in(alice.user)
    every_hour = ", ".join(f"{hour:02d}:00" for hour in range(24))
    assert client.post(reverse("containers:schedule_add"), form(every_hour)).status_code == 302
    # The finding: 60 runs covering every minute of the day; here the second is refused.
    for times, zone in (("06:10", "America/Los_Angeles"), ("09:00", "America/New_York")):
        response = client.post(
            reverse("containers:schedule_add"),
            form(times, kind="availability", time_zone=zone),
        )
        assert response.status_code == 400
        [error] = response.context["schedule_form"].errors["times"]
        assert "another scheduled run of the account" in error and "start at least 30" in error
    assert (
        client.post(
            reverse("containers:schedule_add"), form("06:30", kind="availability")
        ).status_code
        == 302
    )
    # Another account's runs are its own business.
    bob = make_account("bob")
    assert (
        logged_in(bob.user).post(reverse("containers:schedule_add"), form(every_hour)).status_code
        == 302
    )


def test_the_command_meets_the_same_interval(alice: Account) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    call_command("run_queries", "--kind", "containers", "--all", "--schedule", "hourly",
                 "--at", "00:00", stdout=StringIO())  # fmt: skip
    with pytest.raises(ValidationError, match="start at least 30 minutes apart"):
        save_recurring_run(
            account=alice,
            kind="availability",
            params={},
            weekdays=[1],
            times="05:15",
            time_zone="America/Los_Angeles",
        )
    with pytest.raises(CommandError, match="start at least 30 minutes apart"):
        call_command("run_queries", "--kind", "availability", "--all", "--schedule", "daily",
                     "--at", "05:15", stdout=StringIO())  # fmt: skip


def test_the_board_lists_scheduled_runs_a_page_at_a_time(staff: Any) -> None:
    accounts = [make_account(f"user{n}") for n in range(3)]
    for account in accounts:
        for hour in range(9):
            save_recurring_run(
                account=account,
                kind="containers",
                params={},
                weekdays=[0],
                times=f"{hour * 2:02d}:00",
                time_zone="UTC",
                created_by=account.user,
            )
    client = logged_in(staff)
    first = client.get(BOARD)
    assert first.status_code == 200
    page = first.context["recurring_runs"]
    assert len(page) == 20 and page.paginator.count == 27
    assert "Scheduled runs pages" in first.content.decode()
    second = client.get(BOARD, {"runs_page": 2})
    assert len(second.context["recurring_runs"]) == 7
    assert client.get(BOARD, {"runs_page": "x"}).status_code == 200


LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def day_of_runs(account: Account, day: datetime, times: list[str]) -> list[str]:
    """Fire the run as its schedule would, each time at its due moment, over one local day;
    the moments it started a query, as local wall-clock times with their zone."""
    run = save_recurring_run(
        account=account,
        kind="containers",
        params={},
        weekdays=list(range(7)),
        times=times,
        time_zone="America/Los_Angeles",
        now=day.astimezone(UTC),
    )
    started = []
    end = day.replace(hour=23, minute=59)
    while run.next_run_at is not None and run.next_run_at < end:
        due = run.next_run_at
        assert fire(run.pk, now=due).startswith("query ")
        Query.objects.filter(account=account).update(status=Query.Status.SUCCEEDED)
        started.append(due.astimezone(LOS_ANGELES).strftime("%H:%M %Z"))
        run.refresh_from_db()
    return started


def test_every_listed_time_runs_once_on_the_day_the_clocks_go_forward(alice: Account) -> None:
    """10 March 2030 in Los Angeles: 02:00 becomes 03:00. 02:30 does not exist: it runs at the
    first minute after the jump, and 03:30 still runs (the finding: it was skipped)."""
    day = datetime(2030, 3, 10, tzinfo=LOS_ANGELES)
    times = ["01:30", "02:30", "03:30"]
    assert day_of_runs(alice, day, times) == ["01:30 PST", "03:00 PDT", "03:30 PDT"]


def test_every_listed_time_runs_once_on_the_day_the_clocks_go_back(alice: Account) -> None:
    """3 November 2030 in Los Angeles: 01:00-02:00 happens twice; 01:30 runs the first time."""
    day = datetime(2030, 11, 3, tzinfo=LOS_ANGELES)
    times = ["00:30", "01:30", "02:30"]
    assert day_of_runs(alice, day, times) == ["00:30 PDT", "01:30 PDT", "02:30 PST"]


def test_listed_times_the_jump_brings_together_make_one_run(alice: Account) -> None:
    day = datetime(2030, 3, 10, tzinfo=LOS_ANGELES)
    assert day_of_runs(alice, day, ["02:00", "03:00"]) == ["03:00 PDT"]
