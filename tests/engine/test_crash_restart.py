"""Crash and restart under real qclusters: the database restarts (PostgreSQL) or stays
locked for a while (SQLite), and the upstream goes away and comes back without its
sessions. Every query still ends, its results are complete where the upstream allowed,
nothing is stored twice, no captcha is spent beyond the logins a lost session needs, and
every claim counts on the query row."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection

from emodal_sim import SimConfig, SimServer
from emodal_sim.data import appointments_for, containers_for
from queries_app import parsing
from queries_app.engine import sweep_queries
from queries_app.models import AppointmentCheck, Query
from queries_app.services import start_query
from sessions_app.models import UpstreamBreaker

from ..conftest import make_account
from ..processes import Cluster
from ..sim import FAST_SCALE, SimControl
from ..taskqueue import TaskQueue, claims_reported

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ENGINE = django_settings.DATABASES["default"]["ENGINE"]
postgres_only = pytest.mark.skipif(
    "postgresql" not in ENGINE,
    reason="SQLite has no server to restart (its equivalent, a locked database, is tested)",
)
sqlite_only = pytest.mark.skipif(
    "sqlite" not in ENGINE, reason="a locked database file is SQLite's form of an outage"
)

# The clusters' back-offs and breaker, in fractions of a second instead of minutes.
QUICK = {
    "QUERY_RETRY_BASE_SECONDS": "0.2",
    "EMODAL_BREAKER_FAILURES": "3",
    "EMODAL_BREAKER_RESET_SECONDS": "0.5",
    "EMODAL_RETRY_BASE_SECONDS": "0.02",
    "EMODAL_RETRY_MAX_SECONDS": "0.1",
}
# A username holding "+c6" has 6 containers upstream: a short availability run.
SMALL = "+c6"


def run_until(predicate: Callable[[], bool], *, timeout: float = 60.0) -> None:
    """Poll until `predicate()` holds, playing the scheduler meanwhile: the sweep that sets
    steps going again after their back-off (every minute in production) runs on each poll."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        sweep_queries()
        time.sleep(0.05)


def in_flight(sim: SimControl, endpoint: str) -> int:
    return sum(1 for call in sim.calls(endpoint) if call["end"] is None)


def all_ended(queries: list[Query]) -> bool:
    return not Query.objects.filter(pk__in=[q.pk for q in queries]).live().exists()


def start_availability_runs(names: list[str]) -> list[Query]:
    return [
        start_query(account=make_account(f"{name}{SMALL}"), kind="availability")[0]
        for name in names
    ]


def assert_complete(query: Query, config: SimConfig) -> None:
    """The run succeeded with everything the upstream serves, each row once; a container
    whose check gave up after its tries says why."""
    query.refresh_from_db()
    assert query.status == Query.Status.SUCCEEDED, query.error
    username = str(query.account.emodal_username)
    served = containers_for(username, config)
    candidates = sorted(
        c["Container #"]
        for c in served
        if parsing.is_availability_candidate(parsing.container_fields(c))
    )
    assert sorted(query.containers.values_list("container_number", flat=True)) == sorted(
        c["Container #"] for c in served
    )
    assert list(query.infos.values_list("container_number", flat=True)) == candidates
    assert list(query.checks.values_list("container_number", flat=True)) == candidates
    assert query.appointments.count() == len(appointments_for(username, served, config))
    assert query.progress_done == query.progress_total == len(candidates)
    failed = query.checks.filter(outcome=AppointmentCheck.Outcome.FAILED)
    for error in failed.values_list("error", flat=True):
        assert re.fullmatch(r"Gave up after 3 tries: Could not reach the upstream .+", error)


def checks_sent(queries: list[Query]) -> int:
    """The checks the runs sent (a container with no known terminal is never sent)."""
    return sum(
        query.checks.exclude(outcome=AppointmentCheck.Outcome.NOT_SENT).count() for query in queries
    )


def assert_no_secret_logged(cluster: Cluster, queries: list[Query], sim: SimControl) -> None:
    """The workers' log (tracebacks of the crash included) names no password, captcha key
    or session id."""
    output = cluster.output()
    session_ids = {call["session_id_out"] for call in sim.calls()} - {None}
    assert session_ids
    for query in queries:
        account = query.account
        for secret in (str(account.password), str(account.captcha_api_key), *session_ids):
            assert secret not in output


def assert_every_claim_counted(queries: list[Query]) -> None:
    """Read after the clusters stopped: each task that held a query's claim said so."""
    for query in queries:
        query.refresh_from_db()
        assert query.attempts == claims_reported(query.pk) > 0


# -- the database -------------------------------------------------------------------------------


def _dsn() -> dict[str, Any]:
    db = connection.settings_dict
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "dbname": db["NAME"],
        "connect_timeout": 5,
    }


@contextmanager
def connections_refused() -> Iterator[None]:
    """The test database accepts no new connection (this test's own one stays open). The
    flag is set from the maintenance database: PostgreSQL will not set it from inside."""
    name = connection.ops.quote_name(connection.settings_dict["NAME"])
    with psycopg.connect(**{**_dsn(), "dbname": "postgres"}, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        try:
            yield
        finally:
            admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")


def terminate_other_connections() -> int:
    """What a database restart does to every client but this test: its connection is gone."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


@postgres_only
def test_queries_recover_from_a_database_restart_in_the_middle_of_their_steps(
    sim: SimControl, sim_server: SimServer, task_queue: TaskQueue, clusters: Any
) -> None:
    # 2.5 s: the restart fits in a call. Simulated, such a call lasts 40 minutes: a held
    # workflow would poison its browser long before, so the poison delay is stretched past it.
    sim.configure(
        latencies={
            "check_appointments_import": 2_500,
            "check_appointments_export": 2_500,
            "poison_delay": 10_000,
        }
    )
    cluster = clusters(workers=2, **QUICK)
    queries = start_availability_runs(["db0", "db1"])
    # Both workers are in an upstream call, their database connections idle.
    run_until(lambda: in_flight(sim, "/check_appointments") == 2)
    with connections_refused():
        assert terminate_other_connections() >= 2
        with pytest.raises(psycopg.OperationalError, match="not currently accepting"):
            psycopg.connect(**_dsn()).close()
    sim.configure(latencies={"check_appointments_import": 20, "check_appointments_export": 20})

    run_until(lambda: all_ended(queries))
    for query in queries:
        assert_complete(query, sim_server.config)
    # The two steps in flight connected again to store their answers: no step ran twice.
    assert len(sim.calls("/check_appointments")) == checks_sent(queries)
    assert sim.stats()["captcha_solves"] == len(queries)
    assert cluster.process.poll() is None, cluster.output()
    assert "crashed" not in cluster.output(), cluster.output()
    assert_no_secret_logged(cluster, queries, sim)
    cluster.stop()
    assert_every_claim_counted(queries)


@contextmanager
def database_locked() -> Iterator[None]:
    """Another process holds SQLite's write lock (a long write, a backup, a stuck tool)."""
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("COMMIT")
        holder.close()


@sqlite_only
def test_queries_wait_out_a_locked_database_file(
    sim: SimControl, sim_server: SimServer, task_queue: TaskQueue, clusters: Any
) -> None:
    sim.configure(latencies={"check_appointments_import": 300, "check_appointments_export": 300})
    cluster = clusters(workers=2, **QUICK)
    queries = start_availability_runs(["lock0", "lock1"])
    run_until(lambda: in_flight(sim, "/check_appointments") == 2)
    with database_locked():
        # The calls end upstream while nobody can write: their workers wait to store them.
        sim.wait_for(lambda: in_flight(sim, "/check_appointments") == 0)
        time.sleep(1.0)  # how long the lock lasts, not a wait for a race
    sim.configure(latencies={"check_appointments_import": 20, "check_appointments_export": 20})

    run_until(lambda: all_ended(queries))
    for query in queries:
        assert_complete(query, sim_server.config)
    # Nothing failed, so nothing was asked twice.
    assert len(sim.calls("/check_appointments")) == checks_sent(queries)
    assert "crashed" not in cluster.output(), cluster.output()
    assert_no_secret_logged(cluster, queries, sim)
    cluster.stop()
    assert_every_claim_counted(queries)


# -- the upstream -------------------------------------------------------------------------------


@pytest.fixture
def own_upstream(settings: Any) -> Iterator[SimServer]:
    """A simulator of this test's own, free to be stopped and started again."""
    server = SimServer(SimConfig(time_scale=FAST_SCALE), port=0).start()
    settings.EMODAL_API_URL = server.url
    settings.EMODAL_API_URLS = [server.url]
    yield server
    server.stop()


def test_queries_ride_out_an_upstream_that_goes_away_and_comes_back_without_sessions(
    transactional_db: Any, own_upstream: SimServer, task_queue: TaskQueue
) -> None:
    server, sim = own_upstream, SimControl(own_upstream.url)
    sim.configure(latencies={"check_appointments_import": 300, "check_appointments_export": 300})
    cluster = Cluster(server.url, workers=3, **QUICK)
    try:
        queries = start_availability_runs(["up0", "up1", "up2"])
        ids = [q.pk for q in queries]
        run_until(
            lambda: (
                Query.objects.filter(pk__in=ids, step="appointment_check").count() == 3
                and in_flight(sim, "/check_appointments") == 3
            )
        )
        server.stop()  # connections refused, the three calls in flight dropped

        def breaker() -> UpstreamBreaker | None:
            return UpstreamBreaker.objects.filter(server=server.url).first()

        errors: set[str] = set()

        def breaker_open() -> bool:
            errors.update(Query.objects.filter(pk__in=ids).values_list("waiting_for", flat=True))
            row = breaker()
            return row is not None and row.state == UpstreamBreaker.State.OPEN

        run_until(breaker_open)
        first_opened = breaker().opened_at
        # After the reset time one probe goes through, finds the server still down, and
        # the breaker opens again; meanwhile the steps wait instead of failing.
        run_until(lambda: breaker_open() and breaker().opened_at > first_opened)
        assert any("Upstream circuit open" in e for e in errors), errors
        assert not Query.objects.filter(pk__in=ids, status=Query.Status.FAILED).exists()

        history = max(call["id"] for call in server.state.calls())  # no HTTP while it is down
        server.start()  # the same address, no sessions
        run_until(lambda: all_ended(queries))
        for query in queries:
            assert_complete(query, server.config)
        row = breaker()
        assert (row.state, row.failures) == (UpstreamBreaker.State.CLOSED, 0)
        # One new login per account, for the session the restart took: nothing else.
        relogins = sorted(
            call["username"]
            for call in sim.calls("/get_session")
            if call["id"] > history and call["status"] == 200
        )
        assert relogins == sorted(str(q.account.emodal_username) for q in queries)
        stats = sim.stats()
        assert stats["captcha_solves"] == 2 * len(queries)
        assert (stats["restarts"], stats["collisions"]) == (1, 0)
        assert "crashed" not in cluster.output(), cluster.output()
        assert_no_secret_logged(cluster, queries, sim)
    finally:
        cluster.stop()
    assert_every_claim_counted(queries)
