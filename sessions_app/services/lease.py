"""The account lease: whoever holds it may create the account's session and drive its
browser. A row-level claim taken with a conditional UPDATE (the same on SQLite and PostgreSQL,
across threads, processes and hosts) that expires if its holder dies: one holder at a time
means at most one session creation in flight per account, and never two calls on one
browser."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DatabaseError, connections
from django.db.models import Case, DateTimeField, F, IntegerField, Q, Value, When
from django.utils import timezone

from portal.claims import Claim

from ..models import Account
from .errors import BrowsersBusy, LeaseLost

# The lease's columns on the account's row, claimed as any other row is (`portal.claims`).
LEASE = Claim(token_field="lease_token", expires_field="lease_expires_at")  # noqa: S106


@dataclass
class Lease:
    """A held account lease. `touch_version`, once set, makes the release also record the
    use of that session (one UPDATE for both)."""

    token: str
    touch_version: int | None = None


def drop_broken_connections() -> bool:
    """Close database connections that failed and no longer answer (the server restarted, or
    our backend was terminated) so that the next query connects again. Django checks this
    only between requests and tasks; a step that lost its connection during an upstream call
    must still give back its lease and record its failure. True if one was closed."""
    closed = False
    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred and not conn.in_atomic_block and not conn.is_usable():
            conn.close()
            closed = True
    return closed


class LeaseMixin:
    """The lease's part of the SessionManager (needs `wait_seconds`, `lease_seconds`,
    `poll_seconds`)."""

    wait_seconds: float
    lease_seconds: float
    poll_seconds: float

    @contextmanager
    def lease(self, account: Account, *, seconds: float | None = None) -> Iterator[Lease]:
        """Hold the account's lease (waiting for it, up to the deadline) for `seconds`, at
        least EMODAL_LEASE_SECONDS."""
        lease = Lease(token=secrets.token_hex(16))
        seconds = max(seconds or 0, self.lease_seconds)
        deadline = time.monotonic() + self.wait_seconds
        while not self._try_acquire(account, lease.token, seconds):
            if time.monotonic() >= deadline:
                raise BrowsersBusy(
                    f"Account {account} stayed busy for {self.wait_seconds:.0f} s "
                    "(another task is using its session); try again later."
                )
            time.sleep(self.poll_seconds * random.uniform(0.8, 1.2))  # noqa: S311
        try:
            yield lease
        finally:
            try:
                self._release(account, lease)
            except DatabaseError:
                # The connection died during the call (e.g. the database restarted): the
                # lease is given back on a new one, or the next step waits it out.
                if not drop_broken_connections():
                    raise
                self._release(account, lease)

    def _try_acquire(self, account: Account, token: str, seconds: float | None = None) -> bool:
        return LEASE.take(
            Account.objects.filter(pk=account.pk),
            token=token,
            seconds=seconds or self.lease_seconds,
        )

    def _release(self, account: Account, lease: Lease) -> None:
        changes: dict[str, object] = {}
        if lease.touch_version is not None:
            # The session was used: bump its idle timer, unless it was replaced meanwhile.
            now = timezone.now()
            same = Q(session_version=lease.touch_version)
            changes["session_last_used_at"] = Case(
                When(same, then=Value(now)),
                default=F("session_last_used_at"),
                output_field=DateTimeField(),
            )
            changes["session_uses"] = Case(
                When(same, then=F("session_uses") + 1),
                default=F("session_uses"),
                output_field=IntegerField(),
            )
            account.session_last_used_at = now
        LEASE.give_back(Account.objects.filter(pk=account.pk), token=lease.token, **changes)

    def _extend_lease(self, account: Account, token: str, seconds: float | None) -> None:
        seconds = max(seconds or 0, self.lease_seconds)
        if not LEASE.renew(Account.objects.filter(pk=account.pk), token=token, seconds=seconds):
            raise LeaseLost(f"Account {account} was taken over by another worker; retry.")
