"""Claims stay short and are renewed while a step runs: a step whose upstream call outlasts the
claim keeps it (the sweep never hands it to a second worker), and after a SIGKILL of every
worker the sweep takes the query back within the short expiry, not after Q_TIMEOUT + 60 s
(the finding: a query waited about 16 minutes before it resumed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from emodal_sim import DEFAULT_LATENCIES
from queries_app.engine import sweep_queries
from queries_app.models import Query
from queries_app.services import start_query

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, claims_reported

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def sweeping_until(predicate: Callable[[], bool], *, timeout: float = 60.0) -> float:
    """Poll until `predicate()` holds, running the stale-claim sweep on each poll (every minute
    in production: here as often as can be, the harshest case for a claim); the seconds it
    took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met before the deadline")
        sweep_queries()
        time.sleep(0.05)
    return time.monotonic() - started


def in_flight(sim: SimControl, endpoint: str) -> int:
    return sum(1 for call in sim.calls(endpoint) if call["end"] is None)


def reloaded(query: Query) -> Query:
    query.refresh_from_db()
    return query


def test_a_step_longer_than_its_claim_keeps_it(
    sim: SimControl, task_queue: TaskQueue, clusters: Any
) -> None:
    # A full scroll of 4 s against a claim of 1 s, renewed every quarter second.
    sim.configure(latencies={**DEFAULT_LATENCIES, "get_containers_full": 4_000})
    cluster = clusters(workers=2, QUERY_CLAIM_SECONDS="1")
    query, _ = start_query(account=make_account("beat"), kind="containers")
    sweeping_until(lambda: in_flight(sim, "/get_containers") == 1)
    seen = set()
    while in_flight(sim, "/get_containers"):
        sweep_queries()
        row = reloaded(query)
        seen.add(row.claim_token)
        # Renewed all along: never more than the claim's length ahead, never lapsed.
        assert row.claim_expires_at > timezone.now(), "the claim lapsed mid-step"
        time.sleep(0.05)
    sweeping_until(lambda: not reloaded(query).is_live)
    assert query.status == Query.Status.SUCCEEDED, query.error
    # One worker held it through the call, and no step failed or ran twice.
    assert len(seen - {""}) == 1 and query.step_failures == 0
    assert len(sim.calls("/get_containers")) == 1
    assert "claim lost" not in cluster.output()
    cluster.stop()
    assert claims_reported(query.pk) == query.attempts


def test_after_every_worker_is_killed_the_query_resumes_within_the_short_claim(
    sim: SimControl, task_queue: TaskQueue, clusters: Any
) -> None:
    claim = 3.0
    # The resumed step then waits for the account's lease, which the dead worker held for its
    # call: by design (the upstream finishes a call whose client died, and one browser takes
    # one call at a time) for the call's read timeout plus 30 s, at least EMODAL_LEASE_SECONDS.
    # Scaled down here to 0.01 x 300 + 30 s.
    quick = {
        "QUERY_CLAIM_SECONDS": str(claim),
        "EMODAL_TIMEOUT_SCALE": "0.01",
        "EMODAL_LEASE_SECONDS": "1",
    }
    sim.configure(latencies={**DEFAULT_LATENCIES, "get_containers_full": 2_000})
    first = clusters(workers=2, **quick)
    query, _ = start_query(account=make_account("killed"), kind="containers")
    sweeping_until(lambda: in_flight(sim, "/get_containers") == 1)
    first.kill()  # SIGKILL to every process of the only cluster
    killed_at = timezone.now()
    reloaded(query)
    dead_token = query.claim_token
    assert query.status == Query.Status.RUNNING and dead_token
    # The claim the dead worker left lapses within its short length.
    assert (query.claim_expires_at - killed_at).total_seconds() <= claim

    sim.configure(latencies=dict(DEFAULT_LATENCIES))
    clusters(workers=2, **quick)
    waited = sweeping_until(lambda: reloaded(query).claim_token not in ("", dead_token), timeout=30)
    assert waited < claim + 10, waited
    assert (query.attempts, query.step_failures) == (2, 1)
    sweeping_until(lambda: not reloaded(query).is_live, timeout=120)
    assert query.status == Query.Status.SUCCEEDED, query.error
    assert query.containers.count() == len(
        sim.containers(str(query.account.emodal_username))["containers"]
    )
