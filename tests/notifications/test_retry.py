"""One retry policy, each channel's figures: an e-mail is tried again only after a passing
failure, with a doubling back-off up to its cap and ALERT_MAX_ATTEMPTS tries; a webhook after
any failure, on WEBHOOK_RETRY_SECONDS' schedule (a test event once)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from notifications import retry
from notifications.channels import Outcome
from notifications.models import Channel, Delivery

FAILED = Outcome(ok=False, error="down", transient=True)
REFUSED = Outcome(ok=False, error="550 no such user", transient=False)


def waits(delivery: Delivery, outcome: Outcome, at: datetime) -> list[float | None]:
    """The wait before each next try, after the 1st, 2nd, … try ended with this outcome."""
    found: list[float | None] = []
    for attempts in range(1, 12):
        due = retry.next_attempt(delivery, outcome, attempts=attempts, at=at)
        found.append(None if due is None else (due - at).total_seconds())
    return found


def test_an_email_backs_off_doubling_to_its_cap_for_its_tries_and_only_when_passing(
    settings: Any,
) -> None:
    settings.ALERT_RETRY_BASE_SECONDS = 60
    settings.ALERT_RETRY_MAX_SECONDS = 300
    settings.ALERT_MAX_ATTEMPTS = 5
    email = Delivery(channel=Channel.EMAIL)
    now = timezone.now()
    assert waits(email, FAILED, now) == [60, 120, 240, 300, None, *[None] * 6]
    assert waits(email, REFUSED, now) == [None] * 11
    assert retry.next_attempt(email, Outcome(ok=True), attempts=1, at=now) is None
    assert retry.max_attempts(email) == 5


def test_a_webhook_follows_its_schedule_after_any_failure_and_a_test_event_goes_once(
    settings: Any,
) -> None:
    settings.WEBHOOK_RETRY_SECONDS = [60, 300, 1800]
    hook = Delivery(channel=Channel.WEBHOOK)
    now = timezone.now()
    schedule = [60, 300, 1800, None, *[None] * 7]
    assert waits(hook, FAILED, now) == schedule
    assert waits(hook, REFUSED, now) == schedule  # a receiver's 4xx is tried again too
    assert retry.max_attempts(hook) == 4
    test = Delivery(channel=Channel.WEBHOOK, is_test=True)
    assert retry.max_attempts(test) == 1 and waits(test, FAILED, now) == [None] * 11


def test_the_defaults_are_the_settings_figures_as_they_were() -> None:
    email, hook = Delivery(channel=Channel.EMAIL), Delivery(channel=Channel.WEBHOOK)
    now = timezone.now()
    assert waits(email, FAILED, now)[:8] == [60, 120, 240, 480, 960, 1920, 3600, None]
    assert waits(hook, FAILED, now)[:7] == [60, 300, 1800, 7200, 18000, 36000, None]
    assert retry.next_attempt(hook, FAILED, attempts=2, at=now) == now + timedelta(minutes=5)
