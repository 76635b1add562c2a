"""Deliveries never starve queries: webhooks and alert e-mails run in a cluster of their own
(its own queue, Q_DELIVERY_WORKERS workers), so a backlog of deliveries to a receiver that
holds every attempt until its deadline delays no query step. Real qcluster processes: the
task cluster and the delivery cluster, as `make run` and `make serve` start them."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings

from emodal_sim.data import containers_for
from notifications.channels.webhook import record_deliveries
from notifications.endpoints import create_endpoint
from notifications.models import Delivery, DeliveryAttempt
from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..engine.test_query_cluster import wait_until
from ..hostile import Hostile
from ..outbox import recorded
from ..processes import ROOT
from ..sim import SimControl
from ..taskqueue import TaskQueue
from .test_webhooks import LFD, lfd_event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BACKLOG = 50
DEADLINE = 3


def test_a_backlog_of_slow_deliveries_does_not_delay_a_querys_first_step(
    alice: Account,
    bob: Account,
    sim: SimControl,
    sim_server: Any,
    task_queue: TaskQueue,
    clusters: Any,
    settings: Any,
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    with Hostile("drip_headers", interval=0.5) as receiver:
        create_endpoint(user=alice.user, url=f"{receiver.url}/hooks", events=[LFD])
        record_deliveries(recorded([lfd_event(alice, suffix=str(n)) for n in range(BACKLOG)]))
        assert task_queue.size() == BACKLOG
        hooks = {
            "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "WEBHOOK_TIMEOUT_SECONDS": str(DEADLINE),
        }
        clusters(workers=2, **hooks)
        clusters(Q_CLUSTER_NAME="deliveries", Q_DELIVERY_WORKERS="2", **hooks)
        # The delivery cluster is busy: both its workers held by the receiver.
        wait_until(lambda: receiver.active == 2, timeout=60)

        number = containers_for(bob.emodal_username, sim_server.config)[0]["Container #"]
        query, _ = start_query(account=bob, kind="timeline", params={"container_id": number})
        wait_until(lambda: not Query.objects.get(pk=query.pk).is_live, timeout=60)
        query.refresh_from_db()
        assert query.status == Query.Status.SUCCEEDED, query.error
        # Before, deliveries and query steps shared the workers: 50 attempts held 3 s each
        # by 2 workers come to 75 s before the query's step could start.
        waited = (query.started_at - query.created_at).total_seconds()
        assert waited < 10, waited
        pending = Delivery.objects.webhooks().filter(attempts=0).count()
        assert pending >= BACKLOG - 10, "the backlog was still there while the query ran"
        # Deliveries run at most Q_DELIVERY_WORKERS at a time, each held no longer than the
        # deadline (as the delivery log recorded them).
        wait_until(lambda: DeliveryAttempt.objects.count() >= 6)
        attempts = list(DeliveryAttempt.objects.values_list("started_at", "duration_ms"))
        assert all(ms <= (DEADLINE + 1) * 1000 for _, ms in attempts), attempts
        assert most_at_once(attempts) <= 2


def most_at_once(attempts: list[tuple[Any, int]]) -> int:
    edges = sorted(
        edge
        for started, ms in attempts
        for edge in ((started, 1), (started + timedelta(milliseconds=ms), -1))
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_the_scripts_start_the_delivery_cluster_settings_name() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import run_portal
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    command, environment = run_portal.delivery_cluster({"A": "b"})
    assert command[-2:] == ["manage.py", "qcluster"]
    assert environment == {"A": "b", "Q_CLUSTER_NAME": settings.DELIVERY_CLUSTER}
    assert settings.DELIVERY_CLUSTER in settings.Q_CLUSTER["ALT_CLUSTERS"]
