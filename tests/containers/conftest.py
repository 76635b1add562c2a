"""Fixtures of the board's tests: a real SMTP server the portal sends alerts to, and a record
of the events the dispatcher hands to its channels (the webhooks')."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from notifications.channels import CHANNELS
from outbox.models import Event

from .smtp import SmtpServer


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    """A real SMTP server on loopback, and the portal's e-mail settings pointing at it (the
    tests' default, Django's in-memory outbox, replaced by what EMAIL_URL=smtp:// gives)."""
    server = SmtpServer().start()
    settings.EMAIL_BACKEND = "emodal_portal.mail.DeadlineEmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.PORTAL_URL = "https://portal.example.com"
    yield server
    server.stop()


class Heard:
    """A channel that keeps what it is handed: each dispatch's events, as dicts."""

    name = "heard"

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def record(self, events: list[Event]) -> int:
        self.batches.append([event.as_dict() for event in events])
        return 0


@pytest.fixture
def announced() -> Iterator[list[list[dict[str, Any]]]]:
    """Every batch of events the dispatcher dispatched, in order (its events as dicts)."""
    heard = Heard()
    CHANNELS.append(heard)
    yield heard.batches
    CHANNELS.remove(heard)
