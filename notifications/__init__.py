"""Notifications: the outbox's events turned into deliveries, one channel (transport) each."""
