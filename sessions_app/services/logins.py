"""Logging an account in, or finding the session the upstream already holds for it; and
the rule for failed logins (docs/upstream-contract.md, "Login failures"): a refused username
or password, or a VPN requirement, marks the account rejected after one attempt; a captcha not
solved, or a failure of another or no named cause, counts in a row on the account, and at
EMODAL_LOGIN_FAILURE_LIMIT the account is flagged for a person. No login is tried while it is
flagged; every failed login that may have reached the captcha counts against the budgets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..models import Account, SessionEvent
from ..signals import logins_stopped
from ..upstream import (
    CaptchaFailed,
    CredentialsRejected,
    EModalClient,
    LoginFailed,
    SessionGrant,
    UpstreamError,
    UpstreamTimeout,
    call_with_retries,
)
from .accounts import blocked_text
from .budgets import CaptchaBudgetReached, check_captcha_budget
from .capacity import Browsers, release_slot
from .errors import AccountRejected, SessionUnavailable
from .lease import AccountLease
from .store import SessionStore

logger = logging.getLogger(__name__)


class Logins:
    """Gets an account a session upstream — the one the upstream already holds for it, or a
    new login — under the account's lease (`lease`), on a browser of its server (`browsers`),
    keeping it in the `store`; upstream calls go through `client_for(account)`."""

    def __init__(
        self,
        *,
        lease: AccountLease,
        browsers: Browsers,
        store: SessionStore,
        client_for: Callable[[Account], EModalClient],
    ) -> None:
        self.lease = lease
        self.browsers = browsers
        self.store = store
        self.client_for = client_for

    def _check_logins_allowed(self, account: Account) -> None:
        """No login (nothing spent) on an account someone must look at first."""
        if account.logins_blocked:
            raise AccountRejected(blocked_text(account))

    def create_session(self, account: Account, token: str, *, reuse_upstream: bool) -> str:
        """A session for the account (whose lease `token` holds): the one the upstream holds
        for its username if `reuse_upstream`, else a login."""
        self._check_logins_allowed(account)
        self.browsers.take_or_wait(account, token)
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
            self.lease.extend(account, token, None)
            started = time.monotonic()
            account.refresh_from_db(fields=["credential_state", "credential_error"])
            self._check_logins_allowed(account)
            try:
                check_captcha_budget(account=account)
            except CaptchaBudgetReached as exc:
                self.store.record(account, SessionEvent.Kind.FAILED, started, detail=str(exc)[:255])
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
            self.store.record(
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
        self.store.store(account, grant.session_id, last_used=None, created_here=grant.is_new)
        Account.objects.filter(pk=account.pk).update(
            credential_state=Account.CredentialState.WORKING, credential_error="", login_failures=0
        )
        account.credential_state = Account.CredentialState.WORKING
        account.credential_error = ""
        account.login_failures = 0
        kind = SessionEvent.Kind.CREATED if grant.is_new else SessionEvent.Kind.REUSED_UPSTREAM
        self.store.record(account, kind, started, captcha_spent=grant.is_new)
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
        logger.warning("account %s: logins stopped (%s)", account.pk, state)
        stop_logins(account, state, reason[:255])

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
        now = timezone.now()
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
        self.store.store(account, session_id, last_used=last_used, created_here=False)
        self.store.record(account, SessionEvent.Kind.REUSED_UPSTREAM, started)
        return session_id

    def _mark_rejected(self, account: Account, exc: UpstreamError, started: float) -> None:
        reason = _rejection_text(exc)[:255]
        stop_logins(account, Account.CredentialState.REJECTED, reason)
        # E-Modal checks the password after the captcha is solved: that solve is paid for.
        self.store.record(
            account, SessionEvent.Kind.REJECTED, started, detail=reason, captcha_spent=True
        )


def stop_logins(account: Account, state: str, reason: str) -> None:
    """No more logins for the account until a person acts: its row says so, and whoever listens
    (the stop's event) is told in the same transaction; a listener's failure never fails the
    login."""
    now = timezone.now()
    with transaction.atomic():
        Account.objects.filter(pk=account.pk).update(
            credential_state=state, credential_error=reason, logins_stopped_at=now
        )
        account.credential_state, account.credential_error = state, reason
        account.logins_stopped_at = now
        for receiver, error in logins_stopped.send_robust(
            sender=Account, account_id=account.pk, state=str(state), reason=reason
        ):
            if isinstance(error, Exception):
                logger.error(
                    "%r failed on logins stopped for account %s: %r", receiver, account.pk, error
                )


def may_have_spent_captcha(exc: UpstreamError) -> bool:
    """Whether a failed login may have got as far as the captcha (and so cost a solve): any
    answer of the login page itself, and a login that timed out. Not a server that could not
    be reached or answered with an error of its own before trying."""
    return isinstance(exc, LoginFailed | CaptchaFailed | CredentialsRejected | UpstreamTimeout)


def _rejection_text(exc: UpstreamError) -> str:
    if getattr(exc, "cause", "") == "VPN_REQUIRED":
        return f"E-Modal requires a VPN connection for this login ({exc.details})"
    return f"E-Modal rejected the username or password ({exc.details or exc.message})"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed
