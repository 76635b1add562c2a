"""Webhooks: the endpoints people register (their deliveries, signing and sending are the
notifications app's: `notifications.channels.webhook`)."""
