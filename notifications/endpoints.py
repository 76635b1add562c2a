"""Registering, changing and testing webhook endpoints (the API's pages and its /webhooks/
resource call these): a URL checked before it is kept (http(s), no credentials, a public
address), its event types, its signing secret (made here, shown once), its test event."""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from outbox.vocabulary import EventType

from .channels import webhook as webhook_channel
from .channels.webhook_transport import AddressRefused, check_literal_host
from .models import URL_MAX_LENGTH, Delivery, WebhookEndpoint

MAX_ENDPOINTS_PER_USER = 20


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def clean_url(url: str) -> str:
    url = (url or "").strip()
    errors: list[str] = []
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        errors.append("Give a full http:// or https:// URL.")
    else:
        parts = urlsplit(url)
        if parts.username or parts.password:
            errors.append(
                "Put no user or password in the URL: receivers check the signature instead."
            )
        if parts.fragment:
            errors.append("A webhook URL has no #fragment.")
        try:
            check_literal_host(parts.hostname or "")
        except AddressRefused as exc:
            errors.append(f"Webhooks are only sent to public addresses: {exc}")
    if len(url) > URL_MAX_LENGTH:
        errors.append("A URL has at most 2000 characters.")
    if errors:
        raise ValidationError({"url": errors})
    return url


def clean_events(values: Any) -> list[str]:
    if not isinstance(values, list | tuple) or not values:
        raise ValidationError({"events": ["Choose at least one event type."]})
    unknown = [str(v) for v in values if v not in EventType.values]
    if unknown:
        raise ValidationError(
            {
                "events": [
                    f"Unknown event type(s): {', '.join(unknown)}; choose among "
                    f"{', '.join(EventType.values)}."
                ]
            }
        )
    return [value for value in EventType.values if value in values]


def clean_description(text: str) -> str:
    text = (text or "").strip()
    if len(text) > 200 or not text.isprintable():
        raise ValidationError({"description": ["At most 200 printable characters."]})
    return text


# What an owner may set, each with its check.
CLEANERS: dict[str, Callable[[Any], Any]] = {
    "url": clean_url,
    "events": clean_events,
    "description": clean_description,
}


def create_endpoint(
    *, user: Any, url: str, events: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """(the endpoint, its signing secret): the secret is shown to its owner this once."""
    fields: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for name, value in (("url", url), ("events", events), ("description", description)):
        try:
            fields[name] = CLEANERS[name](value)
        except ValidationError as exc:
            problems.update(exc.message_dict)
    if problems:
        raise ValidationError(problems)
    if WebhookEndpoint.objects.filter(user=user).count() >= MAX_ENDPOINTS_PER_USER:
        raise ValidationError(f"At most {MAX_ENDPOINTS_PER_USER} webhook endpoints per person.")
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(user=user, secret=secret, **fields)
    return endpoint, secret


def update_endpoint(*, endpoint: WebhookEndpoint, **changes: Any) -> WebhookEndpoint:
    """Change the URL, events, description, or enable/disable it (enabling clears the reason
    it was disabled for)."""
    problems: dict[str, list[str]] = {}
    for name, value in changes.items():
        if name in CLEANERS:
            try:
                setattr(endpoint, name, CLEANERS[name](value))
            except ValidationError as exc:
                problems.update(exc.message_dict)
        elif name == "enabled":
            if value and not endpoint.enabled:
                endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = True, None, ""
            elif not value and endpoint.enabled:
                endpoint.enabled, endpoint.disabled_at = False, timezone.now()
                endpoint.disabled_reason = "Disabled by its owner."
        else:
            raise TypeError(f"unknown field {name}")
    if problems:
        raise ValidationError(problems)
    endpoint.save()
    return endpoint


def rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    secret = new_secret()
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "updated_at"])
    return secret


class TestEventTooSoon(Exception):
    """A test event went to this endpoint less than WEBHOOK_TEST_INTERVAL_SECONDS ago."""

    def __init__(self, wait_seconds: int) -> None:
        self.wait_seconds = wait_seconds
        interval = settings.WEBHOOK_TEST_INTERVAL_SECONDS
        per = "minute" if interval == 60 else f"{interval} seconds"
        super().__init__(
            f"A test event was just sent to this endpoint, and at most one goes out per {per}: "
            f"try again in {wait_seconds} s. How it went is in the delivery log below."
        )


def send_test_event(*, endpoint: WebhookEndpoint) -> Delivery:
    """A test event to this endpoint (enabled or not), sent by a worker at once: one attempt,
    which never counts against the endpoint. At most one per WEBHOOK_TEST_INTERVAL_SECONDS:
    a sooner one raises `TestEventTooSoon` and sends nothing."""
    event = webhook_channel.test_event(endpoint)
    interval = timedelta(seconds=settings.WEBHOOK_TEST_INTERVAL_SECONDS)
    with transaction.atomic():
        # Two requests at once for one endpoint take turns here (the row's lock on PostgreSQL;
        # SQLite's write lock, taken when the transaction begins): one of them sends.
        WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
        now = timezone.now()
        last = (
            Delivery.objects.webhooks()
            .filter(endpoint=endpoint, is_test=True)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if interval and last is not None and now - last < interval:
            raise TestEventTooSoon(math.ceil((last + interval - now).total_seconds()))
        delivery = webhook_channel.record_test(endpoint, event)
    return delivery
