"""Bad input is a 400 in the API's one shape or a 404 / form error on a page, never a 500 with
a traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from api_app.parsers import MAX_DEPTH
from sessions_app.models import Account

from .conftest import token_for

pytestmark = pytest.mark.django_db

BIG = "99999999999999999999999"


def bearer(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == status and body["code"] == code and body["message"], body
    return body


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert logged == [], [r.getMessage() for r in logged]


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/queries/?account={BIG}",
        f"/api/v1/containers/MSCU1234565/?account={BIG}",
        f"/api/v1/containers/?account={BIG}",
        "/api/v1/queries/?account=-1",
        "/api/v1/queries/?account=１２",  # full-width digits
        f"/api/v1/queries/{BIG}/",
        f"/api/v1/queries/{BIG}/containers/",
        f"/api/v1/webhooks/{BIG}/deliveries/",
    ],
)
def test_an_id_no_row_can_have_is_a_400(
    alice: Account, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = error_of(bearer(token_for(alice.user)).get(path), 400, "invalid")
    assert "is not an id" in body["message"] or "account" in body.get("fields", {})
    no_tracebacks(caplog)


def test_an_oversized_account_in_a_start_request_is_a_400(
    alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    response = bearer(token_for(alice.user)).post(
        "/api/v1/queries/",
        data=f'{{"kind": "containers", "account": {BIG}}}',
        content_type="application/json",
    )
    assert "account" in error_of(response, 400, "invalid")["fields"]
    no_tracebacks(caplog)


@pytest.mark.parametrize("depth", [50_000, MAX_DEPTH + 1])
def test_a_body_nested_too_deep_is_a_parse_error(
    alice: Account, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = "[" * depth + "]" * depth
    response = bearer(token_for(alice.user)).post(
        "/api/v1/queries/", data=body, content_type="application/json"
    )
    assert (
        f"nested more than {MAX_DEPTH} levels" in error_of(response, 400, "parse_error")["message"]
    )
    no_tracebacks(caplog)


def test_brackets_inside_text_do_not_count_and_ordinary_bodies_parse(alice: Account) -> None:
    client = bearer(token_for(alice.user))
    text = "[" * 100
    response = client.post(
        "/api/v1/queries/",
        data=f'{{"kind": "timeline", "params": {{"container_id": "{text}"}}}}',
        content_type="application/json",
    )
    assert "params.container_id" in error_of(response, 400, "invalid")["fields"]
    response = client.post(
        "/api/v1/queries/",
        data='{"kind": "timeline", "params": {"container_id": "MSCU1234565"}}',
        content_type="application/json",
    )
    assert response.status_code == 201, response.content


def test_pages_answer_an_oversized_id_with_a_404_or_a_form_error(
    alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    alice.user.is_superuser = alice.user.is_staff = True
    alice.user.save()
    client = Client()
    client.force_login(alice.user)
    assert client.get(f"/containers/MSCU1234565/?account={BIG}").status_code == 404
    assert client.get("/containers/MSCU1234565/?account=x").status_code == 404
    assert client.get(f"/queries/{BIG}/").status_code == 404
    assert client.post(f"/containers/watch/{BIG}/").status_code == 404
    board = client.get(f"/containers/?account={BIG}")
    assert board.status_code == 200 and "Select a valid choice" in board.content.decode()
    no_tracebacks(caplog)
