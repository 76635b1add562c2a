"""SessionManager invariants (design.md 1-6) against the simulator over real HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from sessions_app.models import Account, SessionEvent
from sessions_app.services import (
    AccountIncomplete,
    AccountRejected,
    LeaseTimeout,
    SessionManager,
    SessionUnavailable,
    update_account_credentials,
)
from sessions_app.upstream import EModalClient, SessionGone, UpstreamRejected

from ..conftest import make_account
from ..sim import SimControl
from ..threads import in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def kinds(account: Account) -> list[str]:
    return list(account.events.order_by("id").values_list("kind", flat=True))


def appointments() -> Any:
    """An upstream call that needs nothing but a session."""
    return lambda api, sid: api.get_appointments(sid)


def test_first_use_creates_a_session_and_stores_it(alice: Account, sim: SimControl) -> None:
    session_id = SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    assert alice.session_id == session_id
    assert alice.credential_state == Account.CredentialState.WORKING
    assert kinds(alice) == [SessionEvent.Kind.CREATED]
    assert alice.events.get().captcha_spent
    assert sim.stats()["captcha_solves"] == 1


def test_stored_live_session_is_reused_without_an_upstream_call(
    alice: Account, sim: SimControl
) -> None:
    manager = SessionManager()
    first = manager.ensure_session(alice)
    calls_before = len(sim.calls())
    assert manager.ensure_session(alice) == first
    assert len(sim.calls()) == calls_before
    assert kinds(alice)[-1] == SessionEvent.Kind.REUSED_STORED


def test_a_session_the_upstream_holds_is_adopted_without_a_captcha(
    alice: Account, sim: SimControl
) -> None:
    held = EModalClient(sim.url).get_session(
        username="alice-emodal", password="alice-password", captcha_api_key="alice-captcha-key"
    )
    assert SessionManager().ensure_session(alice) == held.session_id
    assert sim.stats()["captcha_solves"] == 1  # only the one made above
    assert kinds(alice) == [SessionEvent.Kind.REUSED_UPSTREAM]
    assert len(sim.calls("/get_session")) == 1


def test_with_the_idle_heuristic_on_an_idle_session_is_replaced_without_a_call_with_it(
    alice: Account, sim: SimControl, settings: Any
) -> None:
    settings.EMODAL_SESSION_IDLE_SECONDS = 600
    manager = SessionManager()
    old = manager.ensure_session(alice)
    Account.objects.filter(pk=alice.pk).update(
        session_last_used_at=timezone.now()
        - timedelta(seconds=settings.EMODAL_SESSION_IDLE_SECONDS)
    )
    sim.expire(session_id=old)
    new = manager.run(alice, appointments())
    assert new != old
    assert not [c for c in sim.calls() if c["session_id"] == old and c["endpoint"] != "/sessions"]
    assert SessionEvent.Kind.EXPIRED_LOCALLY in kinds(alice)


def test_by_default_a_session_is_never_assumed_dead_by_time(
    alice: Account, sim: SimControl
) -> None:
    manager = SessionManager()
    session_id = manager.ensure_session(alice)
    Account.objects.filter(pk=alice.pk).update(
        session_last_used_at=timezone.now() - timedelta(days=3)
    )
    calls = len(sim.calls())
    manager.run(alice, appointments())
    # Straight to the call with the stored session: no listing, no login.
    assert [c["endpoint"] for c in sim.calls()[calls:]] == ["/get_appointments"]
    assert sim.calls()[-1]["session_id"] == session_id


def test_session_deleted_upstream_mid_use_is_replaced_once_and_the_call_retried(
    alice: Account, sim: SimControl
) -> None:
    manager = SessionManager()
    old = manager.ensure_session(alice)
    sim.delete(old)
    result = manager.run(alice, appointments())
    assert result["selected_count"] >= 0
    assert sim.stats()["captcha_solves"] == 2
    booking_calls = sim.calls("/get_appointments")
    assert [c["outcome"] for c in booking_calls] == ["session_gone", "ok"]
    assert kinds(alice).count(SessionEvent.Kind.REPLACED) == 1


def test_a_second_session_gone_is_a_real_failure(alice: Account, sim: SimControl) -> None:
    manager = SessionManager()
    manager.ensure_session(alice)
    sim.fault(
        "/get_appointments",
        count=2,
        status=400,
        error="Missing required fields: username, password, captcha_api_key (or valid session_id)",
    )
    with pytest.raises(SessionGone):
        manager.run(alice, appointments())
    assert len(sim.calls("/get_appointments")) == 2
    assert kinds(alice).count(SessionEvent.Kind.REPLACED) == 1


def test_validation_400_causes_no_relogin(alice: Account, sim: SimControl) -> None:
    manager = SessionManager()
    manager.ensure_session(alice)
    with pytest.raises(UpstreamRejected):
        manager.run(alice, lambda api, sid: api.get_container_timeline(sid, container_id=""))
    assert sim.stats()["captcha_solves"] == 1
    assert len(sim.calls("/get_session")) == 1


def test_successful_call_bumps_last_used(alice: Account, sim: SimControl) -> None:
    manager = SessionManager()
    manager.ensure_session(alice)
    alice.refresh_from_db()
    before = alice.session_last_used_at
    manager.run(alice, appointments())
    alice.refresh_from_db()
    assert alice.session_last_used_at > before
    assert alice.lease_token == ""  # released in the same statement


def test_calls_are_counted_on_the_account_not_recorded_one_event_each(
    alice: Account, sim: SimControl
) -> None:
    manager = SessionManager()
    for _ in range(3):
        manager.run(alice, appointments())
    alice.refresh_from_db()
    assert alice.session_uses == 3
    assert kinds(alice) == [SessionEvent.Kind.CREATED]
    sim.delete(str(alice.session_id))  # the next call finds it gone: a new session
    manager.run(alice, appointments())
    alice.refresh_from_db()
    assert alice.session_uses == 1
    assert kinds(alice)[-2:] == [SessionEvent.Kind.REPLACED, SessionEvent.Kind.CREATED]


@pytest.mark.parametrize(
    ("overrides", "spent"),
    [({"password": "wrong-password"}, 1), ({"emodal_username": "vpn-dave"}, 0)],
)
def test_rejected_credentials_stop_the_spending_until_edited(
    db: Any, sim: SimControl, overrides: dict[str, str], spent: int
) -> None:
    account = make_account("dave", **overrides)
    manager = SessionManager()
    with pytest.raises(
        AccountRejected, match="No login is tried until the credentials are corrected"
    ):
        manager.ensure_session(account)
    for _ in range(3):
        with pytest.raises(AccountRejected):
            manager.run(account, appointments())
    assert len(sim.calls("/get_session")) == 1
    assert sim.stats()["captcha_solves"] == spent
    account.refresh_from_db()
    assert account.credential_state == Account.CredentialState.REJECTED
    fixed = {"password": "right"} if "password" in overrides else {"emodal_username": "dave"}
    update_account_credentials(account=account, **fixed)
    manager.run(account, appointments())
    assert len(sim.calls("/get_session")) == 2


def test_new_credentials_drop_the_old_session(alice: Account, sim: SimControl) -> None:
    SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    changed = update_account_credentials(account=alice, password="new-password")
    assert changed == ["password"]
    alice.refresh_from_db()
    assert alice.session_id is None
    assert alice.password == "new-password"


def test_unchanged_credentials_keep_the_session(alice: Account, sim: SimControl) -> None:
    SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    assert update_account_credentials(account=alice, password="alice-password") == []
    alice.refresh_from_db()
    assert alice.session_id is not None


def test_transient_login_failure_is_retried_a_bounded_number_of_times(
    db: Any, sim: SimControl
) -> None:
    account = make_account("erin", captcha_api_key="flaky-captcha-key")
    SessionManager().ensure_session(account)  # first attempt fails, the second succeeds
    assert len(sim.calls("/get_session")) == 2
    assert kinds(account) == [SessionEvent.Kind.FAILED, SessionEvent.Kind.CREATED]


def test_upstream_down_fails_with_a_readable_reason(alice: Account, sim: SimControl) -> None:
    sim.fault("/get_session", count=5, status=500, error="Failed to allocate session capacity")
    with pytest.raises(SessionUnavailable, match="Failed to allocate session capacity"):
        SessionManager().ensure_session(alice)
    assert len(sim.calls("/get_session")) == 2
    alice.refresh_from_db()
    assert alice.credential_state == Account.CredentialState.UNKNOWN


def test_incomplete_account_is_refused_before_any_call(db: Any, sim: SimControl) -> None:
    account = make_account("frank", captcha_api_key="")
    with pytest.raises(AccountIncomplete):
        SessionManager().ensure_session(account)
    assert sim.calls() == []


def test_force_refresh_closes_the_old_session_and_creates_a_new_one(
    alice: Account, sim: SimControl
) -> None:
    manager = SessionManager()
    old = manager.ensure_session(alice)
    new = manager.refresh_session(alice)
    assert new != old
    assert [c["session_id"] for c in sim.calls() if c["endpoint"].startswith("/sessions/")] == [old]
    assert sim.stats()["captcha_solves"] == 2
    assert SessionEvent.Kind.REFRESH_FORCED in kinds(alice)


def test_drop_session_closes_it_upstream(alice: Account, sim: SimControl) -> None:
    manager = SessionManager()
    manager.ensure_session(alice)
    assert manager.drop_session(alice) is True
    alice.refresh_from_db()
    assert alice.session_id is None
    assert sim.stats()["active_sessions"] == 0
    assert manager.drop_session(alice) is False


def test_run_refuses_to_hold_a_transaction_across_an_upstream_call(
    alice: Account, sim: SimControl
) -> None:
    with transaction.atomic(), pytest.raises(RuntimeError, match="inside a transaction"):
        SessionManager().run(alice, appointments())
    assert sim.calls() == []


def test_a_lease_left_by_a_dead_worker_expires(alice: Account, sim: SimControl) -> None:
    # A worker died holding the lease: its token stays, with an expiry a moment away.
    Account.objects.filter(pk=alice.pk).update(
        lease_token="dead-worker", lease_expires_at=timezone.now() + timedelta(seconds=0.5)
    )
    manager = SessionManager(wait_seconds=10)
    assert manager.ensure_session(alice)
    alice.refresh_from_db()
    assert alice.lease_token == ""


def test_a_live_lease_makes_others_wait_until_the_deadline(alice: Account, sim: SimControl) -> None:
    Account.objects.filter(pk=alice.pk).update(
        lease_token="busy-worker", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    with pytest.raises(LeaseTimeout, match="stayed busy"):
        SessionManager(wait_seconds=0.3).ensure_session(alice)
    assert sim.calls() == []


def test_concurrent_requests_for_one_account_spend_one_captcha(
    alice: Account, sim: SimControl
) -> None:
    sim.configure(latencies={"captcha": 300})  # 0.3 s: every thread arrives mid-login
    results = in_threads(8, lambda i: SessionManager().run(alice, appointments()))
    assert all(isinstance(r, dict) for r in results), results
    stats = sim.stats()
    assert stats["captcha_solves"] == 1
    assert stats["collisions"] == 0
    assert len(sim.calls("/get_appointments")) == 8


def test_calls_on_one_session_never_overlap(alice: Account, sim: SimControl) -> None:
    sim.configure(latencies={"booking_number": 50})
    in_threads(6, lambda i: SessionManager().run(alice, appointments()))
    calls = sorted(sim.calls("/get_appointments"), key=lambda c: c["start"])
    assert len(calls) == 6
    for earlier, later in zip(calls, calls[1:], strict=False):
        assert earlier["end"] <= later["start"]
    assert sim.stats()["collisions"] == 0


def test_eight_accounts_log_in_in_parallel(db: Any, sim: SimControl) -> None:
    # 2 s at the test scale: long enough for eight threads to start on a loaded machine.
    sim.configure(latencies={"captcha": 2_000})
    accounts = [make_account(f"user{i}") for i in range(8)]
    results = in_threads(8, lambda i: SessionManager().ensure_session(accounts[i]))
    assert all(isinstance(r, str) for r in results), results
    assert sim.stats()["captcha_solves"] == 8
    logins = sim.calls("/get_session")
    # In parallel, not one after another: every login started before the first one ended.
    assert max(c["start"] for c in logins) < min(c["end"] for c in logins)
