"""What the engine and the upstream client tell listeners: every upstream call, every step,
every query's end — once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from queries_app.models import Query
from queries_app.services import cancel_query, start_query
from queries_app.signals import query_finished, step_finished
from sessions_app.models import Account
from sessions_app.signals import upstream_call
from sessions_app.upstream import EModalClient, UpstreamRejected

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heard() -> Iterator[dict[str, list[dict[str, Any]]]]:
    seen: dict[str, list[dict[str, Any]]] = {"calls": [], "steps": [], "ends": []}

    def on_call(**kwargs: Any) -> None:
        seen["calls"].append(kwargs)

    def on_step(**kwargs: Any) -> None:
        seen["steps"].append(kwargs)

    def on_end(query: Query, **kwargs: Any) -> None:
        seen["ends"].append({"pk": query.pk, "status": query.status})

    upstream_call.connect(on_call)
    step_finished.connect(on_step)
    query_finished.connect(on_end)
    yield seen
    upstream_call.disconnect(on_call)
    step_finished.disconnect(on_step)
    query_finished.disconnect(on_end)


def test_every_upstream_call_is_told_with_a_label_that_holds_no_session_id(
    sim: SimControl, client_api: EModalClient, heard: Any
) -> None:
    session_id = client_api.get_session(username="u", password="p", captcha_api_key="k").session_id
    body = client_api.get_appointments(session_id)
    import io

    client_api.download_file(body["file_url"], io.BytesIO())
    with pytest.raises(UpstreamRejected):
        client_api.get_container_timeline(session_id, container_id="")
    told = [(c["endpoint"], c["outcome"], c["status"]) for c in heard["calls"]]
    assert told == [
        ("/get_session", "ok", 200),
        ("/get_appointments", "ok", 200),
        ("/files/{path}", "ok", 200),
        ("/get_container_timeline", "UpstreamRejected", 400),
    ]
    assert all(c["server"] == sim.url and c["duration"] >= 0 for c in heard["calls"])
    assert not any(session_id in str(c) for c in heard["calls"])


def test_each_step_and_the_end_of_a_query_are_told_once(
    alice: Account, sim: SimControl, task_queue: TaskQueue, heard: Any, settings: Any
) -> None:
    settings.QUERY_CHAIN_SECONDS = 0
    query = run_through_retries(start_query(account=alice, kind="containers")[0], task_queue)
    assert query.status == Query.Status.SUCCEEDED
    # (A run's changes are the board's to record, in a task of its own: not a step.)
    assert [(s["step"], s["outcome"]) for s in heard["steps"]] == [("containers", "done")]
    assert heard["ends"] == [{"pk": query.pk, "status": Query.Status.SUCCEEDED}]


def test_a_failed_and_a_cancelled_query_are_told_too(
    alice: Account, sim: SimControl, task_queue: TaskQueue, heard: Any
) -> None:
    failed = run_through_retries(
        start_query(account=alice, kind="timeline", params={"container_id": "NOTF0000000"})[0],
        task_queue,
    )
    cancelled, _ = start_query(account=alice, kind="appointments")
    assert cancel_query(query=cancelled)
    assert heard["ends"] == [
        {"pk": failed.pk, "status": Query.Status.FAILED},
        {"pk": cancelled.pk, "status": Query.Status.CANCELLED},
    ]
    assert [s["outcome"] for s in heard["steps"]] == ["failed"]
