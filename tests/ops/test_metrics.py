"""/metrics: the Prometheus text format for a bearer of METRICS_TOKEN only, the portal's
figures read from the database (totals, whichever process answers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ops_app.health import public_name
from ops_app.models import StepStat, UpstreamCallStat
from ops_app.recording import add_duration
from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account, SessionEvent, UpstreamBreaker

from ..conftest import make_account
from ..processes import worker_env
from ..served import Gunicorn
from ..sim import SimControl
from ..taskqueue import TaskQueue
from ..threads import in_threads

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "scrape-token-for-tests"


@pytest.fixture(autouse=True)
def _token(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN


def scrape(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample: {sample name: {sorted labels: value}}."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def metrics(client: Client | None = None) -> dict[str, Any]:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return scrape(response.content.decode())


def by(samples: dict[Any, float], label: str) -> dict[str, float]:
    """Values keyed by one label, summed over the others."""
    found: dict[str, float] = {}
    for labels, value in samples.items():
        key = dict(labels)[label]
        found[key] = found.get(key, 0) + value
    return found


def test_metrics_are_off_without_a_token_configured(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_a_missing_or_wrong_token_gets_no_figures(alice: Account) -> None:
    SessionEvent.objects.create(account=alice, kind="created", captcha_spent=True)
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": TOKEN}):
        response = Client().get("/metrics", **headers)
        assert response.status_code == 403
        assert b"emodal_" not in response.content


def test_the_portal_figures_are_what_the_database_holds(
    alice: Account, bob: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    for kind in ("created", "created", "rejected", "failed"):
        SessionEvent.objects.create(account=alice, kind=kind, captcha_spent=True)
    SessionEvent.objects.create(account=bob, kind="failed", captcha_spent=False)
    SessionEvent.objects.create(account=bob, kind="reused_upstream")
    Account.objects.filter(pk=alice.pk).update(
        session_id="s-1", upstream_url=sim.url, session_uses=7
    )
    for status in ("succeeded", "succeeded", "failed", "pending"):
        Query.objects.create(account=alice, kind="containers", status=status)
    Query.objects.create(account=bob, kind="timeline", status="cancelled")
    UpstreamBreaker.objects.create(
        server=sim.url, state="open", failures=5, opened_at=timezone.now()
    )
    now = timezone.now()
    for seconds in (0.05, 0.3, 0.3, 4.0, 1000.0):
        add_duration(
            UpstreamCallStat,
            labels={"server": public_name(sim.url), "endpoint": "/get_containers", "outcome": "ok"},
            seconds=seconds,
            at=now,
        )
    # An earlier hour's row adds to the same series.
    add_duration(
        UpstreamCallStat,
        labels={"server": public_name(sim.url), "endpoint": "/get_containers", "outcome": "ok"},
        seconds=0.2,
        at=now - timezone.timedelta(hours=5),
    )
    add_duration(
        StepStat,
        labels={"kind": "containers", "step": "containers", "outcome": "done"},
        seconds=2,
        at=now,
    )

    found = metrics()
    assert found["emodal_captcha_solves_total"] == {
        (("outcome", "created"),): 2,
        (("outcome", "failed"),): 1,
        (("outcome", "rejected"),): 1,
    }
    assert by(found["emodal_session_events_total"], "kind") == {
        "created": 2,
        "failed": 2,
        "rejected": 1,
        "reused_upstream": 1,
    }
    assert found["emodal_live_sessions"] == {(("server", public_name(sim.url)),): 1}
    assert found["emodal_session_uses"] == {(("server", public_name(sim.url)),): 7}
    assert found["emodal_queries_finished_total"] == {
        (("kind", "containers"), ("status", "failed")): 1,
        (("kind", "containers"), ("status", "succeeded")): 2,
        (("kind", "timeline"), ("status", "cancelled")): 1,
    }
    assert found["emodal_queries_live"] == {(("kind", "containers"), ("status", "pending")): 1}

    series = (("endpoint", "/get_containers"), ("outcome", "ok"), ("server", public_name(sim.url)))
    assert found["emodal_upstream_call_duration_seconds_count"] == {series: 6}
    assert found["emodal_upstream_call_duration_seconds_sum"][series] == pytest.approx(1004.85)
    buckets = {
        dict(labels)["le"]: value
        for labels, value in found["emodal_upstream_call_duration_seconds_bucket"].items()
    }
    assert buckets["0.1"] == 1
    assert buckets["0.25"] == 2
    assert buckets["0.5"] == 4
    assert buckets["5"] == 5
    assert buckets["300"] == 5
    assert buckets["+Inf"] == 6
    step = (("kind", "containers"), ("outcome", "done"), ("step", "containers"))
    assert found["emodal_query_step_duration_seconds_count"] == {step: 1}

    server = public_name(sim.url)
    assert found["emodal_upstream_breaker_state"] == {
        (("server", server), ("state", "closed")): 0,
        (("server", server), ("state", "open")): 1,
        (("server", server), ("state", "half_open")): 0,
    }
    assert found["emodal_upstream_breaker_failures"] == {(("server", server),): 5}
    assert found["emodal_task_queue_depth"] == {(): 0}
    # django-prometheus's own figures come along.
    assert "django_http_requests_total_by_method_total" in found


def test_the_queue_depth_counts_waiting_tasks(alice: Account, task_queue: TaskQueue) -> None:
    start_query(account=alice, kind="containers")
    start_query(account=alice, kind="appointments")
    assert metrics()["emodal_task_queue_depth"] == {(): task_queue.size()}
    assert task_queue.size() == 2


def test_no_secret_appears_in_the_metrics(alice: Account, sim: SimControl) -> None:
    from sessions_app.services import SessionManager

    SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert "emodal_upstream_call_duration_seconds_count" in text
    for secret in (alice.session_id, "alice-password", "alice-captcha-key", "alice-emodal"):
        assert secret not in text


def test_concurrent_recording_loses_no_count(db: Any) -> None:
    at = timezone.now()
    labels = {"server": "http://x:1", "endpoint": "/e", "outcome": "ok"}

    def record(index: int) -> None:
        for _ in range(10):
            add_duration(UpstreamCallStat, labels=labels, seconds=0.3, at=at)

    results = in_threads(6, record)
    assert [r for r in results if isinstance(r, BaseException)] == []
    row = UpstreamCallStat.objects.get()
    assert (row.count, row.b02) == (60, 60)
    assert row.sum_seconds == pytest.approx(18.0)


def _wait_until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.1)


@pytest.mark.slow
def test_a_web_process_reports_the_totals_that_two_worker_processes_wrote(
    sim: SimControl, task_queue: TaskQueue, clusters: Any
) -> None:
    accounts = [make_account(name) for name in ("ann", "ben", "cid")]
    accounts.append(make_account("dee", password="wrong-password"))
    workers = [clusters(workers=2), clusters(workers=2)]
    web = Gunicorn(worker_env(sim.url, METRICS_TOKEN=TOKEN))
    try:
        assert requests.get(f"{web.url}/metrics", timeout=10).status_code == 403
        assert (
            requests.get(
                f"{web.url}/metrics", headers={"Authorization": "Bearer no"}, timeout=10
            ).status_code
            == 403
        )
        started = [start_query(account=a, kind="containers")[0] for a in accounts]
        started += [start_query(account=a, kind="appointments")[0] for a in accounts[:2]]
        _wait_until(lambda: not Query.objects.filter(pk__in=[q.pk for q in started]).live())
        # A step's figures are recorded just after the commit that ended its query: stopped
        # clusters have recorded everything.
        for cluster in workers:
            cluster.stop()
        text = requests.get(
            f"{web.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ).text
    finally:
        web.stop()
    found = scrape(text)

    # Captchas and session events: as the rows say.
    spent = {
        kind: SessionEvent.objects.filter(captcha_spent=True, kind=kind).count()
        for kind in ("created", "rejected", "failed")
    }
    assert by(found["emodal_captcha_solves_total"], "outcome") == {
        kind: n for kind, n in spent.items() if n
    }
    assert spent["created"] == 3 and spent["rejected"] == 1
    # Queries by kind and final status.
    expected = {}
    for query in Query.objects.all():
        expected[(("kind", query.kind), ("status", query.status))] = (
            expected.get((("kind", query.kind), ("status", query.status)), 0) + 1
        )
    assert found["emodal_queries_finished_total"] == expected
    assert expected[(("kind", "containers"), ("status", "succeeded"))] == 3
    # Every upstream call the workers made is counted once: as many as the simulator saw.
    calls = sim.calls()
    counted = found["emodal_upstream_call_duration_seconds_count"]
    assert sum(counted.values()) == len(calls)
    assert by(counted, "endpoint")["/get_containers"] == len(sim.calls("/get_containers"))
    assert sum(counted.values()) == UpstreamCallStat.objects.aggregate(n=Sum("count"))["n"]
    # Every step, once.
    steps = found["emodal_query_step_duration_seconds_count"]
    assert sum(steps.values()) == StepStat.objects.aggregate(n=Sum("count"))["n"]
    assert by(steps, "step")["containers"] >= 3
    assert found["emodal_live_sessions"] == {
        (("server", public_name(sim.url)),): Account.objects.with_session().count()
    }


def test_a_failure_to_record_never_reaches_the_call(
    sim: SimControl, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ops_app import recording
    from sessions_app.upstream import EModalClient

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(recording, "add_duration", broken)
    client = EModalClient(sim.url)
    try:
        grant = client.get_session(username="u", password="p", captcha_api_key="k")
    finally:
        client.close()
    assert grant.session_id
    assert UpstreamCallStat.objects.count() == 0
    assert "Could not record an upstream call's duration: RuntimeError" in caplog.text
