"""The hourly captcha budgets: per account and for the whole portal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from sessions_app.models import Account, SessionEvent
from sessions_app.services import (
    CaptchaBudgetReached,
    SessionManager,
    captcha_budget_frees_at,
)

from ..sim import SimControl

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def budgets(settings: Any) -> Any:
    settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = 2
    settings.EMODAL_CAPTCHA_BUDGET_PER_HOUR = 5
    return settings


def solved(account: Account, minutes_ago: float) -> SessionEvent:
    """A captcha solve recorded `minutes_ago` (as the SessionManager records one)."""
    return SessionEvent.objects.create(
        account=account,
        kind=SessionEvent.Kind.CREATED,
        captcha_spent=True,
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_past_the_account_budget_no_session_is_created_and_the_reason_says_when(
    alice: Account, sim: SimControl, budgets: Any
) -> None:
    manager = SessionManager()
    manager.refresh_session(alice)
    manager.refresh_session(alice)
    assert sim.stats()["captcha_solves"] == 2
    first = alice.events.captcha_spent().order_by("created_at").first()
    logins = len(sim.calls("/get_session"))

    with pytest.raises(CaptchaBudgetReached) as caught:
        manager.refresh_session(alice)

    frees_at = timezone.localtime(first.created_at + timedelta(hours=1))
    assert str(caught.value) == (
        "Captcha budget reached for account alice: 2 solves in the last hour "
        "(EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR); no new session before "
        f"{frees_at:%H:%M:%S}."
    )
    assert caught.value.retryable
    assert len(sim.calls("/get_session")) == logins
    assert sim.stats()["captcha_solves"] == 2
    assert alice.events.order_by("-id").first().kind == SessionEvent.Kind.FAILED


def test_a_live_session_is_still_reused_past_the_budget(
    alice: Account, sim: SimControl, budgets: Any
) -> None:
    manager = SessionManager()
    session_id = manager.ensure_session(alice)
    solved(alice, minutes_ago=1)
    assert manager.ensure_session(alice) == session_id


def test_the_budget_frees_up_an_hour_after_the_oldest_counted_solve(
    alice: Account, sim: SimControl, budgets: Any
) -> None:
    oldest_counted = solved(alice, minutes_ago=50)
    recent = solved(alice, minutes_ago=10)
    solved(alice, minutes_ago=70)  # outside the hour: not counted
    assert captcha_budget_frees_at(account=alice) == oldest_counted.created_at + timedelta(hours=1)
    with pytest.raises(CaptchaBudgetReached):
        SessionManager().ensure_session(alice)
    SessionEvent.objects.filter(pk=recent.pk).update(
        created_at=timezone.now() - timedelta(minutes=61)
    )
    assert captcha_budget_frees_at(account=alice) is None
    assert SessionManager().ensure_session(alice)


def test_past_the_portal_budget_no_account_gets_a_new_session(
    alice: Account, bob: Account, sim: SimControl, budgets: Any
) -> None:
    for minutes in (5, 15, 25, 35):
        solved(bob, minutes_ago=minutes)  # past bob's own budget, within the portal's
    solved(alice, minutes_ago=45)
    with pytest.raises(CaptchaBudgetReached, match="Captcha budget reached for the portal: 5"):
        SessionManager().ensure_session(alice)
    assert sim.calls("/get_session") == []


def test_a_budget_of_zero_is_off(alice: Account, sim: SimControl, budgets: Any) -> None:
    budgets.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = 0
    for minutes in (1, 2, 3):
        solved(alice, minutes_ago=minutes)
    assert SessionManager().ensure_session(alice)


def test_the_admin_account_list_shows_a_reached_budget(
    alice: Account, bob: Account, staff: Any, budgets: Any
) -> None:
    solved(alice, minutes_ago=5)
    solved(alice, minutes_ago=6)
    solved(bob, minutes_ago=5)
    solved(bob, minutes_ago=90)
    client = Client()
    client.force_login(staff)
    html = client.get(reverse("admin:sessions_app_account_changelist")).content.decode()
    assert '<td class="field-captcha_solves_24h">2 (budget reached)</td>' in html
    assert '<td class="field-captcha_solves_24h">2</td>' in html  # bob: one in the hour

    budgets.EMODAL_CAPTCHA_BUDGET_PER_HOUR = 3  # alice 2 + bob 1 in the hour
    html = client.get(reverse("admin:sessions_app_account_changelist")).content.decode()
    assert '<td class="field-captcha_solves_24h">2 (portal budget reached)</td>' in html
