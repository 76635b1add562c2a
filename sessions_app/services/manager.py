"""SessionManager: a working upstream session for an account, spending one captcha per need.

How a session is found, cheapest first:
1. the stored one, while it is alive by local knowledge (idle timer) — no upstream call;
2. one the upstream already holds for the account's E-Modal username (`GET /sessions`);
3. a new one (`POST /get_session`, a paid captcha solve).

Everything that touches an account's session or drives its browser happens under the
account's lease: a row-level claim taken with a conditional UPDATE (works the same on SQLite
and PostgreSQL, across threads, processes and hosts) that expires if its holder dies. One
holder at a time means at most one session creation in flight per account, and never two
calls on one browser. No database transaction is held open across an upstream call: the
lease is committed state, and every write below is a short autocommit UPDATE.

The manager is a thin facade over its collaborators, each given what it needs when built:
`lease` (the account lease), `store` (the session columns and the event record), `browsers`
(the servers' browsers) and `logins` (getting a session upstream).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import connection

from ..models import Account, SessionEvent
from ..upstream import EModalClient, SessionGone, UpstreamError, UpstreamRejected
from .capacity import Browsers
from .errors import AccountIncomplete, AccountUnreadable
from .lease import AccountLease, Lease
from .logins import Logins
from .store import SessionStore

T = TypeVar("T")

logger = logging.getLogger(__name__)

# One client per server and thread: its HTTP connections are kept from one call to the next
# (a worker runs one task at a time). Keyed by the settings it is built from, so a change of
# them (tests) builds a new one.
_local = threading.local()


def client_for_server(url: str) -> EModalClient:
    key = (
        url,
        settings.EMODAL_CONNECT_TIMEOUT,
        settings.EMODAL_TIMEOUT_SCALE,
        settings.EMODAL_MAX_DOWNLOAD_BYTES,
        settings.EMODAL_MAX_JSON_BYTES,
        settings.EMODAL_BREAKER_FAILURES,
        settings.EMODAL_BREAKER_RESET_SECONDS,
        settings.EMODAL_BREAKER_CACHE_SECONDS,
    )
    clients: dict[tuple[object, ...], EModalClient] = _local.__dict__.setdefault("clients", {})
    client = clients.get(key)
    if client is None:
        client = clients[key] = EModalClient.from_settings(url)
    return client


class SessionManager:
    """Gets accounts working sessions and runs upstream operations with them."""

    def __init__(
        self,
        *,
        client: EModalClient | None = None,
        wait_seconds: float | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        # `client` (tests) serves every account; otherwise one per upstream server.
        self._client = client
        wait = settings.EMODAL_WAIT_SECONDS if wait_seconds is None else wait_seconds
        poll = settings.EMODAL_POLL_SECONDS if poll_seconds is None else poll_seconds
        self.lease = AccountLease(
            wait_seconds=wait,
            lease_seconds=settings.EMODAL_LEASE_SECONDS if lease_seconds is None else lease_seconds,
            poll_seconds=poll,
        )
        self.store = SessionStore(client_for=self.client_for)
        self.browsers = Browsers(
            lease=self.lease, store=self.store, wait_seconds=wait, poll_seconds=poll
        )
        self.logins = Logins(
            lease=self.lease, browsers=self.browsers, store=self.store, client_for=self.client_for
        )

    # -- public API --------------------------------------------------------------------------

    def client_for(self, account: Account) -> EModalClient:
        if self._client is not None:
            return self._client
        return client_for_server(account.upstream_url or settings.EMODAL_API_URLS[0])

    def reserve_browser(self, account: Account) -> bool:
        """Hold one of the account's server's browsers if one can be had now (see
        `Browsers.reserve`)."""
        return self.browsers.reserve(account)

    def ensure_session(self, account: Account) -> str:
        """A live session id for the account, reusing whatever can be reused."""
        with self.lease.hold(account) as lease:
            session_id, reused = self._ensure_session(account, lease.token)
            if reused:
                self.store.record(account, SessionEvent.Kind.REUSED_STORED, time.monotonic())
            return session_id

    def refresh_session(self, account: Account) -> str:
        """Close the account's session upstream and create a new one (spends a captcha). A
        session the portal adopted rather than created is only forgotten, not closed (it may be
        another system's); the upstream then hands it back to the login, with no captcha."""
        with self.lease.hold(account) as lease:
            account.refresh_from_db()
            self._check_usable(account)
            started = time.monotonic()
            if account.session_id:
                self.store.close_upstream(account)
                self.store.clear(account, account.session_version)
            self.store.record(account, SessionEvent.Kind.REFRESH_FORCED, started)
            return self.logins.create_session(account, lease.token, reuse_upstream=False)

    def drop_session(self, account: Account) -> bool:
        """Forget the account's session here and close it upstream (if the portal created it).
        False if there was none."""
        with self.lease.hold(account):
            account.refresh_from_db()
            if not account.session_id:
                return False
            started = time.monotonic()
            if not account.unreadable_secrets():
                self.store.close_upstream(account)
            self.store.clear(account, account.session_version)
            self.store.record(account, SessionEvent.Kind.DROPPED, started)
            return True

    def run(
        self,
        account: Account,
        operation: Callable[[EModalClient, str], T],
        *,
        call_seconds: float | None = None,
        hold_on_timeout: float | None = None,
    ) -> T:
        """Run `operation(client, session_id)` with a working session for the account.

        The account's lease is held for the whole call (one call per browser). If the upstream
        says the session is gone, it is replaced once and the call retried once; a second
        failure is a real failure.

        `hold_on_timeout` (seconds): when the call fails in a way the server may still be
        running it in that browser (no answer in time, or a connection dropped after the
        request left: `UpstreamError.may_still_run`), the lease is not given back but held that
        long from then, and lapses by itself: nothing else drives that browser meanwhile. Only
        a booking asks for it; other calls give the lease back at once, as before."""
        if connection.in_atomic_block:
            # A transaction held across a call of seconds to minutes would lock SQLite for
            # every other worker and pin a PostgreSQL connection.
            raise RuntimeError("SessionManager.run() must not be called inside a transaction")
        if call_seconds is None:
            call_seconds = self.client_for(account).longest_call_seconds() + 30
        with self.lease.hold(account, seconds=call_seconds) as lease:
            try:
                return self._run(account, operation, lease, call_seconds)
            except UpstreamError as error:
                if hold_on_timeout and error.may_still_run:
                    lease.keep_seconds = hold_on_timeout
                    logger.warning(
                        "account %s: its browser may still be running %s; its lease is held "
                        "%.0f s more",
                        account.pk,
                        error.endpoint,
                        hold_on_timeout,
                    )
                raise

    def _run(
        self,
        account: Account,
        operation: Callable[[EModalClient, str], T],
        lease: Lease,
        call_seconds: float,
    ) -> T:
        session_id, reused = self._ensure_session(account, lease.token)
        if not reused:  # logging in took part of the lease's time
            self.lease.extend(account, lease.token, call_seconds)
        version = account.session_version
        try:
            return self._call(account, operation, session_id, lease, version)
        except SessionGone:
            started = time.monotonic()
            lease.touch_version = None
            self.store.clear(account, version)
            self.store.record(account, SessionEvent.Kind.REPLACED, started)
            session_id, _ = self._ensure_session(account, lease.token)
            self.lease.extend(account, lease.token, call_seconds)
            version = account.session_version
            return self._call(account, operation, session_id, lease, version)

    # -- getting a session (lease held) --------------------------------------------------------

    def _ensure_session(self, account: Account, token: str) -> tuple[str, bool]:
        """(session id, whether it is the stored one). Reusing the stored session is not
        recorded as an event here: `run()` does it on every call, and the account counts
        the uses of its session instead."""
        account.refresh_from_db()
        self._check_usable(account)
        if account.browser_poisoned():
            # A failed check's held workflow is about to close this browser, whoever is then
            # using it: no new work for it. Closed and replaced now (a captcha) rather than
            # lost in the middle of a call.
            started = time.monotonic()
            self.store.close_upstream(account)
            held = account.held_workflows
            self.store.clear(account, account.session_version)
            self.store.record(
                account,
                SessionEvent.Kind.POISONED,
                started,
                detail=f"{held} failed check{'s' if held != 1 else ''} held on its browser",
            )
            return self.logins.create_session(account, token, reuse_upstream=False), False
        if account.session_id:
            if account.session_is_live():
                return str(account.session_id), True
            started = time.monotonic()
            self.store.clear(account, account.session_version)
            self.store.record(account, SessionEvent.Kind.EXPIRED_LOCALLY, started)
        return self.logins.create_session(account, token, reuse_upstream=True), False

    def _check_usable(self, account: Account) -> None:
        unreadable = account.unreadable_secrets()
        if unreadable:
            raise AccountUnreadable(
                f"Account {account}: stored {', '.join(unreadable)} cannot be decrypted with "
                "FIELD_ENCRYPTION_KEY. Restore the previous key (listed after the new one) "
                "or enter the credentials again."
            )
        if not account.has_credentials():
            raise AccountIncomplete(
                f"Account {account} has no complete E-Modal credentials yet: ask "
                f"{settings.PORTAL_STAFF_CONTACT} to enter them."
            )

    # -- calls (lease held) --------------------------------------------------------------------

    def _call(
        self,
        account: Account,
        operation: Callable[[EModalClient, str], T],
        session_id: str,
        lease: Lease,
        version: int,
    ) -> T:
        try:
            result = operation(self.client_for(account), session_id)
        except UpstreamRejected:
            # The browser answered (a validation error): the session is alive and was used.
            lease.touch_version = version
            raise
        lease.touch_version = version
        return result
