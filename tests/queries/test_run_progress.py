"""A run's progress counts every step — the sheet, the details, each check, the appointments —
with the time left from the contract's timings; "My queries" marks itself live while a query on
it runs."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from queries_app.models import Query
from queries_app.progress import run_progress
from sessions_app.models import Account

pytestmark = pytest.mark.django_db


def availability(account: Account, **fields: Any) -> Query:
    return Query.objects.create(account=account, kind="availability", **fields)


def test_every_step_of_an_availability_run_counts(alice: Account) -> None:
    # Reading the sheet: how many checks is not known yet, but the run is not "0 of 0".
    query = availability(alice, status=Query.Status.RUNNING, step="containers", work_left=600)
    progress = run_progress(query)
    assert (progress.done, progress.total) == (0, 4)
    assert progress.text == "0 of 4 steps · about 10 min left"

    # The sheet is read (8 to check): the bar moves before the first check.
    query.step, query.progress_total, query.work_left = "bulk_info", 8, 1000
    progress = run_progress(query)
    assert (progress.done, progress.total, progress.items_total) == (1, 12, 8)
    assert progress.percent == 8

    query.step, query.progress_done = "appointment_check", 3
    progress = run_progress(query)
    assert (progress.done, progress.total) == (5, 12)
    assert progress.text.startswith("5 of 12 steps · 3 of 8 containers checked · about")

    query.step, query.progress_done, query.work_left = "appointments", 8, 25
    assert (run_progress(query).done, run_progress(query).left_text) == (10, "about a minute left")

    query.status, query.step, query.work_left = Query.Status.SUCCEEDED, "", 0
    progress = run_progress(query)
    assert (progress.done, progress.total, progress.percent) == (12, 12, 100)
    assert progress.seconds_left is None


def test_the_progress_endpoint_gives_every_step_and_the_time_left(alice: Account) -> None:
    query = availability(
        alice,
        status=Query.Status.RUNNING,
        step="appointment_check",
        progress_done=1,
        progress_total=4,
        work_left=3 * 120 + 25,
    )
    client = Client()
    client.force_login(alice.user)
    data = client.get(reverse("queries:progress", args=[query.pk])).json()
    assert (data["steps_done"], data["steps_total"], data["steps_percent"]) == (3, 8, 37)
    assert data["seconds_left"] == 385
    assert data["progress_text"] == "3 of 8 steps · 1 of 4 containers checked · about 7 min left"
    page = client.get(reverse("queries:detail", args=[query.pk])).content.decode()
    assert "3 of 8 steps · 1 of 4 containers checked · about 7 min left" in page


def test_my_queries_follow_a_live_query_and_stop_once_none_is(alice: Account) -> None:
    client = Client()
    client.force_login(alice.user)
    query = availability(alice, status=Query.Status.RUNNING, step="containers")
    html = client.get(reverse("queries:list")).content.decode()
    assert f'data-live-url="{reverse("queries:list")}"' in html
    assert "portal/live.js" in html
    Query.objects.filter(pk=query.pk).update(status=Query.Status.SUCCEEDED, step="")
    html = client.get(reverse("queries:list")).content.decode()
    assert "data-live-url" not in html and 'id="my-queries" data-live-region' in html
