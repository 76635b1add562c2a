"""Fixtures of the board's tests: a real SMTP server the portal sends alerts to, and a record
of the events announced to listeners (the API's webhooks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from queries_app.events import events_recorded

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


@pytest.fixture
def announced() -> Iterator[list[list[dict[str, Any]]]]:
    """Every `events_recorded` sending, in order (its `events` list)."""
    heard: list[list[dict[str, Any]]] = []

    def listen(events: list[dict[str, Any]], **kwargs: Any) -> None:
        heard.append(events)

    events_recorded.connect(listen)
    yield heard
    events_recorded.disconnect(listen)
