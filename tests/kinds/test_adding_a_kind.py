"""Adding a query kind is one module: a kind declared and registered here, in the test only,
runs end to end through the engine, the start page and the command, touching no other file."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from containers_app.models import Container
from emodal_sim.data import containers_for
from queries_app.engine import DONE, Outcome, StepContext
from queries_app.kinds.params import ContainerNumberField, KindParams
from queries_app.models import ContainerInfo, Query
from queries_app.registry import Feed, QueryKind, Step, register, unregister
from queries_app.results import write_infos
from queries_app.services import start_query
from sessions_app.models import Account

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks

pytestmark = pytest.mark.django_db(transaction=True)


# -- the whole kind: parameters, steps, labels --------------------------------------------------


class MilestoneCountParams(KindParams):
    container_id = ContainerNumberField(label="Container to count")


def count_milestones(ctx: StepContext) -> Outcome:
    number = ctx.query.params["container_id"]
    body = ctx.call(lambda api, sid: api.get_container_timeline(sid, container_id=number))
    done = [m for m in body.get("timeline") or [] if m.get("status") == "completed"]
    return Outcome("record", state={"completed": len(done)}, progress_done=1, progress_total=2)


def record(ctx: StepContext) -> Outcome:
    info = ContainerInfo(
        query=ctx.query,
        container_number=ctx.query.params["container_id"],
        pregate_details=f"{ctx.query.state['completed']} milestones completed",
    )
    return Outcome(DONE, write_infos(ctx.query, [info]), progress_done=2)


MILESTONE_COUNT = QueryKind(
    code="milestone_count",
    label="Milestone count",
    params=MilestoneCountParams,
    steps={
        "count": Step(count_milestones, "Counting the milestones", seconds=8),
        "record": Step(record, "Writing the count down"),
    },
    first_step="count",
)


@pytest.fixture
def toy_kind() -> Iterator[QueryKind]:
    register(MILESTONE_COUNT)
    yield MILESTONE_COUNT
    unregister(MILESTONE_COUNT.code)


def known_container(alice: Account, sim_server: Any) -> str:
    rows = containers_for(str(alice.emodal_username), sim_server.config)
    return next(r["Container #"] for r in rows if r["Trade Type"] == "IMPORT")


def finish(query: Query, queue: TaskQueue) -> Query:
    run_queued_tasks(queue, until=lambda: not Query.objects.get(pk=query.pk).is_live)
    query.refresh_from_db()
    return query


def test_a_kind_added_in_one_module_runs_through_the_engine(
    toy_kind: QueryKind, alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    number = known_container(alice, sim_server)
    query, created = start_query(
        account=alice, kind="milestone_count", params={"container_id": number.lower()}
    )
    assert created and query.step == "count" and query.work_left == 8
    query = finish(query, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    assert query.get_kind_display() == "Milestone count"
    info = query.infos.get()
    assert info.container_number == number
    assert info.pregate_details.endswith("milestones completed")
    assert query.progress_done == query.progress_total == 2
    assert len(sim.calls("/get_container_timeline")) == 1


def test_a_kind_added_in_one_module_is_offered_and_started_on_the_page(
    toy_kind: QueryKind, alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    client = Client()
    client.force_login(alice.user)
    page = client.get(reverse("queries:list")).content.decode()
    assert '<option value="milestone_count">Milestone count</option>' in page
    # Its field is shown for it (shared with the kinds that take a container number too).
    kinds_of_fields = re.findall(r'data-kinds="([^"]*)"', page)
    assert any("milestone_count" in kinds.split() for kinds in kinds_of_fields)

    refused = client.post(
        reverse("queries:start"), {"kind": "milestone_count", "container_id": "nope"}
    )
    assert "is not a container number" in refused.content.decode()
    assert not Query.objects.exists()

    number = known_container(alice, sim_server)
    started = client.post(
        reverse("queries:start"), {"kind": "milestone_count", "container_id": number}
    )
    query = Query.objects.get()
    assert started.status_code == 302 and started["Location"].endswith(f"/queries/{query.pk}/")
    detail = client.get(started["Location"]).content.decode()
    assert "Counting the milestones" in detail  # the step's own label
    assert "Container to count" in detail and number in detail  # the parameter's own label
    assert finish(query, task_queue).status == Query.Status.SUCCEEDED


def test_a_kind_added_in_one_module_is_started_by_the_command(
    toy_kind: QueryKind, alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    number = known_container(alice, sim_server)
    out = io.StringIO()
    call_command(
        "run_queries",
        "--kind",
        "milestone_count",
        "--user",
        "alice",
        "--param",
        f"container_id={number}",
        stdout=out,
    )
    query = Query.objects.get(kind="milestone_count")
    assert f"alice: query #{query.pk} pending" in out.getvalue()
    assert finish(query, task_queue).status == Query.Status.SUCCEEDED


def test_a_kind_added_in_one_module_feeds_the_board_what_it_declares(
    toy_kind: QueryKind, alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue
) -> None:
    number = known_container(alice, sim_server)
    on_board = Container.objects.create(
        account=alice, container_number=number, sheet_seen_at=timezone.now()
    )
    # A kind that declares nothing for the board: its run is not the board's business.
    quiet, _ = start_query(account=alice, kind="milestone_count", params={"container_id": number})
    finish(quiet, task_queue)
    assert "containers_app.tasks.update_board" not in task_queue.funcs()

    feeding = replace(
        MILESTONE_COUNT,
        code="milestone_board",
        label="Milestone count for the board",
        feeds_board=frozenset({Feed.DETAILS}),
    )
    register(feeding)
    try:
        query, _ = start_query(
            account=alice, kind="milestone_board", params={"container_id": number}
        )
        run_queued_tasks(
            task_queue,
            until=lambda: Container.objects.get(pk=on_board.pk).details_query_id == query.pk,
        )
    finally:
        unregister(feeding.code)
