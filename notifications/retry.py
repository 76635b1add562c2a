"""When a delivery that failed is tried again, and how many times — one policy, each channel's
figures:

- e-mail: only a passing failure (the mail server unreachable, or answering 4xx) is retried,
  after ALERT_RETRY_BASE_SECONDS doubling at each try up to ALERT_RETRY_MAX_SECONDS, at most
  ALERT_MAX_ATTEMPTS tries in all;
- webhook: every failure is retried, after the delays of WEBHOOK_RETRY_SECONDS (before the 2nd,
  3rd, … attempt; by default 1 min, 5 min, 30 min, 2 h, 5 h, 10 h: seven attempts over about
  18 hours); a test event has one attempt.

django-q2 cannot enqueue a task for later, so a delivery keeps its next attempt's time on its
row and the sweep (every minute) sets due ones going."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from .channels.base import Outcome
from .models import Channel, Delivery


def webhook_delays() -> list[int]:
    return [int(seconds) for seconds in settings.WEBHOOK_RETRY_SECONDS]


def max_attempts(delivery: Delivery) -> int:
    if delivery.channel == Channel.EMAIL:
        return int(settings.ALERT_MAX_ATTEMPTS)
    return 1 if delivery.is_test else len(webhook_delays()) + 1


def delay(channel: str, attempts: int) -> float:
    """Seconds before the next try, after `attempts` tries."""
    if channel == Channel.EMAIL:
        base = settings.ALERT_RETRY_BASE_SECONDS
        return float(min(base * 2 ** max(attempts - 1, 0), settings.ALERT_RETRY_MAX_SECONDS))
    return float(webhook_delays()[attempts - 1])


def next_attempt(
    delivery: Delivery, outcome: Outcome, *, attempts: int, at: datetime
) -> datetime | None:
    """When the next try is due after the `attempts`-th ended (at `at`) with this outcome;
    None: no other try (delivered, refused for good, or every try spent)."""
    if outcome.ok or attempts >= max_attempts(delivery):
        return None
    if delivery.channel == Channel.EMAIL and not outcome.transient:
        return None
    return at + timedelta(seconds=delay(delivery.channel, attempts))
