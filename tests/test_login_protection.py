"""Brute-force protection of the portal's logins (django-axes): /accounts/login/ and the admin's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.http import HttpRequest
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "a-good-Passw0rd"
LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def erin(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("erin", password=PASSWORD, is_staff=True)


def log_in(client: Client, page: str, password: str, ip: str = "10.0.0.1") -> Any:
    return client.post(
        page, {"username": "erin", "password": password}, REMOTE_ADDR=ip, follow=False
    )


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


def test_the_configuration_is_what_the_readme_says(settings: Any) -> None:
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AXES_ENABLED
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
