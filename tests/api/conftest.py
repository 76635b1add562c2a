"""Fixtures of the API tests: tokens, API clients, a webhook receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from api_app.tokens import create_token

from .receiver import Receiver


def token_for(user: Any, name: str = "TMS", **kwargs: Any) -> str:
    return create_token(user=user, name=name, **kwargs)[1]


def api_client(user: Any) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")


@pytest.fixture
def api() -> Callable[[Any], Client]:
    """`api(user)`: a test client sending a fresh token of that user."""
    return api_client


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    running = Receiver()
    yield running
    running.stop()
