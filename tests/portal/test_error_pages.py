"""Production error pages (DEBUG off) carry the portal's look: its stylesheet, its header, a
way back; the 500 page needs no database and no login, and the CSRF failure page is one too."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client, RequestFactory

from portal.errors import server_error

PORTAL_LOOK = ('<link rel="stylesheet" href="/static/portal/base.css">', "<header>")


def assert_portal_look(html: str, heading: str) -> None:
    for part in PORTAL_LOOK:
        assert part in html, html
    assert f"<h1>{heading}</h1>" in html
    assert '<a href="/">Back to the portal</a>' in html
    assert "Traceback" not in html and "django" not in html.lower()


@pytest.fixture(autouse=True)
def _production(settings: Any) -> None:
    settings.DEBUG = False


@pytest.mark.django_db
def test_a_missing_page_is_the_portals_404(client: Client, alice: Any) -> None:
    client.force_login(alice.user)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert_portal_look(html, "Page not found")
    assert "Log out" in html  # the page knows who is logged in: the usual header


@pytest.mark.django_db
def test_a_forbidden_page_is_the_portals_403(client: Client, django_user_model: Any) -> None:
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(clerk)
    response = client.get("/admin/ops_app/operations/")  # staff without the permission
    assert response.status_code == 403
    assert_portal_look(response.content.decode(), "Not allowed")


@pytest.mark.django_db
def test_a_form_without_its_csrf_token_gets_the_portals_403() -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    html = response.content.decode()
    assert_portal_look(html, "The form could not be sent")
    assert "reload the page" in html


@pytest.mark.django_db
def test_a_crash_is_the_portals_500(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.portal.crashing_urls"
    response = Client(raise_request_exception=False).get("/crash/")
    assert response.status_code == 500
    html = response.content.decode()
    assert_portal_look(html, "Something went wrong")
    assert "a bug" not in html


def test_the_500_page_needs_no_database_and_no_login() -> None:
    # No django_db mark: any database access fails this test.
    response = server_error(RequestFactory().get("/queries/"))
    assert response.status_code == 500
    assert_portal_look(response.content.decode(), "Something went wrong")


def test_the_api_answers_its_own_errors_in_json_and_the_pages_stay_html() -> None:
    # No django_db mark: the 500 answers need no database either.
    factory = RequestFactory()
    api = server_error(factory.get("/api/v1/containers/"))
    assert api.status_code == 500 and api["Content-Type"] == "application/json"
    assert json.loads(api.content)["code"] == "server_error"
    page = server_error(factory.get("/containers/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")
