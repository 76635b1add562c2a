"""Personal API tokens: made (shown once), revoked, and checked on every API request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from .models import ApiToken

TOKEN_PREFIX = "emp_"  # noqa: S105 - a prefix, not a secret
HINT_LENGTH = 10
# last_used_at is written at most this often per token (not a write per request).
TOUCH_EVERY = timedelta(seconds=60)
MAX_EXPIRY_DAYS = 3650


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clean_token_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the token a name (what it is for)."]})
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise ValidationError({"name": ["A token's name has at most 100 characters."]})
    if not name.isprintable() or "<" in name or ">" in name:
        raise ValidationError({"name": ["Only printable characters, and no < or >."]})
    return name


def create_token(
    *, user: Any, name: str, expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """(the stored token, the token itself): the latter exists only in this answer."""
    name = clean_token_name(name)
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise ValidationError(
                {"expires_in_days": [f"Between 1 and {MAX_EXPIRY_DAYS} days, or none."]}
            )
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        key_hash=token_hash(plain),
        hint=plain[:HINT_LENGTH],
        expires_at=expires_at,
    )
    return token, plain


def revoke_token(*, token: ApiToken) -> bool:
    """False if it was already revoked."""
    now = timezone.now()
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=now)
    token.refresh_from_db(fields=["revoked_at"])
    return bool(revoked)


@dataclass(frozen=True)
class Verdict:
    token: ApiToken | None
    # Why the token was refused (readable), when it was.
    refused: str = ""


def check_token(plain: str, *, now: datetime | None = None) -> Verdict:
    """The token a request presents, if it may be used now (its user active)."""
    now = now or timezone.now()
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 100:
        return Verdict(None, "Invalid API token.")
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(plain)).first()
    if token is None:
        return Verdict(None, "Invalid API token.")
    if token.revoked_at is not None:
        return Verdict(None, "This API token was revoked.")
    if token.expires_at is not None and token.expires_at <= now:
        return Verdict(
            None, f"This API token expired at {token.expires_at.isoformat(timespec='seconds')}."
        )
    if not token.user.is_active:
        return Verdict(None, "This API token's user is inactive.")
    if token.last_used_at is None or token.last_used_at < now - TOUCH_EVERY:
        # Conditional, so that concurrent requests write it once.
        ApiToken.objects.filter(pk=token.pk, last_used_at=token.last_used_at).update(
            last_used_at=now
        )
    return Verdict(token)
