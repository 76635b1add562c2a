"""Logins failing the real way (docs/upstream-contract.md, "Login failures"): the cause read
from the 401's `LoginErrorType.X`, or no cause at all; captchas spent on failed logins bounded
per account and counted against the budgets; a flag a person sees in the admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account, SessionEvent
from sessions_app.services import (
    AccountRejected,
    CaptchaBudgetReached,
    SessionManager,
    SessionUnavailable,
    allow_logins,
    captcha_budget_frees_at,
    update_account_credentials,
)

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries

pytestmark = pytest.mark.django_db(transaction=True)


def appointments() -> Any:
    return lambda api, sid: api.get_appointments(sid)


def logins(sim: SimControl) -> int:
    return len(sim.calls("/get_session"))


def test_a_wrong_password_costs_one_login_then_none_until_the_credentials_change(
    db: Any, sim: SimControl
) -> None:
    account = make_account("dave", password="wrong-password")
    manager = SessionManager()
    with pytest.raises(AccountRejected, match="user name or password") as caught:
        manager.ensure_session(account)
    assert "INVALID_CREDENTIALS" not in str(caught.value)
    # Staff keep the upstream's detail on the account.
    account.refresh_from_db()
    assert "INVALID_CREDENTIALS" in account.credential_error
    for _ in range(3):
        with pytest.raises(AccountRejected):
            manager.run(account, appointments())
    assert logins(sim) == 1
    assert sim.stats()["captcha_solves"] == 1
    account.refresh_from_db()
    assert account.credential_state == Account.CredentialState.REJECTED
    # The solve E-Modal made before refusing the password counts against the budgets.
    assert account.events.filter(kind=SessionEvent.Kind.REJECTED, captcha_spent=True).exists()
    update_account_credentials(account=account, password="the-right-one")
    manager.run(account, appointments())
    assert logins(sim) == 2


def test_a_login_needing_a_vpn_is_rejected_after_one_attempt(db: Any, sim: SimControl) -> None:
    account = make_account("vpn-erin", emodal_username="vpn-erin")
    with pytest.raises(AccountRejected, match="VPN"):
        SessionManager().ensure_session(account)
    with pytest.raises(AccountRejected):
        SessionManager().ensure_session(account)
    assert logins(sim) == 1


def test_a_captcha_not_solved_twice_makes_the_key_suspect(db: Any, sim: SimControl) -> None:
    account = make_account("fay", captcha_api_key="unsolvable-captcha-key")
    manager = SessionManager()
    with pytest.raises(AccountRejected, match="key may be wrong or out of credit") as caught:
        manager.ensure_session(account)  # tried once more, then flagged
    assert "until someone checks the account" in str(caught.value)
    account.refresh_from_db()
    assert "captcha API key may be invalid" in account.credential_error
    with pytest.raises(AccountRejected):
        manager.ensure_session(account)
    assert logins(sim) == 2
    account.refresh_from_db()
    assert account.credential_state == Account.CredentialState.KEY_SUSPECT
    assert account.login_failures == 2
    spent = account.events.filter(kind=SessionEvent.Kind.FAILED, captcha_spent=True)
    assert spent.count() == 2

    # A person checked the key: logins may spend again (and fail again, twice at most).
    assert allow_logins(account=account)
    with pytest.raises(AccountRejected):
        manager.ensure_session(account)
    assert logins(sim) == 4


@pytest.mark.parametrize(
    ("overrides", "console"),
    [
        ({"emodal_username": "unknown-gina"}, True),  # LoginErrorType.UNKNOWN_ERROR
        ({"emodal_username": "dashboard-gina"}, True),  # not on the dashboard, no details
        ({"password": "wrong-password"}, False),  # no console: no cause at all
    ],
)
def test_logins_failing_for_an_unknown_reason_spend_two_captchas_at_most(
    db: Any, sim: SimControl, task_queue: TaskQueue, overrides: dict[str, str], console: bool
) -> None:
    sim.configure(login_console=console)
    account = make_account("gina", **overrides)
    # Several queries, each step tried three times: the account's count holds across them.
    for kind in ("appointments", "containers"):
        query = run_through_retries(start_query(account=account, kind=kind)[0], task_queue)
        assert query.status == Query.Status.FAILED
    assert logins(sim) == 2
    account.refresh_from_db()
    assert account.credential_state == Account.CredentialState.LOGIN_FAILING
    assert "try the E-Modal login by hand" in account.credential_error
    assert "logins to E-Modal kept failing" in query.error


def test_without_a_console_a_wrong_password_is_not_taken_for_a_verdict(
    db: Any, sim: SimControl
) -> None:
    sim.configure(login_console=False)
    account = make_account("hal", password="wrong-password")
    with pytest.raises(AccountRejected):
        SessionManager().ensure_session(account)
    account.refresh_from_db()
    # The upstream named no cause: the account waits for a person, not for new credentials.
    assert account.credential_state == Account.CredentialState.LOGIN_FAILING


def test_a_login_that_works_resets_the_count(db: Any, sim: SimControl) -> None:
    account = make_account("ida", captcha_api_key="flaky-captcha-key")
    SessionManager().ensure_session(account)  # NETWORK_ERROR, then a login that works
    account.refresh_from_db()
    assert logins(sim) == 2
    assert account.credential_state == Account.CredentialState.WORKING
    assert account.login_failures == 0


def test_failed_logins_count_against_the_captcha_budget(
    db: Any, sim: SimControl, settings: Any
) -> None:
    settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = 1
    settings.EMODAL_LOGIN_FAILURE_LIMIT = 5
    account = make_account("jo", emodal_username="unknown-jo")
    with pytest.raises(CaptchaBudgetReached):
        SessionManager().ensure_session(account)
    # The first failed login spent the hour's one captcha: no second attempt was made.
    assert logins(sim) == 1
    assert captcha_budget_frees_at(account=account) is not None


def test_a_server_error_at_login_is_not_counted_as_a_spent_captcha(
    alice: Account, sim: SimControl
) -> None:
    sim.fault("/get_session", count=5, status=500, error="Failed to allocate session capacity")
    with pytest.raises(SessionUnavailable):
        SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    assert alice.login_failures == 0
    assert alice.credential_state == Account.CredentialState.UNKNOWN
    assert not alice.events.filter(captcha_spent=True).exists()


def test_accounts_needing_a_person_show_in_the_admin_and_can_be_allowed_again(
    db: Any, sim: SimControl, django_user_model: Any
) -> None:
    account = make_account("kim", captcha_api_key="unsolvable-captcha-key")
    fine = make_account("lee")
    with pytest.raises(AccountRejected):
        SessionManager().ensure_session(account)
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    changelist = reverse("admin:sessions_app_account_changelist")
    page = client.get(changelist, {"attention": "yes"}).content.decode()
    assert "Captcha key suspect" in page and "kim" in page
    assert ">lee<" not in page and str(fine) not in page.split("result_list")[-1]
    response = client.post(
        changelist,
        {"action": "allow_logins_again", "_selected_action": [account.pk]},
        follow=True,
    )
    assert "Logins allowed again for 1 account." in response.content.decode()
    account.refresh_from_db()
    assert account.credential_state == Account.CredentialState.UNKNOWN


def test_new_credentials_saved_from_an_older_object_leave_the_lease_alone(
    db: Any, sim: SimControl
) -> None:
    account = make_account("gus", password="wrong-password")
    manager = SessionManager(wait_seconds=2)
    with manager.lease.hold(account):
        account.refresh_from_db()  # read while the lease is held, as a login does
    assert account.lease_token  # the object still says "held"
    update_account_credentials(account=account, password="the-right-one")
    stored = Account.objects.get(pk=account.pk)
    assert stored.lease_token == "" and str(stored.password) == "the-right-one"
    assert manager.ensure_session(stored)  # not kept waiting by a lease nobody holds
