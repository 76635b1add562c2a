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
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Case, Count, DateTimeField, F, IntegerField, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from .client import (
    CaptchaFailed,
    CredentialsRejected,
    EModalClient,
    LoginFailed,
    SessionGone,
    SessionGrant,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    call_with_retries,
)
from .fields import SecretUnreadable
from .models import Account, SessionEvent, SessionSlot

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SessionError(Exception):
    """Getting a session failed; the text says what to do about it (no secrets in it).
    `counts_as_failure` is false where nothing was tried (a budget or breaker said wait)."""

    retryable = False
    counts_as_failure = True


class AccountRejected(SessionError):
    """The account's credentials were refused, its captcha key is suspect, or its logins keep
    failing for an unknown reason: nothing is spent on it until someone edits the credentials
    or confirms them (see `allow_logins`)."""


class AccountUnreadable(SessionError):
    """The account's stored secrets cannot be decrypted with the configured keys."""


class AccountIncomplete(SessionError):
    """The account has no complete set of credentials."""


class LeaseTimeout(SessionError):
    """The account stayed busy (another worker held its lease) past the wait deadline."""

    retryable = True


class BrowsersBusy(LeaseTimeout):
    """Every browser of the account's server is in use by accounts with work to do: the
    account waits its turn (its task gives the worker back and is retried later)."""

    counts_as_failure = False


class LeaseLost(SessionError):
    """The lease expired while held and someone else took the account."""

    retryable = True


class SessionUnavailable(SessionError):
    """The upstream could not give a session (after bounded retries)."""

    retryable = True


class CaptchaBudgetReached(SessionError):
    """The hourly captcha budget (the account's or the portal's) is spent: no login until it
    frees up. Retryable later."""

    retryable = True
    counts_as_failure = False


BUDGET_WINDOW = timedelta(hours=1)


def captcha_budget_frees_at(*, account: Account | None = None) -> datetime | None:
    """When the hourly captcha budget lets a login spend again: the account's budget
    (EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR) or, without an account, the portal's
    (EMODAL_CAPTCHA_BUDGET_PER_HOUR). None while the budget is not reached; a limit of 0
    turns that budget off. Counted from the `SessionEvent.captcha_spent` rows."""
    limit = (
        settings.EMODAL_CAPTCHA_BUDGET_PER_HOUR
        if account is None
        else settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR
    )
    if limit <= 0:
        return None
    spent = SessionEvent.objects.captcha_spent().since(_now() - BUDGET_WINDOW)
    if account is not None:
        spent = spent.filter(account=account)
    newest = list(spent.order_by("-created_at").values_list("created_at", flat=True)[:limit])
    if len(newest) < limit:
        return None
    # Below the limit again once the limit-th newest solve leaves the window.
    return newest[limit - 1] + BUDGET_WINDOW


def check_captcha_budget(*, account: Account) -> None:
    """Raise `CaptchaBudgetReached` when a login now could go over a budget. Per account this
    is exact (logins run under the account's lease); the portal-wide budget can be overrun by
    the logins already in flight when it is reached."""
    frees_at = captcha_budget_frees_at(account=account)
    if frees_at is not None:
        limit = settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR
        raise CaptchaBudgetReached(
            f"Captcha budget reached for account {account}: {limit} solves in the last hour "
            f"(EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR); no new session before "
            f"{timezone.localtime(frees_at):%H:%M:%S}."
        )
    frees_at = captcha_budget_frees_at()
    if frees_at is not None:
        limit = settings.EMODAL_CAPTCHA_BUDGET_PER_HOUR
        raise CaptchaBudgetReached(
            f"Captcha budget reached for the portal: {limit} solves in the last hour across "
            f"all accounts (EMODAL_CAPTCHA_BUDGET_PER_HOUR); no new session before "
            f"{timezone.localtime(frees_at):%H:%M:%S}."
        )


def _now() -> datetime:
    return timezone.now()


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
        settings.EMODAL_BREAKER_FAILURES,
        settings.EMODAL_BREAKER_RESET_SECONDS,
        settings.EMODAL_BREAKER_CACHE_SECONDS,
    )
    clients: dict[tuple[object, ...], EModalClient] = _local.__dict__.setdefault("clients", {})
    client = clients.get(key)
    if client is None:
        client = clients[key] = EModalClient.from_settings(url)
    return client


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
        self.wait_seconds = settings.EMODAL_WAIT_SECONDS if wait_seconds is None else wait_seconds
        self.lease_seconds = (
            settings.EMODAL_LEASE_SECONDS if lease_seconds is None else lease_seconds
        )
        self.poll_seconds = settings.EMODAL_POLL_SECONDS if poll_seconds is None else poll_seconds

    def client_for(self, account: Account) -> EModalClient:
        if self._client is not None:
            return self._client
        return client_for_server(account.upstream_url or settings.EMODAL_API_URLS[0])

    # -- public API --------------------------------------------------------------------------

    def ensure_session(self, account: Account) -> str:
        """A live session id for the account, reusing whatever can be reused."""
        with self.lease(account) as lease:
            session_id, reused = self._ensure_session(account, lease.token)
            if reused:
                self._record(account, SessionEvent.Kind.REUSED_STORED, time.monotonic())
            return session_id

    def refresh_session(self, account: Account) -> str:
        """Close the account's session upstream and create a new one (spends a captcha). A
        session the portal adopted rather than created is only forgotten, not closed (it may be
        another system's); the upstream then hands it back to the login, with no captcha."""
        with self.lease(account) as lease:
            account.refresh_from_db()
            self._check_usable(account)
            started = time.monotonic()
            if account.session_id:
                self._close_upstream(account)
                self._clear_session(account, account.session_version)
            self._record(account, SessionEvent.Kind.REFRESH_FORCED, started)
            return self._create_session(account, lease.token, reuse_upstream=False)

    def drop_session(self, account: Account) -> bool:
        """Forget the account's session here and close it upstream (if the portal created it).
        False if there was none."""
        with self.lease(account):
            account.refresh_from_db()
            if not account.session_id:
                return False
            started = time.monotonic()
            if not account.unreadable_secrets():
                self._close_upstream(account)
            self._clear_session(account, account.session_version)
            self._record(account, SessionEvent.Kind.DROPPED, started)
            return True

    def run(
        self,
        account: Account,
        operation: Callable[[EModalClient, str], T],
        *,
        call_seconds: float | None = None,
    ) -> T:
        """Run `operation(client, session_id)` with a working session for the account.

        The account's lease is held for the whole call (one call per browser). If the upstream
        says the session is gone, it is replaced once and the call retried once; a second
        failure is a real failure."""
        if connection.in_atomic_block:
            # A transaction held across a call of seconds to minutes would lock SQLite for
            # every other worker and pin a PostgreSQL connection.
            raise RuntimeError("SessionManager.run() must not be called inside a transaction")
        if call_seconds is None:
            call_seconds = self.client_for(account).longest_call_seconds() + 30
        with self.lease(account, seconds=call_seconds) as lease:
            session_id, reused = self._ensure_session(account, lease.token)
            if not reused:  # logging in took part of the lease's time
                self._extend_lease(account, lease.token, call_seconds)
            version = account.session_version
            try:
                return self._call(account, operation, session_id, lease, version)
            except SessionGone:
                started = time.monotonic()
                lease.touch_version = None
                self._clear_session(account, version)
                self._record(account, SessionEvent.Kind.REPLACED, started)
                session_id, _ = self._ensure_session(account, lease.token)
                self._extend_lease(account, lease.token, call_seconds)
                version = account.session_version
                return self._call(account, operation, session_id, lease, version)

    # -- the lease ---------------------------------------------------------------------------

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
        now = _now()
        free = Q(lease_token="") | Q(lease_expires_at__lt=now)
        claimed = Account.objects.filter(free, pk=account.pk).update(
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=seconds or self.lease_seconds),
        )
        return claimed == 1

    def _release(self, account: Account, lease: Lease) -> None:
        changes: dict[str, object] = {"lease_token": "", "lease_expires_at": None}
        if lease.touch_version is not None:
            # The session was used: bump its idle timer, unless it was replaced meanwhile.
            now = _now()
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
        Account.objects.filter(pk=account.pk, lease_token=lease.token).update(**changes)

    def _extend_lease(self, account: Account, token: str, seconds: float | None) -> None:
        seconds = max(seconds or 0, self.lease_seconds)
        kept = Account.objects.filter(pk=account.pk, lease_token=token).update(
            lease_expires_at=_now() + timedelta(seconds=seconds)
        )
        if kept != 1:
            raise LeaseLost(f"Account {account} was taken over by another worker; retry.")

    # -- getting a session (lease held) --------------------------------------------------------

    def _ensure_session(self, account: Account, token: str) -> tuple[str, bool]:
        """(session id, whether it is the stored one). Reusing the stored session is not
        recorded as an event here: `run()` does it on every call, and the account counts
        the uses of its session instead."""
        account.refresh_from_db()
        self._check_usable(account)
        if account.session_id:
            if account.session_is_live():
                return str(account.session_id), True
            started = time.monotonic()
            self._clear_session(account, account.session_version)
            self._record(account, SessionEvent.Kind.EXPIRED_LOCALLY, started)
        return self._create_session(account, token, reuse_upstream=True), False

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
                f"Account {account} has no complete E-Modal credentials; set them in the admin "
                "or with `manage.py set_credentials`."
            )

    def _check_logins_allowed(self, account: Account) -> None:
        """No login (nothing spent) on an account someone must look at first."""
        if account.logins_blocked:
            raise AccountRejected(blocked_text(account))

    def _create_session(self, account: Account, token: str, *, reuse_upstream: bool) -> str:
        self._check_logins_allowed(account)
        self._take_slot(account, token)
        try:
            if reuse_upstream:
                found = self._find_upstream_session(account)
                if found is not None:
                    return found
            return self._log_in(account, token)
        except BaseException:
            release_slot(account)  # no session came of it: give the browser back
            raise

    def _log_in(self, account: Account, token: str) -> str:
        """Log in (POST /get_session). A refused username/password or a VPN requirement marks
        the account rejected at once. Logins failing without a verdict on the credentials (the
        captcha not solved, a cause the upstream does not name) may each have spent a captcha:
        they count on the account, across tasks, and at EMODAL_LOGIN_FAILURE_LIMIT in a row
        the account is flagged for a person — captcha key suspect, or login failing — and no
        further login is tried. Every failure that may have reached the captcha counts against
        the captcha budgets."""
        username = str(account.emodal_username)
        started = time.monotonic()

        def attempt() -> SessionGrant:
            nonlocal started
            self._extend_lease(account, token, None)
            started = time.monotonic()
            account.refresh_from_db(fields=["credential_state", "credential_error"])
            self._check_logins_allowed(account)
            try:
                check_captcha_budget(account=account)
            except CaptchaBudgetReached as exc:
                self._record(account, SessionEvent.Kind.FAILED, started, detail=str(exc)[:255])
                raise
            return self.client_for(account).get_session(
                username=username,
                password=str(account.password),
                captcha_api_key=str(account.captcha_api_key),
            )

        def failed(exc: UpstreamError, number: int) -> None:
            if isinstance(exc, CredentialsRejected):
                return  # recorded by _mark_rejected below
            spent = may_have_spent_captcha(exc)
            detail = exc.readable()[:255]
            self._record(
                account, SessionEvent.Kind.FAILED, started, detail=detail, captcha_spent=spent
            )
            if spent:
                self._count_login_failure(account, exc)

        try:
            # Transient failures are retried with back-off a bounded number of times, in the
            # one place that does so; a flag set by a failure stops the next attempt.
            grant = call_with_retries(attempt, on_failure=failed)
        except CredentialsRejected as exc:
            self._mark_rejected(account, exc, started)
            raise AccountRejected(blocked_text(account)) from None
        except UpstreamError as exc:
            if account.logins_blocked:
                raise AccountRejected(blocked_text(account)) from None
            unavailable = SessionUnavailable(
                f"Could not log account {account} in to E-Modal: {exc.readable()}"
            )
            unavailable.counts_as_failure = exc.counts_as_failure
            raise unavailable from None
        self._store_session(account, grant.session_id, last_used=None, created_here=grant.is_new)
        Account.objects.filter(pk=account.pk).update(
            credential_state=Account.CredentialState.WORKING, credential_error="", login_failures=0
        )
        account.credential_state = Account.CredentialState.WORKING
        account.credential_error = ""
        account.login_failures = 0
        kind = SessionEvent.Kind.CREATED if grant.is_new else SessionEvent.Kind.REUSED_UPSTREAM
        self._record(account, kind, started, captcha_spent=grant.is_new)
        return grant.session_id

    def _count_login_failure(self, account: Account, exc: UpstreamError) -> None:
        """One more failed login in a row; at the limit, flag the account for a person."""
        Account.objects.filter(pk=account.pk).update(login_failures=F("login_failures") + 1)
        account.refresh_from_db(fields=["login_failures"])
        limit = settings.EMODAL_LOGIN_FAILURE_LIMIT
        if account.login_failures < limit:
            return
        if isinstance(exc, CaptchaFailed):
            state = Account.CredentialState.KEY_SUSPECT
            reason = (
                f"the captcha was not solved in {account.login_failures} logins in a row "
                f"({exc.details or exc.message}): the captcha API key may be invalid or out of "
                "balance"
            )
        else:
            state = Account.CredentialState.LOGIN_FAILING
            reason = (
                f"{account.login_failures} logins in a row failed for a reason E-Modal did not "
                f"name (last: {exc.readable()}); try the E-Modal login by hand"
            )
        reason = reason[:255]
        Account.objects.filter(pk=account.pk).update(
            credential_state=state, credential_error=reason
        )
        account.credential_state, account.credential_error = state, reason
        logger.warning("account %s: logins stopped (%s)", account.pk, state)

    def _find_upstream_session(self, account: Account) -> str | None:
        started = time.monotonic()
        try:
            sessions = self.client_for(account).list_sessions()
        except UpstreamError as exc:
            # Listing fails when any browser upstream is unhealthy; a login still works.
            logger.warning("Could not list upstream sessions: %s", exc.readable())
            return None
        username = str(account.emodal_username)
        idle = settings.EMODAL_SESSION_IDLE_SECONDS
        usable_for = idle - settings.EMODAL_SESSION_MARGIN_SECONDS
        now = _now()
        candidates = []
        for item in sessions:
            if item.username != username:
                continue
            last_used = _parse_time(item.last_used) or now
            # With the idle heuristic off (0), every session listed for the username counts.
            if not idle or (now - last_used).total_seconds() < usable_for:
                candidates.append((last_used, item.session_id))
        if not candidates:
            return None
        last_used, session_id = max(candidates)
        self._store_session(account, session_id, last_used=last_used, created_here=False)
        self._record(account, SessionEvent.Kind.REUSED_UPSTREAM, started)
        return session_id

    # -- capacity: browsers per upstream server ---------------------------------------------------

    def _assign_upstream(self, account: Account) -> None:
        """Keep the account on its server; a new (or removed) one goes to the least loaded."""
        urls = settings.EMODAL_API_URLS
        if account.upstream_url in urls:
            return
        load = dict(
            Account.objects.filter(upstream_url__in=urls)
            .values_list("upstream_url")
            .annotate(n=Count("pk"))
        )
        choice = min(urls, key=lambda url: (load.get(url, 0), urls.index(url)))
        # Compare-and-set: two workers assigning the account at once agree on the first
        # one's choice (a session on one server counted against another would let the
        # upstream evict).
        if Account.objects.filter(pk=account.pk, upstream_url=account.upstream_url).update(
            upstream_url=choice
        ):
            account.upstream_url = choice
        else:
            account.upstream_url = Account.objects.values_list("upstream_url", flat=True).get(
                pk=account.pk
            )
            self._assign_upstream(account)

    def reserve_browser(self, account: Account) -> bool:
        """Hold one of the account's server's browsers, if one can be had now: a free one, or
        one the portal frees by closing its own least recently used idle session (rather than
        let the upstream evict someone blindly, possibly mid-call). False if every browser is
        in use by accounts with work, or the account is busy (whoever holds its lease sees
        to its browser); nothing waits. The account keeps the browser for as long as it
        keeps a session."""
        if SessionSlot.objects.filter(account=account, server=account.upstream_url).exists():
            return True
        # Under the account's lease, so that two workers starting the account at once do
        # not both free a browser for it.
        token = secrets.token_hex(16)
        if not self._try_acquire(account, token):
            return False
        try:
            return self._reserve(account)
        finally:
            self._release(account, Lease(token=token))

    def _reserve(self, account: Account) -> bool:
        self._assign_upstream(account)
        server = account.upstream_url
        if SessionSlot.objects.filter(account=account, server=server).exists():
            return True
        # A slot on a former server. Not one on this server: another worker may have just
        # reserved it for this account.
        release_slot(account, keep_server=server)
        limit = settings.EMODAL_MAX_SESSIONS
        if SessionSlot.objects.filter(server=server, number__lt=limit).count() < limit:
            for number in range(limit):
                SessionSlot.objects.get_or_create(server=server, number=number)
        for _ in range(3):  # others may take a browser freed here first
            free = SessionSlot.objects.filter(server=server, number__lt=limit, account=None)
            for slot_id in free.values_list("pk", flat=True)[:5]:
                try:
                    with transaction.atomic():
                        taken = SessionSlot.objects.filter(pk=slot_id, account=None).update(
                            account=account, claimed_at=_now()
                        )
                except IntegrityError:
                    # Another worker reserved a browser for this account meanwhile (an
                    # account holds one slot at most).
                    return SessionSlot.objects.filter(account=account, server=server).exists()
                if taken:
                    return True
            if not self._reclaim_slot(server, limit):
                return False
        return False

    def _take_slot(self, account: Account, token: str) -> None:
        """Hold one of the server's browsers before logging in; if every one is in use by
        accounts with work, wait for one (up to EMODAL_SLOT_WAIT_SECONDS)."""
        wait = min(self.wait_seconds, settings.EMODAL_SLOT_WAIT_SECONDS)
        deadline = time.monotonic() + wait
        while not self._reserve(account):
            if time.monotonic() >= deadline:
                raise BrowsersBusy(
                    f"All {settings.EMODAL_MAX_SESSIONS} upstream browsers stayed in use for "
                    f"{wait:.0f} s; the query waits its turn and is retried."
                )
            self._extend_lease(account, token, None)
            time.sleep(self.poll_seconds * random.uniform(0.8, 1.2))  # noqa: S311

    def _reclaim_slot(self, server: str, limit: int) -> bool:
        """Free one slot: first a session that is dead by its idle timer, else the least
        recently used idle one (closed upstream). Never one in the middle of a call: the
        victim's own lease is taken first (without waiting)."""
        holders = list(
            SessionSlot.objects.filter(server=server, number__lt=limit, account__isnull=False)
            .select_related("account")
            .order_by("account__session_last_used_at")
        )
        now = _now()
        wanted = accounts_in_demand([slot.account_id for slot in holders])
        # A session dead by its timer is free to take; a live one only if its account has no
        # work waiting (taking it would cost that account a new login at its next step).
        candidates = [
            slot
            for slot in holders
            if not slot.account.session_is_live(now) or slot.account_id not in wanted
        ]
        dead_first = sorted(candidates, key=lambda slot: slot.account.session_is_live(now))
        for slot in dead_first:
            victim = slot.account
            token = secrets.token_hex(16)
            if not self._try_acquire(victim, token):
                continue  # in use right now
            try:
                victim.refresh_from_db()
                started = time.monotonic()
                if not victim.session_id:
                    release_slot(victim)
                    return True
                if victim.session_is_live(now):
                    self._close_upstream(victim)
                    kind = SessionEvent.Kind.CLOSED_FOR_CAPACITY
                else:
                    kind = SessionEvent.Kind.EXPIRED_LOCALLY
                self._clear_session(victim, victim.session_version)
                self._record(victim, kind, started)
                return True
            finally:
                Account.objects.filter(pk=victim.pk, lease_token=token).update(
                    lease_token="", lease_expires_at=None
                )
        return False

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

    # -- state changes ---------------------------------------------------------------------------

    def _store_session(
        self,
        account: Account,
        session_id: str,
        *,
        last_used: datetime | None,
        created_here: bool,
    ) -> None:
        now = _now()
        account.session_id = session_id
        account.session_version += 1
        account.session_created_at = now
        account.session_last_used_at = last_used or now
        account.session_uses = 0
        account.session_created_here = created_here
        with transaction.atomic():
            account.save(
                update_fields=[
                    "session_id",
                    "session_version",
                    "session_created_at",
                    "session_last_used_at",
                    "session_uses",
                    "session_created_here",
                    "updated_at",
                ]
            )

    def _clear_session(self, account: Account, version: int) -> bool:
        """Forget the session only if it is still the one of `version` (compare-and-set)."""
        cleared = Account.objects.filter(pk=account.pk, session_version=version).update(
            session_id=None,
            session_version=version + 1,
            session_created_at=None,
            session_last_used_at=None,
            session_uses=0,
        )
        if cleared:
            release_slot(account)
        account.refresh_from_db()
        return cleared == 1

    def _close_upstream(self, account: Account) -> None:
        """Close the account's session upstream — only one the portal created itself: one
        adopted from the upstream may be another system's, which it would break."""
        if not account.session_created_here:
            return
        try:
            self.client_for(account).delete_session(str(account.session_id))
        except UpstreamError as exc:
            logger.warning("Could not close the session of %s upstream: %s", account, exc)

    def _mark_rejected(self, account: Account, exc: UpstreamError, started: float) -> None:
        reason = _rejection_text(exc)[:255]
        Account.objects.filter(pk=account.pk).update(
            credential_state=Account.CredentialState.REJECTED, credential_error=reason
        )
        account.credential_state = Account.CredentialState.REJECTED
        account.credential_error = reason
        # E-Modal checks the password after the captcha is solved: that solve is paid for.
        self._record(
            account, SessionEvent.Kind.REJECTED, started, detail=reason, captcha_spent=True
        )

    def _record(
        self,
        account: Account,
        kind: str,
        started: float,
        *,
        detail: str = "",
        captcha_spent: bool = False,
    ) -> None:
        duration_ms = int((time.monotonic() - started) * 1000)
        SessionEvent.objects.create(
            account=account,
            kind=kind,
            detail=detail,
            captcha_spent=captcha_spent,
            duration_ms=duration_ms,
        )
        logger.info("account %s: %s (%d ms)", account.pk, kind, duration_ms)


def drop_session_locally(*, account: Account) -> None:
    """Forget the account's session without an upstream call (it idles out upstream); the
    caller saves the account."""
    account.session_id = None
    account.session_version += 1
    account.session_created_at = None
    account.session_last_used_at = None
    account.session_uses = 0
    release_slot(account)


def accounts_in_demand(account_ids: list[int]) -> set[int]:
    """Which of these accounts have work waiting for their session, as told by the function
    named in EMODAL_SESSION_DEMAND (the query engine's: accounts with a live query). This app
    does not know about queries; the setting connects the two."""
    path = settings.EMODAL_SESSION_DEMAND
    if not path or not account_ids:
        return set()
    return set(import_string(path)(account_ids))


def release_slot(account: Account, *, keep_server: str | None = None) -> None:
    """Give back the account's browser (but one on `keep_server`)."""
    held = SessionSlot.objects.filter(account=account)
    if keep_server is not None:
        held = held.exclude(server=keep_server)
    for server in set(held.values_list("server", flat=True)):
        freed = held.filter(server=server).update(account=None, claimed_at=None)
        # Work that waits for a browser on that server need not wait for its retry time.
        if freed and settings.EMODAL_BROWSER_FREED:
            import_string(settings.EMODAL_BROWSER_FREED)(server=server, count=freed)


def may_have_spent_captcha(exc: UpstreamError) -> bool:
    """Whether a failed login may have got as far as the captcha (and so cost a solve): any
    answer of the login page itself, and a login that timed out. Not a server that could not
    be reached or answered with an error of its own before trying."""
    return isinstance(exc, LoginFailed | CaptchaFailed | CredentialsRejected | UpstreamTimeout)


def _rejection_text(exc: UpstreamError) -> str:
    if getattr(exc, "cause", "") == "VPN_REQUIRED":
        return f"E-Modal requires a VPN connection for this login ({exc.details})"
    return f"E-Modal rejected the username or password ({exc.details or exc.message})"


def blocked_text(account: Account) -> str:
    """Why no login is tried for the account, and what a person does about it."""
    state = account.credential_state
    reason = account.credential_error or account.get_credential_state_display()
    if state == Account.CredentialState.REJECTED:
        fix = "Fix the credentials (admin or `manage.py set_credentials`) to try again."
    elif state == Account.CredentialState.KEY_SUSPECT:
        fix = (
            "Check the key with the captcha service, then enter it again or choose "
            "“Allow logins again” in the admin."
        )
    else:
        fix = "Then choose “Allow logins again” in the admin, or enter the credentials again."
    return f"Account {account}: {reason}. {fix}"


def allow_logins(*, account: Account) -> bool:
    """A person confirmed the account's credentials (after a suspect key or failing logins):
    logins may spend again. False if it was not blocked for one of those reasons (rejected
    credentials are cleared only by changing them)."""
    updated = Account.objects.filter(
        pk=account.pk,
        credential_state__in=[
            Account.CredentialState.KEY_SUSPECT,
            Account.CredentialState.LOGIN_FAILING,
        ],
    ).update(
        credential_state=Account.CredentialState.UNKNOWN, credential_error="", login_failures=0
    )
    account.refresh_from_db()
    return updated == 1


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def update_account_credentials(
    *,
    account: Account,
    emodal_username: str | None = None,
    password: str | None = None,
    captcha_api_key: str | None = None,
    commit: bool = True,
) -> list[str]:
    """Store new credentials (None or "" keeps a field). A change clears a rejected state and
    drops the stored session, which belonged to the old credentials. Returns the names of
    the fields that changed (never their values)."""
    changed = []
    for name, value in (
        ("emodal_username", emodal_username),
        ("password", password),
        ("captcha_api_key", captcha_api_key),
    ):
        if not value:
            continue
        current = getattr(account, name)
        try:
            same = str(current) == value if current is not None else False
        except SecretUnreadable:
            same = False
        if not same:
            setattr(account, name, value)
            changed.append(name)
    if changed:
        account.credential_state = Account.CredentialState.UNKNOWN
        account.credential_error = ""
        account.login_failures = 0
        account.credentials_changed_at = _now()
        if account.session_id:
            drop_session_locally(account=account)
    if commit and (changed or account.pk is None):
        account.save()
    return changed
