"""What one person can multiply is capped (API tokens, requests over all their tokens), bad
input is a 400 in the API's one shape or a 404 / form error on a page (never a 500 with a
traceback), and API reads need no write to the database (they go on while another connection
holds SQLite's write lock)."""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from api_app.models import ApiToken
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


# -- caps ------------------------------------------------------------------------------------


def test_a_person_holds_at_most_api_tokens_per_user_active_tokens(
    alice: Account, settings: Any
) -> None:
    assert settings.API_TOKENS_PER_USER == 10
    page = Client()
    page.force_login(alice.user)
    answers = [
        page.post("/integrations/tokens/", {"name": f"token {n}"}).status_code for n in range(40)
    ]
    assert Counter(answers) == {200: 10, 400: 30}
    assert ApiToken.objects.filter(user=alice.user).count() == 10
    refused = page.post("/integrations/tokens/", {"name": "one more"}).content.decode()
    assert "You already have 10 active API tokens, the most one person may have" in refused
    with pytest.raises(CommandError, match="already have 10 active API tokens"):
        call_command("api_token", "alice", stdout=StringIO())
    # A revoked token frees its place.
    token = ApiToken.objects.filter(user=alice.user).first()
    assert page.post(f"/integrations/tokens/{token.pk}/revoke/").status_code == 302
    assert page.post("/integrations/tokens/", {"name": "instead"}).status_code == 200


def test_more_tokens_do_not_buy_more_requests(alice: Account, settings: Any) -> None:
    """The finding: 5 tokens with 125 requests each got 605 answers against 120 a minute."""
    settings.API_RATE_WINDOW_SECONDS = 3600  # no window ends during the test
    assert settings.API_RATE_LIMIT == settings.API_USER_RATE_LIMIT == 120
    clients = [bearer(token_for(alice.user, name=f"T{n}")) for n in range(5)]
    answers = [client.get("/api/v1/kinds/") for client in clients for _ in range(125)]
    assert Counter(a.status_code for a in answers) == {200: 120, 429: 505}
    # The second token's first request: its own count is 1, the person's 126.
    refused = answers[125]
    body = error_of(refused, 429, "rate_limited")
    assert body["message"].startswith("Too many requests with all your tokens: at most 120 per")
    assert 1 <= int(refused["Retry-After"]) <= 3600
    # Another person's tokens have their own count.
    bob_user = Account.objects.create(
        user=type(alice.user).objects.create(username="bob2"), emodal_username="bob2-emodal"
    ).user
    assert bearer(token_for(bob_user)).get("/api/v1/kinds/").status_code == 200


def test_with_the_cache_down_requests_are_let_through_and_a_warning_is_logged_once(
    alice: Account, settings: Any, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    settings.API_RATE_LIMIT = settings.API_USER_RATE_LIMIT = 2
    # A file the cache cannot open: a directory stands where its database should be.
    (tmp_path / "counters").mkdir()
    settings.CACHES = {
        **settings.CACHES,
        "api": {
            "BACKEND": "api_app.counters.SQLiteCounterCache",
            "LOCATION": str(tmp_path / "counters"),
        },
    }
    import api_app.throttling as throttling

    throttling._last_warning = 0.0
    client = bearer(token_for(alice.user))
    with caplog.at_level(logging.WARNING, logger="api_app"):
        answers = [client.get("/api/v1/kinds/").status_code for _ in range(5)]
    assert answers == [200] * 5
    warnings = [r for r in caplog.records if "counting is off" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


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


# -- API reads and the database's write lock --------------------------------------------------


@contextmanager
def write_locked() -> Iterator[None]:
    """Another connection holds SQLite's write lock (a long write, a backup)."""
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("COMMIT")
        holder.close()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's database-wide write lock")
@pytest.mark.django_db(transaction=True)
def test_api_reads_go_on_while_another_connection_holds_the_write_lock(
    alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    """The finding: with the write lock held for 40 s, three GETs each waited 30 s for it (to
    count the request, to note the token's use) and answered 500."""
    token = token_for(alice.user)
    client = bearer(token)
    with write_locked():
        answers = [client.get(path) for path in ("/api/v1/accounts/", "/api/v1/kinds/") * 2]
        assert [a.status_code for a in answers] == [200] * 4
        # Its use could not be written: left for a later request.
        assert ApiToken.objects.get().last_used_at is None
    assert client.get("/api/v1/queries/").status_code == 200
    assert ApiToken.objects.get().last_used_at is not None
    no_tracebacks(caplog)
