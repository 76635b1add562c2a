"""The circuit breaker shared by all workers (`sessions_app.upstream.breaker`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account, SessionEvent, UpstreamBreaker
from sessions_app.services import SessionManager, SessionUnavailable
from sessions_app.upstream import Breaker, CircuitOpen, EModalClient, UpstreamUnavailable

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks
from ..threads import in_threads

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 3


@pytest.fixture
def api(sim: SimControl, settings: Any) -> EModalClient:
    settings.EMODAL_BREAKER_FAILURES = LIMIT
    settings.EMODAL_BREAKER_RESET_SECONDS = 60
    return EModalClient.from_settings(sim.url)


def probe(api: EModalClient) -> bool:
    """A guarded call that reaches the server and needs no session (an unknown one's 404)."""
    return api.delete_session("session_1_1")


def breaker(sim: SimControl) -> UpstreamBreaker:
    return UpstreamBreaker.objects.get(server=sim.url)


def trip(api: EModalClient, sim: SimControl) -> None:
    """LIMIT transient failures in a row: a 500 and dropped connections."""
    sim.fault("/sessions/{id}", count=1, status=500, error="Browser health check failed")
    sim.fault("/get_session", count=LIMIT - 1, mode="close")
    with pytest.raises(UpstreamUnavailable):
        probe(api)
    for _ in range(LIMIT - 1):
        with pytest.raises(UpstreamUnavailable, match="Could not reach"):
            api.get_session(username="u", password="p", captcha_api_key="k")


def let_reset_time_pass(sim: SimControl) -> None:
    UpstreamBreaker.objects.filter(server=sim.url).update(
        opened_at=timezone.now() - timedelta(seconds=61)
    )


def test_the_breaker_opens_after_n_transient_failures_in_a_row(
    api: EModalClient, sim: SimControl
) -> None:
    trip(api, sim)
    row = breaker(sim)
    assert row.state == UpstreamBreaker.State.OPEN
    assert row.failures == LIMIT
    assert row.opened_at is not None


def test_while_open_calls_fail_fast_without_reaching_the_upstream(
    api: EModalClient, sim: SimControl
) -> None:
    trip(api, sim)
    calls = len(sim.calls())
    for call in (lambda: probe(api), lambda: api.get_appointments("session_1_1")):
        with pytest.raises(CircuitOpen, match="Upstream circuit open") as caught:
            call()
        assert caught.value.retryable
    assert len(sim.calls()) == calls
    assert api.health()["status"] == "healthy"  # reachability checks bypass the breaker


def test_a_worker_trusts_a_clean_breaker_for_a_while_and_a_failure_ends_the_trust(
    sim: SimControl, settings: Any
) -> None:
    settings.EMODAL_BREAKER_FAILURES = LIMIT
    settings.EMODAL_BREAKER_CACHE_SECONDS = 60
    api = EModalClient.from_settings(sim.url)
    probe(api)  # sees the breaker closed and clean
    # Another worker opens it: this one learns of it only when its trust ends...
    UpstreamBreaker.objects.create(
        server=sim.url, state=UpstreamBreaker.State.OPEN, failures=LIMIT, opened_at=timezone.now()
    )
    probe(api)
    assert len(sim.calls("/sessions/{id}")) == 2
    # ...or at once when it sees a failure itself.
    sim.fault("/sessions/{id}", count=1, status=500)
    with pytest.raises(UpstreamUnavailable):
        probe(api)
    with pytest.raises(CircuitOpen):
        probe(api)
    assert len(sim.calls("/sessions/{id}")) == 3


def test_an_answer_resets_the_count(api: EModalClient, sim: SimControl) -> None:
    sim.fault("/sessions/{id}", count=LIMIT - 1, status=500)
    for _ in range(LIMIT - 1):
        with pytest.raises(UpstreamUnavailable):
            probe(api)
    assert breaker(sim).failures == LIMIT - 1
    probe(api)
    assert breaker(sim).failures == 0
    sim.fault("/sessions/{id}", count=LIMIT - 1, status=500)
    for _ in range(LIMIT - 1):
        with pytest.raises(UpstreamUnavailable):
            probe(api)
    assert breaker(sim).state == UpstreamBreaker.State.CLOSED


def test_validation_errors_and_rejected_logins_do_not_count(
    api: EModalClient, sim: SimControl
) -> None:
    for _ in range(LIMIT + 1):
        with pytest.raises(Exception):  # noqa: B017 - rejected, not unavailable
            api.get_session(username="u", password="wrong-password", captcha_api_key="k")
        with pytest.raises(Exception):  # noqa: B017
            api.get_appointments("session_1_1")
    assert not UpstreamBreaker.objects.filter(state=UpstreamBreaker.State.OPEN).exists()


def test_after_the_reset_time_one_probe_goes_through_and_its_success_closes_it(
    api: EModalClient, sim: SimControl
) -> None:
    trip(api, sim)
    let_reset_time_pass(sim)
    calls = len(sim.calls("/sessions/{id}"))
    assert probe(api) is False
    assert len(sim.calls("/sessions/{id}")) == calls + 1
    row = breaker(sim)
    assert (row.state, row.failures, row.opened_at) == (UpstreamBreaker.State.CLOSED, 0, None)
    probe(api)
    assert len(sim.calls("/sessions/{id}")) == calls + 2


def test_a_failed_probe_opens_it_again(api: EModalClient, sim: SimControl) -> None:
    trip(api, sim)
    let_reset_time_pass(sim)
    sim.fault("/sessions/{id}", count=1, status=500, error="still down")
    with pytest.raises(UpstreamUnavailable, match="still down"):
        probe(api)
    row = breaker(sim)
    assert row.state == UpstreamBreaker.State.OPEN
    assert row.opened_at is not None
    assert row.opened_at > timezone.now() - timedelta(seconds=5)
    calls = len(sim.calls())
    with pytest.raises(CircuitOpen, match="still down"):
        probe(api)
    assert len(sim.calls()) == calls


def test_a_probe_whose_worker_died_expires(api: EModalClient, sim: SimControl) -> None:
    trip(api, sim)
    let_reset_time_pass(sim)
    assert Breaker(sim.url, probe_seconds=600).admit()  # taken, never reported back
    with pytest.raises(CircuitOpen, match="a probe call is testing it now"):
        probe(api)
    UpstreamBreaker.objects.filter(server=sim.url).update(
        probe_expires_at=timezone.now() - timedelta(seconds=1)
    )
    probe(api)
    assert breaker(sim).state == UpstreamBreaker.State.CLOSED


def test_many_workers_after_the_reset_time_get_exactly_one_probe(
    api: EModalClient, sim: SimControl
) -> None:
    trip(api, sim)
    let_reset_time_pass(sim)
    results = in_threads(8, lambda i: Breaker(sim.url, probe_seconds=600).admit())
    tokens = [r for r in results if isinstance(r, str)]
    assert len(tokens) == 1 and tokens[0]
    assert all(isinstance(r, CircuitOpen) for r in results if r is not tokens[0])
    assert breaker(sim).state == UpstreamBreaker.State.HALF_OPEN


def test_two_threads_after_the_reset_time_send_exactly_one_call_upstream(
    api: EModalClient, sim: SimControl
) -> None:
    trip(api, sim)
    let_reset_time_pass(sim)
    calls = len(sim.calls("/sessions/{id}"))
    # The probe is slow upstream, so the other thread asks while it is in flight.
    sim.fault("/sessions/{id}", count=1, mode="delay", delay=1_500)
    results = in_threads(
        2, lambda i: EModalClient.from_settings(sim.url).delete_session("session_1_1")
    )
    assert sorted(type(r).__name__ for r in results) == ["CircuitOpen", "bool"]
    assert len(sim.calls("/sessions/{id}")) == calls + 1
    assert breaker(sim).state == UpstreamBreaker.State.CLOSED


def test_an_open_breaker_spends_no_login_and_no_captcha(
    alice: Account, sim: SimControl, settings: Any
) -> None:
    settings.EMODAL_BREAKER_FAILURES = 2
    settings.EMODAL_RETRY_ATTEMPTS = 2
    sim.fault("/get_session", count=10, status=500, error="Failed to allocate session capacity")
    with pytest.raises(SessionUnavailable, match="Failed to allocate"):
        SessionManager().ensure_session(alice)
    assert breaker(sim).state == UpstreamBreaker.State.OPEN
    calls = len(sim.calls())
    with pytest.raises(SessionUnavailable, match="Upstream circuit open") as caught:
        SessionManager().ensure_session(alice)
    assert caught.value.retryable
    assert len(sim.calls()) == calls
    assert sim.stats()["captcha_solves"] == 0
    assert not SessionEvent.objects.filter(captcha_spent=True).exists()


def test_a_query_waits_with_a_readable_reason_while_the_breaker_is_open(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.EMODAL_BREAKER_FAILURES = 2
    sim.fault("/get_session", count=2, status=500, error="Failed to allocate session capacity")
    with pytest.raises(SessionUnavailable):
        SessionManager().ensure_session(alice)
    query, _ = start_query(account=alice, kind="appointments")
    run_queued_tasks(
        task_queue,
        until=lambda: Query.objects.get(pk=query.pk).retry_at is not None,
    )
    query.refresh_from_db()
    assert query.is_live
    # Waiting for the breaker is not one of the step's tries.
    assert query.step_failures == 0
    assert query.waiting_for.startswith("Could not log account alice in to E-Modal: ")
    assert f"Upstream circuit open for {sim.url} after 2 failures in a row" in query.waiting_for
    assert "one call tries it again from " in query.waiting_for, query.waiting_for


def test_listing_sessions_is_not_guarded_an_html_500_there_says_nothing_of_the_server(
    api: EModalClient, sim: SimControl
) -> None:
    # The upstream answers GET /sessions with an HTML 500 while any one browser is dead.
    sim.fault("/sessions", count=LIMIT + 1, mode="non_json", status=500)
    for _ in range(LIMIT + 1):
        with pytest.raises(UpstreamUnavailable, match="not JSON"):
            api.list_sessions()
    assert not UpstreamBreaker.objects.filter(server=sim.url, failures__gt=0).exists()
    assert probe(api) is False  # calls still go through
