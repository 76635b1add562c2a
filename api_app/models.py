"""Personal API tokens. (Webhook endpoints and their deliveries are the notifications app's.)"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self, now: datetime | None = None) -> ApiTokenQuerySet:
        now = now or timezone.now()
        return self.filter(revoked_at=None).filter(Q(expires_at=None) | Q(expires_at__gt=now))


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored: the token itself is shown once, when
    it is made. A request with it acts as its user, with that user's permissions as they are
    at the time of the request."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for (e.g. “TMS”).")
    # The token's SHA-256 (hex): tokens are 256 random bits, so a fast hash is enough, and a
    # request is looked up by it (unique index).
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The token's first characters, to tell tokens apart in lists (not enough to use one).
    hint = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    def state(self, now: datetime | None = None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.State.EXPIRED
        return self.State.ACTIVE

    def get_state_display(self) -> str:
        return self.State(self.state()).label
