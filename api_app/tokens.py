"""Personal API tokens: made (shown once, at most API_TOKENS_PER_USER active per person),
revoked, and checked on every API request."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from .models import ApiToken
from .throttling import warn_cache_down

logger = logging.getLogger(__name__)

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
    if len(name) > (ApiToken._meta.get_field("name").max_length or 0):
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
    with transaction.atomic():
        # The person's row, locked: two tokens made at once are counted one after the other.
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values("pk"))
        check_token_cap(user)
        token = ApiToken.objects.create(
            user=user,
            name=name,
            key_hash=token_hash(plain),
            hint=plain[:HINT_LENGTH],
            expires_at=expires_at,
        )
    return token, plain


def check_token_cap(user: Any) -> None:
    """ValidationError when the person holds API_TOKENS_PER_USER active tokens already."""
    cap = settings.API_TOKENS_PER_USER
    if cap and ApiToken.objects.active().filter(user=user).count() >= cap:
        raise ValidationError(
            {
                NON_FIELD_ERRORS: [
                    f"You already have {cap} active API tokens, the most one person may have: "
                    "revoke one you no longer use, then make a new one."
                ]
            }
        )


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
        note_use(token, now)
    return Verdict(token)


def note_use(token: ApiToken, now: datetime) -> None:
    """Write when the token was last used, at most once per TOUCH_EVERY, and never waiting for
    the database's write lock: an API read must not wait (or fail) because another connection
    is writing. One process per minute wins the `api` cache's `add` and writes; if the write
    cannot be made at once, it is left to a later request."""
    seconds = TOUCH_EVERY.total_seconds()
    marker = f"used:{token.pk}"
    cache = caches["api"]
    try:
        if not cache.add(marker, 1, timeout=seconds):
            return
    except Exception as exc:  # the cache's own errors share no base class
        warn_cache_down(exc)
    try:
        with without_lock_wait():
            # Conditional, so that requests of processes that raced past the cache write once.
            ApiToken.objects.filter(pk=token.pk, last_used_at=token.last_used_at).update(
                last_used_at=now
            )
    except DatabaseError:
        logger.info("Token %s: its last use not written now (the database is busy)", token.pk)
        try:
            cache.delete(marker)
        except Exception as exc:
            warn_cache_down(exc)


@contextmanager
def without_lock_wait() -> Iterator[None]:
    """Database writes in the block fail at once (DatabaseError) instead of waiting for a
    lock another connection holds: SQLite's busy timeout set to 0 for the block, PostgreSQL's
    lock_timeout to 100 ms."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            (waited,) = cursor.fetchone()
            cursor.execute("PRAGMA busy_timeout = 0")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA busy_timeout = {int(waited)}")
    elif connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '100ms'")
            yield
    else:
        yield
