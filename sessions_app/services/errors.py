"""What can go wrong getting an account a session: a small family of errors whose text says
what to do about it (no secrets in it)."""

from __future__ import annotations


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
