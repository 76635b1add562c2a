"""An account whose updates stopped does not look healthy: the board and the alert e-mails open
with a banner in a dispatcher's words for each stop reason (what stopped, since when, why, who
can fix it, how old the data under it is), never a code or a command; staff keep the detail;
the failed run and the stop are alerted by default."""

from __future__ import annotations

from datetime import datetime
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from containers_app.models import Container
from notifications.models import AlertPreference
from queries_app.events import EventType
from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account
from sessions_app.services.logins import stop_logins

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks, run_through_retries
from .smtp import SmtpServer, text_and_html

BOARD = reverse("containers:board")
CONTACT = "Dana in operations (ops@example.com)"
SINCE = datetime(2026, 12, 7, 15, 30, tzinfo=ZoneInfo("UTC"))
SEEN = datetime(2026, 12, 6, 14, 5, tzinfo=ZoneInfo("UTC"))
# What a dispatcher must never read: upstream codes, state names, commands, admin paths.
NEVER_SHOWN = (
    "LoginErrorType",
    "INVALID_CREDENTIALS",
    "key_suspect",
    "login_failing",
    "manage.py",
    "Admin ›",
    "TRUCK_PLATE",
)

# (how the stop is made, what the banner says about it, what the contact is asked to do)
STOPS = {
    "rejected": (
        "E-Modal refused the account's user name or password",
        "enter the account's new E-Modal user name and password",
    ),
    "key_suspect": (
        "captcha service's key may be wrong or out of credit",
        "check the account and allow its logins again",
    ),
    "login_failing": (
        "ogins to E-Modal kept failing for a reason E-Modal did not give",
        "check the account and allow its logins again",
    ),
    "field_refused": (
        "E-Modal's appointment page does not list the account's trucking company",
        "correct the account's trucking company",
    ),
}
STAFF_DETAIL = {
    "rejected": "E-Modal rejected the username or password (LoginErrorType.INVALID_CREDENTIALS)",
    "key_suspect": "the captcha was not solved in 2 logins in a row (ERROR_CAPTCHA_UNSOLVABLE): "
    "the captcha API key may be invalid or out of balance",
    "login_failing": "2 logins in a row failed for a reason E-Modal did not name (last: HTTP "
    "401 with no LoginErrorType); try the E-Modal login by hand",
    "field_refused": "E-Modal does not list the account's trucking company “KR Cartage”; ask "
    "staff to correct it. E-Modal lists: California Cartage Express",
}


def stop(account: Account, reason: str) -> None:
    if reason == "field_refused":
        Account.objects.filter(pk=account.pk).update(
            appointment_error=STAFF_DETAIL[reason], appointment_error_at=SINCE
        )
    else:
        stop_logins(account, reason, STAFF_DETAIL[reason])
        Account.objects.filter(pk=account.pk).update(logins_stopped_at=SINCE)


def local(moment: datetime) -> str:
    return timezone.localtime(moment, ZoneInfo(settings.TIME_ZONE)).strftime("%Y-%m-%d %H:%M")


def board_html(user: Any) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(BOARD)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def contact(settings: Any) -> str:
    settings.PORTAL_STAFF_CONTACT = CONTACT
    return CONTACT


@pytest.mark.django_db
@pytest.mark.parametrize("reason", list(STOPS))
def test_the_board_opens_with_a_banner_for_each_stop_reason(
    reason: str, contact: str, django_user_model: Any
) -> None:
    account = make_account("nina")
    Container.objects.create(account=account, container_number="MSCU1234567", sheet_seen_at=SEEN)
    assert "account-stopped" not in board_html(account.user)  # healthy: no banner

    stop(account, reason)
    html = board_html(account.user)
    raw = html.split('class="account-stopped', 1)[1].split("</div>", 1)[0]
    banner = " ".join(unescape(raw).split())
    words, fix = STOPS[reason]
    what = "Appointment checks" if reason == "field_refused" else "Updates"
    assert f"{what} have stopped since" in banner and local(SINCE) in banner
    assert words in banner
    assert f"Ask {contact} to {fix}." in banner
    assert f"as of {local(SEEN)}" in banner.replace("Sun ", "")
    for text in NEVER_SHOWN:
        assert text not in html, text

    # Staff who see every account's board read which account, and the stored detail.
    staff = django_user_model.objects.create_user("sid", is_staff=True, is_superuser=True)
    staff_html = " ".join(unescape(board_html(staff)).split())
    assert "for account nina have stopped" in staff_html
    assert STAFF_DETAIL[reason] in staff_html


@pytest.mark.django_db(transaction=True)
def test_a_rejected_password_fails_the_run_and_its_mail_and_board_say_so_in_words(
    sim: SimControl, task_queue: TaskQueue, smtp: SmtpServer, contact: str
) -> None:
    # No alert settings saved: the failed run and the stop are on by default.
    rita = make_account("rita", password="wrong-password")
    rita.user.email = "rita@example.com"
    rita.user.save()
    assert not AlertPreference.objects.exists()
    query = run_through_retries(start_query(account=rita, kind="containers")[0], task_queue)
    run_queued_tasks(task_queue, until=lambda: task_queue.size() == 0)
    assert query.status == Query.Status.FAILED
    for text in NEVER_SHOWN:
        assert text not in query.error, text

    [message] = smtp.inbox.wait_for(1)
    text, html = text_and_html(message)
    opening = text.split("\n", 3)[1]
    assert opening.startswith("Updates for account rita have stopped since")
    assert "E-Modal refused the account's user name or password" in opening
    assert f"Ask {contact} to enter the account's new E-Modal user name and password." in opening
    assert "No update has come through yet." in text
    assert "refused the account&#x27;s user name or password" in html
    for part in (text, html):
        for never in NEVER_SHOWN:
            assert never not in part, never

    assert "Updates have stopped since" in board_html(rita.user)


def test_new_alert_settings_hear_of_failed_runs_and_rejected_credentials() -> None:
    preference = AlertPreference.defaults_for(None)
    assert EventType.QUERY_FAILED in preference.events
    assert EventType.CREDENTIALS_REJECTED in preference.events
