"""The channels events are delivered on. Each is one module with a `Channel` object:
`name`, and `record(events)`, which writes the deliveries its subscribers are owed for these
events (once per subscriber and event: a unique constraint) and arranges their sending after
the commit. It runs inside the dispatcher's transaction, which marks the events dispatched.
Adding a channel (Slack, SMS) is one module here and one line in `CHANNELS`."""

from __future__ import annotations

from typing import Protocol

from outbox.models import Event

from . import email, webhook


class Channel(Protocol):
    name: str

    def record(self, events: list[Event]) -> int:
        """Record the deliveries these events call for; returns how many."""
        ...


CHANNELS: list[Channel] = [email.CHANNEL, webhook.CHANNEL]
