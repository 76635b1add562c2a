"""Login brute-force protection: django-axes' database handler with a second limit.

django-axes locks a (username, client address) pair after AXES_FAILURE_LIMIT failures, so
that nobody can lock someone else out from their own address. That alone would let a guesser
with many addresses try AXES_FAILURE_LIMIT passwords from each; so a username is also locked,
from everywhere, once the failures against it from all addresses reach
AXES_USERNAME_FAILURE_LIMIT. Each address counts for at most AXES_FAILURE_LIMIT failures
(those are all the guesses it gets before its own lock), so one address alone never reaches
the username limit, however often it keeps trying.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def username_failures(request: HttpRequest, username: str, per_address_cap: int) -> int:
    """Failures against `username` within the cool-off time, from all addresses, each
    address counting for at most `per_address_cap`."""
    attempts = AccessAttempt.objects.filter(username=username)
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    per_address = (
        attempts.values("ip_address")
        .annotate(failures=Sum("failures_since_start"))
        .values_list("failures", flat=True)
    )
    return sum(min(failures or 0, per_address_cap) for failures in per_address)


class PortalAxesHandler(AxesDatabaseHandler):
    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        """The pair's failures, or the failure limit itself once the username's own limit is
        reached: django-axes then locks this login out as it would the pair."""
        failures = super().get_failures(request, credentials)
        limit = get_failure_limit(request, credentials)
        username_limit = settings.AXES_USERNAME_FAILURE_LIMIT
        username = get_client_username(request, credentials)
        if failures >= limit or not username_limit or not username:
            return failures
        if username_failures(request, username, per_address_cap=limit) >= username_limit:
            return limit
        return failures
