"""What the portal answers on the web beyond its pages: no password-reset pages, a strict
Content-Security-Policy everywhere, and request bodies of bounded size."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import reverse

from queries_app.models import ContainerRow, Query
from sessions_app.models import Account, SessionEvent

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


# -- Content-Security-Policy ---------------------------------------------------------------------

STRICT_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def policy(response: Any) -> dict[str, str]:
    directives = [d.strip() for d in response["Content-Security-Policy"].split(";") if d.strip()]
    return {name: value for name, _, value in (d.partition(" ") for d in directives)}


class InlineCode(HTMLParser):
    """Scripts without a src, <style> blocks, style="…" and on…= attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts = self.style_blocks = self.style_attributes = self.handlers = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        self.scripts += tag == "script" and "src" not in names
        self.style_blocks += tag == "style"
        self.style_attributes += "style" in names
        self.handlers += any(name.startswith("on") for name in names)

    def counts(self) -> dict[str, int]:
        return {
            "scripts": self.scripts,
            "style_blocks": self.style_blocks,
            "style_attributes": self.style_attributes,
            "handlers": self.handlers,
        }


def inline_code(response: Any) -> InlineCode:
    parser = InlineCode()
    parser.feed(response.content.decode())
    return parser


@pytest.fixture
def pages(alice: Account, settings: Any, tmp_path: Any) -> list[str]:
    """The portal's own pages, with a running query that has results."""
    query = Query.objects.create(account=alice, kind="containers", status=Query.Status.RUNNING)
    ContainerRow.objects.create(query=query, container_number="MSCU1234567", raw={})
    return [reverse("queries:list"), reverse("queries:detail", args=[query.pk])]


def test_the_portals_pages_carry_the_strict_policy_and_have_no_inline_code(
    client: Client, alice: Account, pages: list[str]
) -> None:
    anonymous = client.get(reverse("login"))
    assert policy(anonymous) == STRICT_POLICY
    assert set(inline_code(anonymous).counts().values()) == {0}
    client.force_login(alice.user)
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200
        assert policy(response) == STRICT_POLICY, url
        assert set(inline_code(response).counts().values()) == {0}, url


def admin_pages(client: Client) -> list[str]:
    """Every changelist, add page and (for one stored object) change page of the admin."""
    urls = []
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        urls.append(reverse("admin:{}_{}_add".format(*info)))
        obj = model_admin.get_queryset(RequestFactory().get("/")).first()
        if obj is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
    return urls


def test_the_admin_has_no_inline_code_and_carries_the_strict_policy_too(
    client: Client, staff: Any, pages: list[str]
) -> None:
    client.force_login(staff)
    SessionEvent.objects.create(account=Account.objects.get(), kind=SessionEvent.Kind.DROPPED)
    opened = 0
    for url in [reverse("admin:index"), *admin_pages(client)]:
        response = client.get(url)
        if response.status_code == 403:  # an add page the model refuses
            continue
        assert response.status_code == 200, url
        opened += 1
        assert policy(response) == STRICT_POLICY, url
        found = inline_code(response).counts()
        assert set(found.values()) == {0}, (url, found)
    assert opened > 20


def test_error_pages_carry_the_policy(client: Client, settings: Any) -> None:
    settings.DEBUG = False
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert policy(missing) == STRICT_POLICY


# -- request bodies ------------------------------------------------------------------------------


def test_the_largest_legitimate_start_form_is_read_and_answered_by_the_form(
    client: Client, alice: Account
) -> None:
    numbers = " ".join(f"MSCU{i:07d}" for i in range(1000))  # 1 000 containers a list
    client.force_login(alice.user)
    response = client.post(
        reverse("queries:start"),
        {"kind": "bulk_info", "import_containers": numbers, "export_containers": numbers},
    )
    assert response.status_code == 200  # the form again, with its own verdict
    assert "containers at once" in response.content.decode()


def test_a_too_large_post_gets_a_readable_400_page_not_a_500(
    client: Client, alice: Account, settings: Any
) -> None:
    settings.DEBUG = False
    client.force_login(alice.user)
    response = client.post(
        reverse("queries:start"),
        {"kind": "bulk_info", "import_containers": "MSCU1234567 " * 30_000},  # ~360 KB
    )
    assert response.status_code == 400
    assert "The request could not be read" in response.content.decode()
    assert policy(response) == STRICT_POLICY
    assert not Query.objects.exists()
