"""`/healthz`: database, cache, cluster, queue, upstream and breaker; 200 or 503, no secrets."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from notifications.endpoints import create_endpoint, send_test_event
from ops_app.health import public_name
from queries_app.services import start_query
from sessions_app.models import Account, UpstreamBreaker
from sessions_app.services import SessionManager

from ..sim import SimControl
from ..taskqueue import TaskQueue

pytestmark = pytest.mark.django_db(transaction=True)


MONITOR_TOKEN = "monitor-token-for-tests"


@pytest.fixture(autouse=True)
def _monitor_token(settings: Any) -> None:
    settings.HEALTHZ_TOKEN = MONITOR_TOKEN


def healthz(client: Client | None = None, **headers: str) -> tuple[int, dict[str, Any], str]:
    """/healthz with its details: as a monitor bearing the token, unless told otherwise."""
    if client is None and not headers:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {MONITOR_TOKEN}"}
    response = (client or Client()).get("/healthz", **headers)
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
    start_query(account=alice, kind="containers")
    start_query(account=alice, kind="appointments")
    queue = healthz()[1]["checks"]["queue"]
    assert queue["ok"] and queue["depth"] == 2 and queue["deliveries_depth"] == 0
    # Webhooks wait in the delivery cluster's queue, counted apart.
    endpoint, _ = create_endpoint(
        user=alice.user, url="https://hooks.example.com/in", events=["query.finished"]
    )
    send_test_event(endpoint=endpoint)
    queue = healthz()[1]["checks"]["queue"]
    assert queue["depth"] == 2 and queue["deliveries_depth"] == 1
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


def test_no_upstream_server_configured_fails_the_check(sim: SimControl, settings: Any) -> None:
    assert healthz()[1]["checks"]["upstream"]["ok"] is True
    settings.EMODAL_API_URLS = []  # no server is not "no server failing"
    status, body, _ = healthz()
    assert status == 503
    assert body["checks"]["upstream"] == {
        "ok": False,
        "error": "no upstream server configured (EMODAL_API_URL)",
        "ms": body["checks"]["upstream"]["ms"],
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


def test_anonymous_callers_get_the_verdict_and_no_details(sim: SimControl) -> None:
    status, body, _ = healthz(Client())
    assert status == 503
    assert body == {"status": "failing"}
    for wrong in ("Bearer not-the-token", f"Basic {MONITOR_TOKEN}", MONITOR_TOKEN):
        assert healthz(HTTP_AUTHORIZATION=wrong)[1] == {"status": "failing"}


def test_staff_and_bearers_of_the_token_get_the_details(
    sim: SimControl, staff: Any, settings: Any
) -> None:
    assert "servers" in healthz()[1]["checks"]["upstream"]
    client = Client()
    client.force_login(staff)
    assert set(healthz(client)[1]["checks"]) == {
        "database",
        "cache",
        "cluster",
        "upstream",
        "queue",
    }
    settings.HEALTHZ_TOKEN = ""  # no token configured: no bearer gets details
    assert healthz(HTTP_AUTHORIZATION="Bearer ")[1] == {"status": "failing"}


def test_two_anonymous_calls_within_the_cache_time_ask_the_upstream_once(
    sim: SimControl, settings: Any
) -> None:
    settings.HEALTHZ_CACHE_SECONDS = 5
    cache.delete("healthz:upstream:" + hashlib.sha256(sim.url.encode()).hexdigest())
    before = len(sim.calls("/health"))
    healthz(Client())
    healthz(Client())
    assert len(sim.calls("/health")) - before == 1
    # The breaker is read afresh: an open one shows at once, cached reachability or not.
    UpstreamBreaker.objects.create(
        server=sim.url, state=UpstreamBreaker.State.OPEN, failures=5, opened_at=timezone.now()
    )
    server = healthz()[1]["checks"]["upstream"]["servers"][sim.url]
    assert (server["reachable"], server["breaker"], server["ok"]) == (True, "open", False)
    assert len(sim.calls("/health")) - before == 1
