"""prune_results: old queries lose their result rows and files, in batches; every Query row,
each account's latest successful query of each kind, the --keep-last most recent ones and
live queries keep theirs; figures on /metrics and the operations page stay as they were."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import models
from django.db.models import Sum
from django.utils import timezone
from django_q.models import Schedule

from ops_app import tasks
from ops_app.models import UpstreamCallStat
from ops_app.recording import add_duration
from ops_app.retention import prune_results, result_models
from queries_app.checks import check_stored_schedules
from queries_app.models import (
    AppointmentCheck,
    AppointmentRow,
    ContainerInfo,
    ContainerRow,
    Query,
    QueryFile,
)
from sessions_app.models import Account

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def make_query(
    account: Account,
    *,
    age_days: float,
    status: str = "succeeded",
    kind: str = "availability",
    rows: int = 3,
) -> Query:
    """A query with rows in every result table and one file."""
    created = timezone.now() - timedelta(days=age_days)
    query = Query.objects.create(
        account=account,
        kind=kind,
        status=status,
        created_at=created,
        started_at=created,
        finished_at=None if status in Query.LIVE_STATUSES else created + timedelta(minutes=5),
    )
    stored = QueryFile(
        query=query, kind="screenshot", name="shot.png", size=5, content_type="image/png"
    )
    stored.file.save(f"{query.pk}-shot.png", ContentFile(b"12345"), save=False)
    stored.save()
    for i in range(rows):
        number = f"MSCU{query.pk:03d}{i:04d}"
        ContainerRow.objects.create(query=query, container_number=number, raw={"n": i})
        ContainerInfo.objects.create(query=query, container_number=number)
        AppointmentCheck.objects.create(
            query=query, container_number=number, screenshot=stored if i == 0 else None
        )
        AppointmentRow.objects.create(query=query, row_number=i, raw={})
    return query


def result_counts(query: Query) -> dict[str, int]:
    return {
        model._meta.model_name: model.objects.filter(query=query).count()
        for model in result_models()
    }


FULL = {
    "appointmentcheck": 3,
    "appointmentrow": 3,
    "containerinfo": 3,
    "containerrow": 3,
    "queryfile": 1,
}
EMPTY = dict.fromkeys(FULL, 0)


def test_old_results_go_and_each_accounts_latest_stay(alice: Account, bob: Account) -> None:
    # alice: old successes, an old failure, a recent success.
    a_old = make_query(alice, age_days=50)
    a_old_failed = make_query(alice, age_days=45, status="failed")
    a_older_kept = make_query(alice, age_days=40)  # the second most recent: --keep-last 2
    a_recent = make_query(alice, age_days=1)
    a_other_kind = make_query(alice, age_days=60, kind="containers")  # its kind's latest
    # bob: his latest success is old (kept: his latest results); an older one goes.
    b_old = make_query(bob, age_days=90)
    b_latest_success = make_query(bob, age_days=70)
    b_failed_after = make_query(bob, age_days=65, status="failed")
    b_failed_later = make_query(bob, age_days=60, status="failed")  # --keep-last 2, with b_live
    b_live = make_query(bob, age_days=0.5, status="running")
    files = {q.pk: Path(q.files.get().file.path) for q in Query.objects.all()}
    assert all(path.exists() for path in files.values())
    kept_rows = list(
        ContainerRow.objects.filter(query=b_latest_success).values_list("container_number", "raw")
    )

    out = StringIO()
    call_command("prune_results", "--older-than", "30", "--keep-last", "2", stdout=out)

    assert Query.objects.count() == 10  # no query row goes
    for gone in (a_old, a_old_failed, b_old, b_failed_after):
        assert result_counts(gone) == EMPTY, gone
        assert not files[gone.pk].exists()
    for kept in (a_older_kept, a_recent, a_other_kind, b_latest_success, b_failed_later, b_live):
        assert result_counts(kept) == FULL, kept
        assert files[kept.pk].exists()
    assert (
        list(
            ContainerRow.objects.filter(query=b_latest_success).values_list(
                "container_number", "raw"
            )
        )
        == kept_rows
    )
    text = out.getvalue()
    assert "results of 4 queries" in text
    assert "queries_app_containerrow" in text and "12 rows" in text
    assert "4 files" in text
    assert "Freed 52 rows and 4 files" in text  # 4 tables × 3 rows + 1 file row, × 4


def test_a_dry_run_counts_and_deletes_nothing(alice: Account) -> None:
    old = make_query(alice, age_days=40)
    make_query(alice, age_days=1)
    out = StringIO()
    call_command("prune_results", "--older-than", "30", "--dry-run", stdout=out)
    assert result_counts(old) == FULL
    assert Path(old.files.get().file.path).exists()
    assert "Would free 13 rows and 1 files" in out.getvalue()


def test_it_deletes_in_batches_of_the_size_asked(alice: Account) -> None:
    old = [make_query(alice, age_days=40 + i, rows=7) for i in range(3)]
    make_query(alice, age_days=1)
    batches: list[tuple[str, int]] = []
    report = prune_results(
        older_than_days=30, batch_size=4, on_batch=lambda table, rows: batches.append((table, rows))
    )
    assert all(rows <= 4 for _, rows in batches)
    assert report.rows == 3 * (4 * 7 + 1)
    assert report.batches == len(batches) >= (3 * 7) // 4 * 4
    assert all(result_counts(q) == EMPTY for q in old)


def test_bad_input_stops_with_a_readable_message() -> None:
    for args, message in (
        (["--older-than", "soon"], "'soon' is not a whole number."),
        (["--older-than", "-3"], "-3 is negative"),
        (["--older-than", "3", "--keep-last", "x"], "'x' is not a whole number."),
        (["--older-than", "3", "--batch-size", "0"], "--batch-size must be 1 or more."),
    ):
        with pytest.raises(CommandError, match=message):
            call_command("prune_results", *args)
    with pytest.raises(CommandError, match="--older-than"):
        call_command("prune_results")


def test_figures_do_not_go_down_when_results_are_pruned(alice: Account) -> None:
    for age in (40, 35, 1):
        make_query(alice, age_days=age)
    add_duration(
        UpstreamCallStat,
        labels={"server": "s", "endpoint": "/e", "outcome": "ok"},
        seconds=1,
        at=timezone.now() - timedelta(days=40),
    )
    before = (Query.objects.count(), UpstreamCallStat.objects.aggregate(n=Sum("count"))["n"])
    prune_results(older_than_days=30)
    assert (
        Query.objects.count(),
        UpstreamCallStat.objects.aggregate(n=Sum("count"))["n"],
    ) == before


def test_the_daily_schedule_is_installed_and_follows_the_settings(
    alice: Account, settings: Any
) -> None:
    schedule = Schedule.objects.get(name="ops: prune old results")
    assert schedule.func == "ops_app.tasks.prune_results"
    assert schedule.schedule_type == Schedule.DAILY
    assert schedule.func in settings.SCHEDULED_TASK_FUNCS
    assert check_stored_schedules() == []
    old = make_query(alice, age_days=40)
    make_query(alice, age_days=1)
    settings.RESULTS_RETENTION_DAYS = 0
    assert tasks.prune_results().startswith("results: off")
    assert result_counts(old) == FULL
    settings.RESULTS_RETENTION_DAYS = 45
    tasks.prune_results()
    assert result_counts(old) == FULL
    settings.RESULTS_RETENTION_DAYS = 30
    settings.RESULTS_KEEP_LAST = 0
    assert tasks.prune_results().startswith("13 rows and 1 files")
    assert result_counts(old) == EMPTY


def test_every_table_of_a_querys_results_is_pruned() -> None:
    """A result table joins the prune by being a `QueryResult`: every model whose rows die with
    their query is one, each is pruned, and before any result it points to."""
    cascading = {
        model
        for model in apps.get_models()
        for key in model._meta.concrete_fields
        if key.is_relation
        and key.related_model is Query
        and key.remote_field.on_delete is models.CASCADE
    }
    ordered = list(result_models())
    assert set(ordered) == cascading
    report = prune_results(older_than_days=0, dry_run=True)
    assert set(report.tables) == {model._meta.db_table for model in cascading}
    for model in ordered:
        assert model._meta.get_field("query").related_model is Query
        for key in model._meta.concrete_fields:
            if key.is_relation and key.related_model in ordered and key.related_model is not model:
                assert ordered.index(key.related_model) > ordered.index(model)
