"""API tokens, and webhook endpoints (their deliveries are notifications')."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from sessions_app.fields import SecretCharField


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


class WebhookEndpoint(models.Model):
    """A URL a user registered to be sent events (Standard Webhooks: signed with its secret)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    # Checked by the service (`webhooks.endpoints.clean_url`): http(s), no credentials, public.
    url = models.CharField("URL", max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # The EventType values it receives.
    events = models.JSONField(default=list)
    # "whsec_" + base64 of 32 random bytes: the signing key, shared with the receiver, so it
    # cannot be hashed; stored encrypted (FIELD_ENCRYPTION_KEY) and shown once.
    secret = SecretCharField("signing secret", max_length=100)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook endpoint"

    SECRET_FIELDS = ("secret",)

    def __str__(self) -> str:
        return self.url
