"""Never more browsers than the upstream has (design.md invariant 9), and several upstreams."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from emodal_sim import SimConfig, SimServer
from queries_app.engine import run_query_step
from queries_app.models import Query
from queries_app.services import cancel_query, start_query
from sessions_app.models import Account, SessionEvent, SessionSlot
from sessions_app.services import BrowsersBusy, LeaseTimeout, SessionManager

from ..conftest import make_account
from ..sim import FAST_SCALE, SimControl
from ..taskqueue import run_queued_tasks
from ..threads import in_threads

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def limit(settings: Any) -> Any:
    def set_limit(n: int) -> None:
        settings.EMODAL_MAX_SESSIONS = n

    return set_limit


def kinds(account: Account) -> list[str]:
    return list(account.events.order_by("id").values_list("kind", flat=True))


def test_at_the_limit_the_least_recently_used_idle_session_is_closed_by_the_portal(
    db: Any, sim: SimControl, limit: Any
) -> None:
    limit(2)
    alice, bob, carol = (make_account(n) for n in ("alice", "bob", "carol"))
    manager = SessionManager()
    manager.ensure_session(alice)
    manager.ensure_session(bob)
    manager.ensure_session(carol)
    alice.refresh_from_db()
    assert alice.session_id is None
    assert kinds(alice)[-1] == SessionEvent.Kind.CLOSED_FOR_CAPACITY
    stats = sim.stats()
    assert stats["evictions"] == 0  # the upstream never had to evict
    assert stats["deleted"] == 1
    assert stats["active_sessions"] == 2
    assert set(
        SessionSlot.objects.exclude(account=None).values_list("account__user__username", flat=True)
    ) == {"bob", "carol"}


def test_a_session_dead_by_its_timer_is_reclaimed_first(
    db: Any, sim: SimControl, limit: Any, settings: Any
) -> None:
    settings.EMODAL_SESSION_IDLE_SECONDS = 600  # the idle heuristic, on
    limit(2)
    alice, bob, carol = (make_account(n) for n in ("alice", "bob", "carol"))
    manager = SessionManager()
    manager.ensure_session(alice)
    manager.ensure_session(bob)
    bob.refresh_from_db()
    sim.expire(session_id=bob.session_id)
    Account.objects.filter(pk=bob.pk).update(
        session_last_used_at=timezone.now()
        - timedelta(seconds=settings.EMODAL_SESSION_IDLE_SECONDS)
    )
    manager.ensure_session(carol)
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.session_id and not bob.session_id
    assert kinds(bob)[-1] == SessionEvent.Kind.EXPIRED_LOCALLY
    assert sim.stats()["deleted"] == 0


def test_a_session_in_the_middle_of_a_call_is_never_taken(
    db: Any, sim: SimControl, limit: Any
) -> None:
    limit(1)
    alice, bob = make_account("alice"), make_account("bob")
    SessionManager().ensure_session(alice)
    # Alice is mid-call: her lease is held.
    Account.objects.filter(pk=alice.pk).update(
        lease_token="in-a-call", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    with pytest.raises(LeaseTimeout, match="upstream browsers stayed in use"):
        SessionManager(wait_seconds=0.3).ensure_session(bob)
    alice.refresh_from_db()
    assert alice.session_id
    assert sim.stats()["active_sessions"] == 1
    Account.objects.filter(pk=alice.pk).update(lease_token="", lease_expires_at=None)
    SessionManager().ensure_session(bob)
    assert sim.stats()["evictions"] == 0


def test_many_accounts_never_use_more_browsers_than_the_limit(
    db: Any, sim: SimControl, limit: Any
) -> None:
    limit(3)
    sim.configure(latencies={"captcha": 100, "get_appointments": 50})
    accounts = [make_account(f"user{i}") for i in range(6)]

    def work(i: int) -> None:
        manager = SessionManager()
        for _ in range(2):
            manager.run(accounts[i], lambda api, sid: api.get_appointments(sid))

    results = in_threads(6, work)
    assert results == [None] * 6
    stats = sim.stats()
    assert stats["max_concurrent_sessions"] <= 3
    assert stats["evictions"] == 0
    assert stats["collisions"] == 0
    assert len(sim.calls("/get_appointments")) == 12


@pytest.fixture
def second_sim() -> Iterator[SimControl]:
    server = SimServer(SimConfig(time_scale=FAST_SCALE), host="127.0.0.1", port=0).start()
    yield SimControl(server.url)
    server.stop()


def test_accounts_are_balanced_across_upstreams_and_stay_there(
    db: Any, sim: SimControl, second_sim: SimControl, settings: Any
) -> None:
    settings.EMODAL_API_URLS = [sim.url, second_sim.url]
    accounts = [make_account(f"user{i}") for i in range(4)]
    manager = SessionManager()
    for account in accounts:
        manager.run(account, lambda api, sid: api.get_appointments(sid))
    servers = [Account.objects.get(pk=a.pk).upstream_url for a in accounts]
    assert sorted(servers) == sorted([sim.url, second_sim.url] * 2)
    assert sim.stats()["sessions_created"] == second_sim.stats()["sessions_created"] == 2
    for account in accounts:  # later calls stay on the same server
        manager.run(account, lambda api, sid: api.get_appointments(sid))
    assert len(sim.calls("/get_appointments")) == len(second_sim.calls("/get_appointments")) == 4


def test_staff_can_move_an_account_to_another_upstream(
    alice: Account, sim: SimControl, second_sim: SimControl, settings: Any, staff: Any
) -> None:
    settings.EMODAL_API_URLS = [sim.url, second_sim.url]
    SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    assert alice.upstream_url == sim.url
    client = Client()
    client.force_login(staff)
    url = reverse("admin:sessions_app_account_change", args=[alice.pk])
    assert second_sim.url in client.get(url).content.decode()
    client.post(
        url,
        {
            "user": str(alice.user_id),
            "emodal_username": "alice-emodal",
            "upstream_url": second_sim.url,
            "new_password": "",
            "new_captcha_api_key": "",
            "trucking_company": "K & R TRANSPORTATION LLC",
            "truck_plate": "7ABC123",
        },
    )
    alice.refresh_from_db()
    assert (alice.upstream_url, alice.session_id) == (second_sim.url, None)
    assert not SessionSlot.objects.filter(account=alice).exists()
    SessionManager().run(alice, lambda api, sid: api.get_appointments(sid))
    assert second_sim.stats()["sessions_created"] == 1


def test_a_browser_is_not_taken_from_an_account_with_work_waiting(
    db: Any, sim: SimControl, limit: Any, settings: Any, task_queue: Any
) -> None:
    limit(1)
    settings.EMODAL_SLOT_WAIT_SECONDS = 0.3
    alice, bob = make_account("alice"), make_account("bob")
    SessionManager().ensure_session(alice)
    waiting, _ = start_query(account=alice, kind="containers")  # alice's next step
    with pytest.raises(BrowsersBusy, match="upstream browsers stayed in use"):
        SessionManager().ensure_session(bob)
    alice.refresh_from_db()
    assert alice.session_id
    assert sim.stats()["deleted"] == 0
    assert not BrowsersBusy.counts_as_failure  # a query waiting for it keeps its tries
    cancel_query(query=waiting)
    SessionManager().ensure_session(bob)
    alice.refresh_from_db()
    assert alice.session_id is None
    assert sim.stats()["deleted"] == 1


def test_a_query_with_no_browser_to_be_had_does_not_take_a_worker_until_one_is_free(
    db: Any, sim: SimControl, limit: Any, settings: Any, task_queue: Any
) -> None:
    limit(1)
    alice, bob = make_account("alice"), make_account("bob")
    first, _ = start_query(account=alice, kind="containers")
    second, _ = start_query(account=bob, kind="containers")
    run_queued_tasks(
        task_queue, until=lambda: not Query.objects.filter(pk__in=[first.pk, second.pk]).live()
    )
    second.refresh_from_db()
    assert second.status == Query.Status.SUCCEEDED
    # Claimed for its one step only: never while every browser was held by alice's query.
    assert second.attempts == 1
    assert not SessionEvent.objects.filter(kind=SessionEvent.Kind.FAILED).exists()
    stats = sim.stats()
    assert stats["max_concurrent_sessions"] == 1
    assert stats["captcha_solves"] == 2
    assert stats["evictions"] == 0
    assert stats["deleted"] == 1  # alice's idle session, closed for bob


def test_a_query_waiting_for_a_browser_runs_as_soon_as_one_is_free(
    db: Any, sim: SimControl, limit: Any, settings: Any, task_queue: Any
) -> None:
    limit(1)
    settings.EMODAL_SLOT_WAIT_SECONDS = 0.2
    alice, bob = make_account("alice"), make_account("bob")
    SessionManager().ensure_session(alice)
    first, _ = start_query(account=alice, kind="containers")
    second, _ = start_query(account=bob, kind="containers")
    # A worker that took bob's query anyway (e.g. two workers chose at the same moment)
    # finds no browser and puts it back to wait.
    assert run_query_step(second.pk) == "waiting"
    second.refresh_from_db()
    assert second.retry_at is not None and second.waiting_for
    # No sweep runs here: the waiting query is woken when alice's query ends.
    run_queued_tasks(
        task_queue, until=lambda: not Query.objects.filter(pk__in=[first.pk, second.pk]).live()
    )
    second.refresh_from_db()
    assert second.status == Query.Status.SUCCEEDED
    assert second.attempts == 2  # the claim that found no browser, then its one step
    assert second.step_failures == 0
    stats = sim.stats()
    assert stats["captcha_solves"] == 2
    assert stats["evictions"] == 0
    assert stats["deleted"] == 1  # alice's idle session, closed for bob


def test_workers_reserving_a_browser_for_one_account_at_once_free_at_most_one(
    db: Any, sim: SimControl, limit: Any
) -> None:
    limit(3)
    idle = [make_account(name) for name in ("idle1", "idle2", "busy")]
    for account in idle:
        SessionManager().ensure_session(account)
    start_query(account=idle[2], kind="containers")  # its browser is not taken
    alice = make_account("alice")
    results = in_threads(6, lambda i: SessionManager().reserve_browser(alice))
    assert all(isinstance(r, bool) for r in results) and any(results), results
    assert SessionSlot.objects.filter(account=alice).count() == 1
    assert sim.stats()["deleted"] == 1  # one idle session closed for her, not one per worker
    assert [SessionManager().reserve_browser(alice) for _ in range(2)] == [True, True]


def test_a_worker_assigning_an_account_another_worker_just_assigned_keeps_that_server(
    db: Any, sim: SimControl, settings: Any, second_sim: SimControl
) -> None:
    settings.EMODAL_API_URLS = [sim.url, second_sim.url]
    alice = make_account("alice")
    stale = Account.objects.get(pk=alice.pk)  # read before the other worker assigned it
    assert SessionManager().reserve_browser(alice)
    assert alice.upstream_url == sim.url
    # Meanwhile the first server became the busier one: a fresh choice would differ.
    for name in ("bob", "carol"):
        Account.objects.filter(pk=make_account(name).pk).update(upstream_url=sim.url)
    assert SessionManager().reserve_browser(stale)
    assert stale.upstream_url == sim.url
    assert list(SessionSlot.objects.filter(account=alice).values_list("server", flat=True)) == [
        sim.url
    ]
