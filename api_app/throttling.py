"""The per-token rate limit: API_RATE_LIMIT requests per API_RATE_WINDOW_SECONDS.

Each request adds one to its token's row for the current fixed window in one atomic upsert
(`INSERT … ON CONFLICT DO UPDATE … RETURNING`, on SQLite and PostgreSQL alike) and reads the
new count in the same statement: exact whichever web process, host or thread answers, with
no read-then-write race (a cache's `incr` is one only on Redis).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from .models import ApiToken, RequestCount


def count_request(token_id: int, window_number: int) -> int:
    table = connection.ops.quote_name(RequestCount._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (token_id, window_number, requests) VALUES (%s, %s, 1) "  # noqa: S608 - the table name is the model's
            f"ON CONFLICT (token_id, window_number) "
            f"DO UPDATE SET requests = {table}.requests + 1 RETURNING requests",
            [token_id, window_number],
        )
        return int(cursor.fetchone()[0])


class TokenRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        limit = settings.API_RATE_LIMIT
        token = request.auth
        if not limit or not isinstance(token, ApiToken):
            return True
        seconds = settings.API_RATE_WINDOW_SECONDS
        now = time.time()
        window = int(now // seconds)
        if count_request(token.pk, window) <= limit:
            return True
        self.retry_after = (window + 1) * seconds - now
        return False

    def wait(self) -> float | None:
        return self.retry_after
