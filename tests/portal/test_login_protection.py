"""Brute-force protection of the portal's logins (django-axes): /accounts/login/ and the admin's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.http import HttpRequest
from django.test import Client
from django.utils import timezone

from emodal_portal.settings import client_address_settings

from ..containers.smtp import SmtpServer

pytestmark = pytest.mark.django_db

PASSWORD = "a-good-Passw0rd"
LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def erin(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("erin", password=PASSWORD, is_staff=True)


def log_in(client: Client, page: str, password: str, ip: str = "10.0.0.1", **headers: str) -> Any:
    return client.post(
        page, {"username": "erin", "password": password}, REMOTE_ADDR=ip, follow=False, **headers
    )


PROXY = "10.9.9.9"


@pytest.fixture
def behind_one_proxy(settings: Any) -> None:
    """TRUSTED_PROXY_COUNT=1: every request reaches the portal from the proxy's address, the
    client's in the X-Forwarded-For header the proxy appended to."""
    settings.TRUSTED_PROXY_COUNT = 1
    for name, value in client_address_settings(1).items():
        setattr(settings, name, value)


def through_proxy(client: Client, password: str, client_ip: str, sent: str = "") -> Any:
    """A login through the proxy from `client_ip`, which wrote `sent` in its own header."""
    forwarded = f"{sent}, {client_ip}" if sent else client_ip
    return log_in(client, "/accounts/login/", password, ip=PROXY, HTTP_X_FORWARDED_FOR=forwarded)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_repeated_failures_lock_the_login_out_and_say_to_wait(
    erin: Any, settings: Any, page: str
) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, page, "wrong").status_code == 200  # the form, with its error
    assert log_in(client, page, "wrong").status_code == 429

    refused = log_in(client, page, PASSWORD)
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.content.decode()
    assert "Please wait" in refused.content.decode()
    assert not logged_in(client)


def test_a_lockout_holds_for_both_login_pages(erin: Any, settings: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "/accounts/login/", "wrong")
    assert log_in(client, "/admin/login/", PASSWORD).status_code == 429
    assert not logged_in(client)


def test_the_lockout_is_per_username_and_address(erin: Any, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(Client(), "/accounts/login/", "wrong", ip="10.0.0.1")
    elsewhere = Client()
    assert log_in(elsewhere, "/accounts/login/", PASSWORD, ip="10.0.0.2").status_code == 302
    assert logged_in(elsewhere)


def test_the_lockout_ends_after_the_cool_off_time(erin: Any, settings: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "/accounts/login/", "wrong")
    assert log_in(client, "/accounts/login/", PASSWORD).status_code == 429
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert log_in(client, "/accounts/login/", PASSWORD).status_code == 302
    assert logged_in(client)


def test_a_success_before_the_limit_clears_the_failures(erin: Any, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(Client(), "/accounts/login/", "wrong")
    assert log_in(Client(), "/accounts/login/", PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(Client(), "/accounts/login/", "wrong")
    assert log_in(Client(), "/accounts/login/", PASSWORD).status_code == 302


def test_test_clients_still_log_in(erin: Any) -> None:
    forced = Client()
    forced.force_login(erin)
    assert forced.get("/admin/").status_code == 200
    client = Client()
    assert client.login(request=HttpRequest(), username="erin", password=PASSWORD)
    assert client.get("/admin/").status_code == 200


def test_behind_a_trusted_proxy_a_lockout_holds_one_client_address_not_everyone(
    erin: Any, settings: Any, behind_one_proxy: None
) -> None:
    attacker = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        through_proxy(attacker, "wrong", "203.0.113.7")
    assert through_proxy(attacker, PASSWORD, "203.0.113.7").status_code == 429
    # Whatever it writes in its own X-Forwarded-For, the proxy appends its real address.
    assert through_proxy(Client(), PASSWORD, "203.0.113.7", sent="198.51.100.1").status_code == 429

    user = Client()
    assert through_proxy(user, PASSWORD, "198.51.100.23").status_code == 302
    assert logged_in(user)


def test_with_no_trusted_proxy_a_spoofed_forwarded_for_header_is_ignored(
    erin: Any, settings: Any
) -> None:
    assert settings.TRUSTED_PROXY_COUNT == 0
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(
            Client(), "/accounts/login/", "wrong", ip="10.0.0.1", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}"
        )
    spoofing = log_in(
        Client(), "/accounts/login/", PASSWORD, ip="10.0.0.1", HTTP_X_FORWARDED_FOR="8.8.8.8"
    )
    assert spoofing.status_code == 429


def test_failures_from_many_addresses_lock_the_username_everywhere_but_one_address_cannot(
    erin: Any, settings: Any, behind_one_proxy: None
) -> None:
    settings.AXES_USERNAME_FAILURE_LIMIT = 8
    # One address hammering on: locked itself, it counts for AXES_FAILURE_LIMIT (5) only.
    for _ in range(20):
        through_proxy(Client(), "wrong", "203.0.113.7")
    assert through_proxy(Client(), PASSWORD, "198.51.100.23").status_code == 302

    # Three more addresses, one failure each: 5 + 3 = 8 failures against erin.
    for n in range(1, 4):
        through_proxy(Client(), "wrong", f"192.0.2.{n}")
    fresh = Client()
    refused = through_proxy(fresh, PASSWORD, "198.51.100.99")
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.content.decode()
    assert not logged_in(fresh)
    # Other usernames are not affected.
    other = fresh.post(
        "/accounts/login/",
        {"username": "someone-else", "password": "x"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.99",
    )
    assert other.status_code == 200


def test_the_configuration_is_what_the_readme_says(settings: Any) -> None:
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AXES_ENABLED
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_USERNAME_FAILURE_LIMIT == 30
    assert settings.AXES_HANDLER == "emodal_portal.login_protection.PortalAxesHandler"
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.TRUSTED_PROXY_COUNT == 0
    assert settings.AXES_IPWARE_META_PRECEDENCE_ORDER == ("REMOTE_ADDR",)


def test_the_trusted_proxy_count_sets_where_the_client_address_is_read() -> None:
    assert client_address_settings(2) == {
        "AXES_IPWARE_META_PRECEDENCE_ORDER": ("HTTP_X_FORWARDED_FOR",),
        "AXES_IPWARE_PROXY_COUNT": 1,
    }


# --- A username locked everywhere is told, once per lock, and staff lift it -----------------


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.PORTAL_URL = "https://portal.example.com"
    yield server
    server.stop()


def spread_guesses(settings: Any, addresses: range) -> None:
    """AXES_FAILURE_LIMIT failures from each address (the N10 attack: 6 x 5 = 30)."""
    for n in addresses:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            log_in(Client(), "/accounts/login/", "wrong", ip=f"192.0.2.{n}")


def lift_link(message: Any) -> str:
    found = re.search(r"https://portal\.example\.com(/admin/\S+)", message.get_content())
    assert found, message.get_content()
    return found.group(1)


@pytest.mark.django_db(transaction=True)
def test_a_username_locked_everywhere_is_told_once_per_lock_and_staff_lift_it(
    erin: Any, settings: Any, smtp: SmtpServer, django_user_model: Any
) -> None:
    erin.email = "erin@example.com"
    erin.save()
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "boss-pw")
    # Staff who may not lift a lock, and people who are not staff, are not told.
    django_user_model.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    django_user_model.objects.create_user("dora", "dora@example.com", "pw")
    assert settings.AXES_USERNAME_FAILURE_LIMIT == 30

    # One address locking itself out locks nobody else out: nobody is told.
    spread_guesses(settings, range(1))
    assert log_in(Client(), "/accounts/login/", PASSWORD, ip="198.51.100.1").status_code == 302
    assert smtp.inbox.messages == []

    spread_guesses(settings, range(1, 6))  # 6 addresses x 5 = 30: erin is locked everywhere
    assert log_in(Client(), "/accounts/login/", PASSWORD, ip="198.51.100.2").status_code == 429
    # More failures during the lock, from old and new addresses: no more e-mail. (The mail
    # goes out within the request that started the lock, so the inbox is final here.)
    spread_guesses(settings, range(5, 9))
    assert sorted(rcpt[0] for rcpt, _ in smtp.inbox.messages) == [
        "boss@example.com",
        "erin@example.com",
    ]
    told = {rcpt[0]: message for rcpt, message in smtp.inbox.messages}
    to_erin, to_boss = told["erin@example.com"], told["boss@example.com"]
    assert "your login is locked" in to_erin["Subject"]
    assert "30 failed logins in the last 15 minutes, from 6 addresses" in to_erin.get_content()
    assert "ask an administrator" in to_erin.get_content()
    assert "the login erin is locked on every address" in to_boss["Subject"]
    body = to_boss.get_content()
    assert "192.0.2.0" in body and "192.0.2.5" in body
    assert "Lift the lock-out" in body
    link = lift_link(to_boss)
    assert link == "/admin/axes/accessattempt/?username=erin"
    for message in (to_erin, to_boss):
        assert PASSWORD not in message.as_string() and "wrong" not in message.get_content()

    # Staff follow the link: the username's records, and the action that lifts the lock.
    staff = Client()
    staff.force_login(boss)
    page = staff.get(link)
    assert page.status_code == 200
    assert "Lift the lock-out" in page.content.decode()
    locked = staff.get("/admin/axes/accessattempt/?locked_everywhere=yes")
    assert b"erin" in locked.content
    one_row = AccessAttempt.objects.filter(username="erin").first()
    lifted = staff.post(
        link,
        {"action": "lift_lockouts", "_selected_action": [one_row.pk]},
        follow=True,
    )
    assert "Lifted the lock-out of 1 username (erin)" in lifted.content.decode()
    assert not AccessAttempt.objects.filter(username="erin").exists()
    erin_again = Client()
    assert log_in(erin_again, "/accounts/login/", PASSWORD, ip="198.51.100.3").status_code == 302
    assert logged_in(erin_again)

    # A new lock is a new pair of e-mails.
    spread_guesses(settings, range(6))
    assert log_in(Client(), "/accounts/login/", PASSWORD, ip="198.51.100.4").status_code == 429
    assert len(smtp.inbox.messages) == 4


@pytest.mark.django_db(transaction=True)
def test_staff_without_the_delete_permission_cannot_lift_a_lock(
    erin: Any, settings: Any, django_user_model: Any
) -> None:
    spread_guesses(settings, range(6))
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_accessattempt"))
    staff = Client()
    staff.force_login(clerk)
    page = staff.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert "lift_lockouts" not in page.content.decode()
    one_row = AccessAttempt.objects.filter(username="erin").first()
    staff.post(
        "/admin/axes/accessattempt/", {"action": "lift_lockouts", "_selected_action": [one_row.pk]}
    )
    assert AccessAttempt.objects.filter(username="erin").count() == 6
    assert log_in(Client(), "/accounts/login/", PASSWORD, ip="198.51.100.9").status_code == 429


@pytest.mark.django_db(transaction=True)
def test_a_lock_on_an_unknown_username_tells_nobody(settings: Any, smtp: SmtpServer) -> None:
    for n in range(6):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            Client().post(
                "/accounts/login/",
                {"username": "nobody", "password": "x"},
                REMOTE_ADDR=f"192.0.2.{n}",
            )
    assert smtp.inbox.messages == []
