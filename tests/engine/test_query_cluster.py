"""Queries run by real qcluster processes: crash recovery and several clusters at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from emodal_sim.data import containers_for
from queries_app.engine import sweep_queries
from queries_app.engine.claims import claim_seconds
from queries_app.models import AppointmentCheck, Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, claims_reported

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_until(predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def test_a_query_survives_its_worker_being_killed_mid_run(
    alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue, clusters: Any
) -> None:
    sim.configure(
        latencies={"check_appointments_import": 400, "check_appointments_export": 400}
    )  # 0.4 s per container
    first = clusters()
    query, _ = start_query(account=alice, kind="availability")
    wait_until(
        lambda: (
            Query.objects.filter(
                pk=query.pk, step="appointment_check", progress_done__gte=2
            ).exists()
            and any(c["end"] is None for c in sim.calls("/check_appointments"))
        )
    )
    first.kill()
    killed = Query.objects.get(pk=query.pk)
    assert killed.claim_token, "the cluster was killed in the middle of a step"
    stored_before = killed.progress_done
    sim.wait_for(lambda: all(c["end"] is not None for c in sim.calls()), timeout=10)

    # Restarted later, once the dead worker's account lease has run out (its call ended
    # upstream: see above); the sweep finds its claim on the query and sets it going.
    assert Account.objects.get(pk=alice.pk).lease_token
    Account.objects.filter(pk=alice.pk).update(lease_expires_at=timezone.now())
    later = timezone.now() + timedelta(seconds=claim_seconds() + 1)
    assert sweep_queries(now=later)["dead_workers"] == 1
    second = clusters()
    wait_until(lambda: not Query.objects.get(pk=query.pk).is_live)
    second.stop()

    query.refresh_from_db()
    assert query.status == Query.Status.SUCCEEDED, query.error
    assert query.step_failures == 0
    served = containers_for(alice.emodal_username, sim_server.config)
    assert query.containers.count() == len(served)
    assert query.checks.count() == query.progress_total
    assert query.infos.count() == query.progress_total
    # Stored steps were not repeated; at most the step in flight at the kill was.
    assert len(sim.calls("/get_containers")) == 1
    assert len(sim.calls("/get_info_bulk")) == 1
    checks = len(sim.calls("/check_appointments"))
    sent = query.checks.exclude(outcome=AppointmentCheck.Outcome.NOT_SENT).count()
    assert sent <= checks <= sent + 1
    assert stored_before >= 2
    assert sim.stats()["collisions"] == 0
    # The killed worker's claim counts too, though its task never reported back.
    assert query.attempts >= claims_reported(query.pk) + 1
    assert claims_reported(query.pk) > 0


def test_two_clusters_share_the_work_and_keep_every_invariant(
    db: Any, sim: SimControl, task_queue: TaskQueue, clusters: Any
) -> None:
    sim.configure(latencies={"captcha": 300, "get_containers_full": 300})
    accounts = [make_account(f"acct{i}") for i in range(4)]
    clusters(workers=2)
    clusters(workers=2)
    queries = [
        start_query(account=account, kind="containers")[0] for account in accounts for _ in range(1)
    ] + [start_query(account=accounts[0], kind="appointments")[0] for _ in range(3)]
    wait_until(lambda: not Query.objects.filter(pk__in=[q.pk for q in queries]).live().exists())
    assert set(Query.objects.values_list("status", flat=True)) == {Query.Status.SUCCEEDED}
    stats = sim.stats()
    assert stats["captcha_solves"] == len(accounts)  # one per account, however many queries
    assert stats["collisions"] == 0
    assert stats["evictions"] == 0
