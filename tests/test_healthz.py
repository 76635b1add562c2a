"""`/healthz`: database, cache, cluster, queue, upstream and breaker; 200 or 503, no secrets."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from emodal_portal.health import public_name
from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account, UpstreamBreaker
from sessions_app.services import SessionManager

from .sim import SimControl
from .taskqueue import TaskQueue

pytestmark = pytest.mark.django_db(transaction=True)


def healthz() -> tuple[int, dict[str, Any], str]:
    response = Client().get("/healthz")
    return response.status_code, response.json(), response.content.decode()


def test_without_a_running_cluster_it_answers_503_and_says_why(sim: SimControl) -> None:
    status, body, _ = healthz()
    assert status == 503
    assert body["status"] == "failing"
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["cache"]["ok"]
    assert checks["cluster"] == {
        "ok": False,
        "alive": 0,
        "clusters": [],
        "ms": checks["cluster"]["ms"],
    }
    server = checks["upstream"]["servers"][sim.url]
    assert server["reachable"] and server["breaker"] == "closed"
    assert server["max_sessions"] == 10
    assert checks["upstream"]["ok"]


def test_with_a_live_cluster_everything_is_fine(sim: SimControl, clusters: Any) -> None:
    clusters(workers=1)
    deadline = time.monotonic() + 60
    while (result := healthz())[0] != 200:
        assert time.monotonic() < deadline, result[1]
        time.sleep(0.2)
    status, body, _ = result
    assert body["status"] == "ok"
    alive = [c for c in body["checks"]["cluster"]["clusters"] if c["status"] in ("Working", "Idle")]
    assert [c["workers"] for c in alive] == [1]


def test_queue_depth_and_the_age_of_the_oldest_waiting_task(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    start_query(account=alice, kind=Query.Kind.CONTAINERS)
    start_query(account=alice, kind=Query.Kind.APPOINTMENTS)
    queue = healthz()[1]["checks"]["queue"]
    assert queue["ok"] and queue["depth"] == 2
    if "orm" in django_settings.Q_CLUSTER:
        from django_q.models import OrmQ

        OrmQ.objects.update(lock=timezone.now() - timedelta(minutes=5))
        assert healthz()[1]["checks"]["queue"]["oldest_age_seconds"] >= 300


def test_an_unreachable_upstream_server_fails_the_check(sim: SimControl, settings: Any) -> None:
    settings.EMODAL_API_URLS = [sim.url, "http://127.0.0.1:9"]
    settings.HEALTHZ_UPSTREAM_TIMEOUT = 0.5
    status, body, _ = healthz()
    assert status == 503
    servers = body["checks"]["upstream"]["servers"]
    assert servers[sim.url]["ok"]
    assert servers["http://127.0.0.1:9"] == {
        **servers["http://127.0.0.1:9"],
        "ok": False,
        "reachable": False,
        "error": "UpstreamUnavailable",
    }


def test_an_open_breaker_fails_the_check(sim: SimControl) -> None:
    UpstreamBreaker.objects.create(
        server=sim.url, state=UpstreamBreaker.State.OPEN, failures=5, opened_at=timezone.now()
    )
    status, body, _ = healthz()
    assert status == 503
    server = body["checks"]["upstream"]["servers"][sim.url]
    assert (server["reachable"], server["breaker"], server["ok"]) == (True, "open", False)


def test_it_names_no_secret(alice: Account, sim: SimControl, settings: Any) -> None:
    session_id = SessionManager().ensure_session(alice)
    settings.EMODAL_API_URLS = [sim.url.replace("http://", "http://ops:hunter2@")]
    _, _, text = healthz()
    for secret in (
        "alice-password",
        "alice-captcha-key",
        "alice-emodal",
        session_id,
        "hunter2",
        settings.SECRET_KEY,
        *settings.FIELD_ENCRYPTION_KEY,
    ):
        assert secret not in text


def test_server_names_keep_only_scheme_host_and_port() -> None:
    assert public_name("https://ops:pw@automation.internal:5010/api") == (
        "https://automation.internal:5010"
    )


def test_it_is_read_only(db: Any) -> None:
    assert Client().post("/healthz").status_code == 405
