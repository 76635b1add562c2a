"""A clock set to a chosen moment (and going on from there) for the code that decides what is
due: Django's `timezone.now`, which django-q2's scheduler and the portal read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.utils import timezone


@contextmanager
def clock(moment: datetime) -> Iterator[None]:
    real = timezone.now
    offset = moment - real()
    timezone.now = lambda: real() + offset  # type: ignore[assignment]
    try:
        yield
    finally:
        timezone.now = real  # type: ignore[assignment]
