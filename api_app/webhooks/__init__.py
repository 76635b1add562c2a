"""Webhooks: endpoints users register, the events they hear, and their signed deliveries."""
