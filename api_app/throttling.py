"""The API's rate limits, in fixed windows of API_RATE_WINDOW_SECONDS: API_RATE_LIMIT requests
per token, and API_USER_RATE_LIMIT per person over all their tokens together (more tokens do
not buy more requests).

Counted in the `api` cache (settings.CACHES: Redis when there is one, else a SQLite file of its
own, `counters.SQLiteCounterCache`), never in the portal's database: an API read writes nothing
there, so it never waits for the database's write lock. Each count is an `incr` (and, for the
window's first request, an `add` that makes the key first), both atomic in either cache: exact
whichever web process answers. If the cache cannot be reached, requests are let through (the
limit is protection, not a service of its own) and a warning is logged, at most once a minute
per process.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from .models import ApiToken

logger = logging.getLogger(__name__)

CACHE = "api"
WARN_EVERY_SECONDS = 60
_last_warning = 0.0


def warn_cache_down(exc: BaseException) -> None:
    """Log that counting failed, at most once a minute per process."""
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= WARN_EVERY_SECONDS:
        _last_warning = now
        logger.warning(
            "API request counting is off for now (the cache cannot be reached: %s); "
            "requests are let through without a rate limit",
            type(exc).__name__,
        )


def count_request(key: str, window: int, seconds: int) -> int | None:
    """This window's count of `key` once this request is added, or None if the cache failed."""
    cache = caches[CACHE]
    name = f"rate:{key}:{window}"
    try:
        for _ in range(3):
            try:
                return int(cache.incr(name))
            except ValueError:
                # The window's first request (or the key expired meanwhile): make the key;
                # of two processes doing so at once one wins, and both then count on it.
                cache.add(name, 0, timeout=seconds + 60)
    except Exception as exc:  # the cache's own errors (Redis, sqlite3) share no base class
        warn_cache_down(exc)
    return None


class TokenRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        seconds = settings.API_RATE_WINDOW_SECONDS
        now = time.time()
        window = int(now // seconds)
        reached = None
        for key, limit, words in (
            (f"token:{token.pk}", settings.API_RATE_LIMIT, "with this token"),
            (f"user:{token.user_id}", settings.API_USER_RATE_LIMIT, "with all your tokens"),
        ):
            if not limit:
                continue
            count = count_request(key, window, seconds)
            if count is not None and count > limit and reached is None:
                reached = f"Too many requests {words}: at most {limit} per {seconds} seconds."
        if reached is None:
            return True
        self.retry_after = (window + 1) * seconds - now
        # Read by errors.exception_handler, which words the 429.
        request.rate_limit_reached = reached  # type: ignore[attr-defined]
        return False

    def wait(self) -> float | None:
        return self.retry_after
