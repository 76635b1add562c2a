"""The account lease: whoever holds it may create the account's session and drive its
browser. A row-level claim taken with a conditional UPDATE (the same on SQLite and PostgreSQL,
across threads, processes and hosts) that expires if its holder dies: one holder at a time
means at most one session creation in flight per account, and never two calls on one
browser. Taken, renewed and given back with the portal's one claim helper
(`portal.claims`)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections
from django.db.models import Case, DateTimeField, F, IntegerField, Q, Value, When
from django.utils import timezone

from portal.claims import Claim, new_token

from ..models import Account
from .errors import BrowsersBusy, LeaseLost

# The account row's lease columns.
LEASE_CLAIM = Claim(token_field="lease_token", expires_field="lease_expires_at")  # noqa: S106


@dataclass
class Lease:
    """A held account lease. `touch_version`, once set, makes the release also record the
    use of that session (one UPDATE for both). `keep_seconds`, once set, makes the release
    keep the lease that long from then instead (see `AccountLease.keep`)."""

    token: str
    touch_version: int | None = None
    keep_seconds: float | None = None


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


class AccountLease:
    """Takes, renews and gives back accounts' leases (`LEASE_CLAIM` on the account row): a
    holder waits up to `wait_seconds` for a lease, polling every `poll_seconds`, and holds it
    for at least `lease_seconds` at a time."""

    def __init__(self, *, wait_seconds: float, lease_seconds: float, poll_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds

    @contextmanager
    def hold(self, account: Account, *, seconds: float | None = None) -> Iterator[Lease]:
        """Hold the account's lease (waiting for it, up to the deadline) for `seconds`, at
        least `lease_seconds`."""
        lease = Lease(token=new_token())
        seconds = max(seconds or 0, self.lease_seconds)
        deadline = time.monotonic() + self.wait_seconds
        while not self.take(account, lease.token, seconds):
            if time.monotonic() >= deadline:
                raise BrowsersBusy(
                    f"Account {account} stayed busy for {self.wait_seconds:.0f} s "
                    "(another task is using its session); try again later."
                )
            time.sleep(self.poll_seconds * random.uniform(0.8, 1.2))  # noqa: S311
        try:
            yield lease
        finally:
            end = self.keep if lease.keep_seconds else self.give_back
            try:
                end(account, lease)
            except DatabaseError:
                # The connection died during the call (e.g. the database restarted): the
                # lease is given back on a new one, or the next step waits it out.
                if not drop_broken_connections():
                    raise
                end(account, lease)

    def take(self, account: Account, token: str, seconds: float | None = None) -> bool:
        """The account's lease for `token` if nobody holds it now (no waiting)."""
        return LEASE_CLAIM.take(
            Account.objects.filter(pk=account.pk),
            token=token,
            seconds=seconds or self.lease_seconds,
        )

    def give_back(self, account: Account, lease: Lease) -> None:
        LEASE_CLAIM.give_back(
            Account.objects.filter(pk=account.pk), token=lease.token, **self._used(account, lease)
        )

    def keep(self, account: Account, lease: Lease) -> None:
        """Instead of giving the lease back, hold it `lease.keep_seconds` from now (exactly:
        not raised to `lease_seconds`); nobody renews it, so it then lapses by itself. For a
        call the server may still be running in that browser (see `SessionManager.run`)."""
        LEASE_CLAIM.renew(
            Account.objects.filter(pk=account.pk),
            token=lease.token,
            seconds=lease.keep_seconds or 0,
            **self._used(account, lease),
        )

    def _used(self, account: Account, lease: Lease) -> dict[str, Any]:
        """The columns that record the use of the session, if it was used."""
        changes: dict[str, Any] = {}
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
        return changes

    def extend(self, account: Account, token: str, seconds: float | None) -> None:
        """Keep the lease `seconds` more (at least `lease_seconds`); `LeaseLost` if another
        worker has taken it over meanwhile."""
        kept = LEASE_CLAIM.renew(
            Account.objects.filter(pk=account.pk),
            token=token,
            seconds=max(seconds or 0, self.lease_seconds),
        )
        if not kept:
            raise LeaseLost(f"Account {account} was taken over by another worker; retry.")
