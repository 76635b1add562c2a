"""The tokens and webhooks pages and their admin: the strict policy, no secret rendered or
answered, encrypted signing secrets that rotate with FIELD_ENCRYPTION_KEY."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from api_app.models import ApiToken
from notifications.channels.webhook import body_for
from notifications.endpoints import create_endpoint
from notifications.models import Delivery, WebhookEndpoint
from queries_app.events import end_event
from queries_app.models import Query
from sessions_app.models import Account
from sessions_app.services import SessionManager

from ..portal.test_http_surface import STRICT_POLICY, inline_code, policy
from ..portal.test_secret_leaks import dump_database
from ..sim import SimControl
from .conftest import token_for

pytestmark = pytest.mark.django_db

URL = "https://tms.example.com/hooks"


def test_the_pages_carry_the_strict_policy_and_no_inline_code(alice: Account) -> None:
    endpoint, _ = create_endpoint(user=alice.user, url=URL, events=["query.finished"])
    client = Client()
    client.force_login(alice.user)
    for url in (
        "/integrations/tokens/",
        "/integrations/webhooks/",
        f"/integrations/webhooks/{endpoint.pk}/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert policy(response) == STRICT_POLICY, url
        assert set(inline_code(response).counts().values()) == {0}, url
    assert client.get("/integrations/tokens/").status_code == 200
    assert Client().get("/integrations/tokens/").status_code == 302  # login first


def test_the_signing_secret_is_shown_once_and_stored_encrypted(alice: Account) -> None:
    client = Client()
    client.force_login(alice.user)
    response = client.post(
        "/integrations/webhooks/", {"url": URL, "events": ["query.finished", "query.failed"]}
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    endpoint = WebhookEndpoint.objects.get()
    secret = str(endpoint.secret)
    assert secret.startswith("whsec_") and secret in response.content.decode()
    assert secret not in dump_database()
    assert endpoint.events == ["query.finished", "query.failed"]
    for url in ("/integrations/webhooks/", f"/integrations/webhooks/{endpoint.pk}/"):
        assert secret not in client.get(url).content.decode()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(alice.user)}")
    assert secret not in api.get(f"/api/v1/webhooks/{endpoint.pk}/").content.decode()
    rotated = api.post(f"/api/v1/webhooks/{endpoint.pk}/rotate-secret/").json()["secret"]
    endpoint.refresh_from_db()
    assert rotated != secret and str(endpoint.secret) == rotated
    bad = client.post("/integrations/webhooks/", {"url": "http://10.0.0.5/x", "events": []})
    assert bad.status_code == 400 and WebhookEndpoint.objects.count() == 1


def test_rotating_the_encryption_key_re_encrypts_signing_secrets(
    alice: Account, settings: Any
) -> None:
    old, new = settings.FIELD_ENCRYPTION_KEY[0], Fernet.generate_key().decode()
    endpoint, secret = create_endpoint(user=alice.user, url=URL, events=["query.finished"])
    settings.FIELD_ENCRYPTION_KEY = [new, old]
    out = StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "Re-encrypted 1 webhook endpoint(s)." in out.getvalue()
    settings.FIELD_ENCRYPTION_KEY = [new]
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == secret


def test_admin_pages_open_and_show_no_secret(
    alice: Account, staff: Any, sim: SimControl, api: Any
) -> None:
    SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    endpoint, secret = create_endpoint(user=alice.user, url=URL, events=["query.finished"])
    token = token_for(alice.user)
    query = Query.objects.create(account=alice, kind="containers", status="failed", error="x")
    event = end_event(query).as_dict()
    Delivery.objects.create(
        channel="webhook",
        endpoint=endpoint,
        event_id=event["id"],
        event_type=event["type"],
        body=body_for(event),
    )
    client = Client()
    client.force_login(staff)
    stored = {
        "api_app_apitoken": ApiToken.objects.get().pk,
        "notifications_webhookendpoint": endpoint.pk,
        "notifications_delivery": Delivery.objects.webhooks().get().pk,
    }
    for model, pk in stored.items():
        for url in (
            reverse(f"admin:{model}_changelist"),
            reverse(f"admin:{model}_change", args=[pk]),
        ):
            response = client.get(url)
            assert response.status_code == 200, url
            html = response.content.decode()
            assert secret not in html and token not in html, url
    # No E-Modal secret in the API's answers nor in a webhook's body.
    answers = [
        api(alice.user).get(path).content.decode()
        for path in ("/api/v1/accounts/", "/api/v1/queries/", f"/api/v1/queries/{query.pk}/")
    ]
    for text in [*answers, Delivery.objects.webhooks().get().body]:
        for canary in ("alice-password", "alice-captcha-key", "alice-emodal", alice.session_id):
            assert canary not in text
