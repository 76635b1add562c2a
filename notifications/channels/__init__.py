"""The channels events are delivered on. Each is one module with a `Channel` object (see
`base.Channel`): it records the deliveries its subscribers are owed for some events (inside the
dispatcher's transaction, which marks the events dispatched) and makes one attempt of one
delivery (`send`), which `notifications.sending` claims, records and retries the same way for
every channel. Adding a channel (Slack, SMS) is one module here, one line in `CHANNELS` and one
choice of `models.Channel`."""

from __future__ import annotations

from . import email, webhook
from .base import Channel, Outcome

CHANNELS: list[Channel] = [email.CHANNEL, webhook.CHANNEL]
BY_NAME: dict[str, Channel] = {channel.name: channel for channel in CHANNELS}

__all__ = ["BY_NAME", "CHANNELS", "Channel", "Outcome"]
