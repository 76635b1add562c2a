"""What the portal answers on the web beyond its pages: no password-reset pages, a strict
Content-Security-Policy everywhere, and request bodies of bounded size."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


# -- accounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/reset/done/",
    ],
)
def test_there_are_no_password_reset_pages(client: Client, url: str) -> None:
    assert client.get(url).status_code == 404
    assert client.post(url, {"email": "alice@example.com"}).status_code == 404


def test_logging_in_out_and_changing_ones_password_still_work(
    client: Client, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user("pat", password="old-Passw0rd-x")
    assert client.get("/accounts/login/").status_code == 200
    client.force_login(user)
    assert client.get("/accounts/password_change/").status_code == 200
    changed = client.post(
        "/accounts/password_change/",
        {
            "old_password": "old-Passw0rd-x",
            "new_password1": "new-Passw0rd-y",
            "new_password2": "new-Passw0rd-y",
        },
    )
    assert changed.status_code == 302
    assert client.post("/accounts/logout/").status_code == 302
