"""Personal API tokens: made on a page or by a command, shown once, stored hashed, named,
last-used time, expiry, revocation."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from api_app.models import ApiToken
from sessions_app.models import Account

from ..portal.test_secret_leaks import dump_database

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"emp_[A-Za-z0-9_-]{43}")


def bearer(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_token_made_on_the_page_is_shown_once_and_stored_hashed(alice: Account) -> None:
    page = Client()
    page.force_login(alice.user)
    response = page.post("/integrations/tokens/", {"name": "TMS", "expires_in_days": "90"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    [token] = TOKEN_RE.findall(response.content.decode())
    stored = ApiToken.objects.get()
    assert stored.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(stored.hint) and len(stored.hint) < 12
    assert timedelta(days=89) < stored.expires_at - timezone.now() <= timedelta(days=90)
    assert token not in dump_database()
    # Never again: the list names it by its start only.
    listing = page.get("/integrations/tokens/").content.decode()
    assert token not in listing and "TMS" in listing and stored.hint in listing
    assert stored.last_used_at is None

    assert bearer(token).get("/api/v1/accounts/").status_code == 200
    stored.refresh_from_db()
    assert stored.last_used_at is not None

    response = page.post(f"/integrations/tokens/{stored.pk}/revoke/")
    assert response.status_code == 302
    refused = bearer(token).get("/api/v1/accounts/")
    assert refused.status_code == 401
    assert refused.json()["message"] == "This API token was revoked."


def test_a_bad_name_is_a_form_error_and_others_tokens_cannot_be_revoked(
    alice: Account, bob: Account
) -> None:
    page = Client()
    page.force_login(alice.user)
    response = page.post("/integrations/tokens/", {"name": "  "})
    assert response.status_code == 400 and not ApiToken.objects.exists()
    page.post("/integrations/tokens/", {"name": "mine"})
    theirs = Client()
    theirs.force_login(bob.user)
    token = ApiToken.objects.get()
    assert theirs.post(f"/integrations/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_an_expired_token_or_an_inactive_user_gets_401(alice: Account) -> None:
    from .conftest import token_for

    token = token_for(alice.user, expires_in_days=1)
    assert bearer(token).get("/api/v1/accounts/").status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(token).get("/api/v1/accounts/")
    assert response.status_code == 401 and "expired" in response.json()["message"]

    fresh = token_for(alice.user)
    alice.user.is_active = False
    alice.user.save()
    assert bearer(fresh).get("/api/v1/accounts/").status_code == 401


def test_the_command_prints_a_working_token(alice: Account) -> None:
    out = StringIO()
    call_command("api_token", "alice", "--name", "TMS provisioning", stdout=out)
    token = out.getvalue().strip()
    assert TOKEN_RE.fullmatch(token)
    assert ApiToken.objects.get().name == "TMS provisioning"
    assert bearer(token).get("/api/v1/queries/").status_code == 200
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("api_token", "nobody", stdout=StringIO())
    with pytest.raises(CommandError, match="Between 1 and"):
        call_command("api_token", "alice", "--expires-in-days", "0", stdout=StringIO())


def test_the_rate_limit_answers_429_with_retry_after(alice: Account, settings: Any) -> None:
    from .conftest import token_for

    settings.API_RATE_LIMIT = 3
    settings.API_RATE_WINDOW_SECONDS = 3600
    client = bearer(token_for(alice.user))
    assert [client.get("/api/v1/accounts/").status_code for _ in range(3)] == [200] * 3
    refused = client.get("/api/v1/accounts/")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert refused.json()["code"] == "rate_limited"
    # Per token: another of the same user has its own count.
    assert bearer(token_for(alice.user)).get("/api/v1/accounts/").status_code == 200


def test_the_webhook_sweep_is_scheduled_and_drops_what_is_no_longer_needed(
    alice: Account, settings: Any
) -> None:
    from django_q.models import Schedule

    from notifications.endpoints import create_endpoint
    from notifications.models import Delivery
    from notifications.sending import sweep_deliveries
    from queries_app.checks import check_stored_schedules

    # One sweep for notifications: events whose dispatch was lost, then due deliveries.
    schedule = Schedule.objects.get(name="notifications: dispatch events, send due deliveries")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "notifications.tasks.sweep",
        Schedule.MINUTES,
        1,
    )
    assert schedule.func in settings.SCHEDULED_TASK_FUNCS and check_stored_schedules() == []

    now = timezone.now()
    endpoint, _ = create_endpoint(
        user=alice.user, url="https://tms.example.com/h", events=["query.finished"]
    )
    old = now - timedelta(days=settings.WEBHOOK_LOG_DAYS + 1)
    for event, status in (("old-done", "succeeded"), ("old-pending", "pending"), ("new", "failed")):
        Delivery.objects.create(
            channel="webhook",
            endpoint=endpoint,
            event_id=event,
            event_type="query.finished",
            body="{}",
            status=status,
            created_at=old if event.startswith("old") else now,
            next_attempt_at=now + timedelta(hours=1) if status == "pending" else None,
        )
    report = sweep_deliveries(now=now)
    assert report == {"enqueued": 0, "stuck": 0, "deliveries_deleted": 1}
    assert sorted(Delivery.objects.webhooks().values_list("event_id", flat=True)) == [
        "new",
        "old-pending",
    ]
