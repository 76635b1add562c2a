"""The upstream's outcomes as a small family of typed errors, and the one table that maps
every answer to one (`CLASSIFICATION`): what a caller does about it (`Disposition`) and
whether repeating it later may help (`retryable`). `call_with_retries` is the one place a
transient failure is retried with back-off (see docs/upstream-contract.md).

Nothing here holds a password, captcha key or session id in its text.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from django.conf import settings

from ..redaction import redact
from ..secret_names import UPSTREAM_SECRET_NAMES

T = TypeVar("T")

# The only reliable "session is gone" signal (a 400 with exactly this error text); every
# other 400 is a real validation error and must not cause a new login.
SESSION_GONE_MARKER = (
    "Missing required fields: username, password, captcha_api_key (or valid session_id)"
)

# The login failure types the upstream names in a 401's `details`, written exactly like
# `LoginErrorType.INVALID_CREDENTIALS` (see "Login failures" in docs/upstream-contract.md).
LOGIN_ERROR_PREFIX = "LoginErrorType."


class Disposition(StrEnum):
    """What a caller does about an outcome (see `CLASSIFICATION`)."""

    TRANSIENT = "transient"  # retry with capped exponential back-off, a few times
    SESSION_GONE = "session gone"  # get a session once, replay the call once
    PERMANENT = "permanent"  # never retry; the text says what to fix
    INDETERMINATE = "indeterminate"  # may have happened upstream: never replay blindly


class UpstreamError(Exception):
    """An upstream call did not succeed. `disposition` says what to do about it right away;
    `retryable` whether repeating it later may help (a query step retries later)."""

    disposition: ClassVar[Disposition] = Disposition.PERMANENT
    retryable: ClassVar[bool] = False
    # False where the call was not even tried (the breaker said wait): not a failure of the
    # work that waits, so it does not use up that work's tries.
    counts_as_failure: ClassVar[bool] = True
    # True where the request reached the server and no answer began: the server may still be
    # running the call in that session's browser (it has no request timeout).
    may_still_run: bool = False

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        details: str = "",
        payload: dict[str, Any] | None = None,
    ) -> None:
        self.message = redact(message)
        self.endpoint = endpoint
        self.status = status
        self.details = redact(details)
        # Extra fields of the error body (current_phase, error_message, ...), secrets removed.
        self.payload = {k: v for k, v in (payload or {}).items() if k not in UPSTREAM_SECRET_NAMES}
        # A failed check's held workflow, which a check can resume (a bearer token like the
        # session id: kept out of the text and the payload).
        self.resume_id = str((payload or {}).get("appointment_session_id") or "")
        super().__init__(self.readable())

    def readable(self) -> str:
        text = self.message
        if self.details:
            text = f"{text} ({self.details})"
        return text

    def first_line(self, limit: int = 240) -> str:
        """The readable text's first line (a browser driver's text goes on with a stack)."""
        return (self.readable().strip().splitlines() or [""])[0][:limit]


class SessionGone(UpstreamError):
    """The session id is unknown upstream (expired, evicted, deleted, server restarted)."""

    disposition = Disposition.SESSION_GONE


class LoginRejected(UpstreamError):
    """The upstream could not log in (HTTP 401). `cause` is the upstream's cause token."""

    def __init__(self, message: str, *, cause: str, **kwargs: Any) -> None:
        self.cause = cause
        super().__init__(message, **kwargs)


class CredentialsRejected(LoginRejected):
    """E-Modal refused the username/password (or requires a VPN): fix the account."""


class CaptchaFailed(LoginRejected):
    """The captcha was not solved (`RECAPTCHA_FAILED`): the key may be refused (invalid, no
    balance) or the captcha unsolvable — the upstream does not say which. Worth one more try;
    a second one in a row makes the key suspect (see the SessionManager)."""

    disposition = Disposition.TRANSIENT
    retryable = True


class LoginFailed(LoginRejected):
    """Login failed for another or an unknown reason (network, page, no cause given at all):
    it may have spent a captcha, so it is retried only a bounded number of times."""

    disposition = Disposition.TRANSIENT
    retryable = True


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached or failed in its automation (5xx, bad body)."""

    disposition = Disposition.TRANSIENT
    retryable = True


class UpstreamTimeout(UpstreamUnavailable):
    """No answer within the read timeout: the call may or may not have happened upstream,
    so it must not be replayed blindly."""

    disposition = Disposition.INDETERMINATE
    retryable = False
    may_still_run = True


class CircuitOpen(UpstreamUnavailable):
    """The server failed too often in a row (see `breaker.py`): calls to it fail fast, without
    reaching it, until one probe after the reset time succeeds. Retryable later, not now."""

    counts_as_failure = False


class AnswerTooSlow(UpstreamTimeout):
    """An answer that began but did not arrive in full within the call's deadline (a server
    dripping it): the call ran upstream, so it is not replayed at once, but the step that made
    it may be tried again later."""

    retryable = True


class UpstreamRejected(UpstreamError):
    """The upstream answered that the request itself cannot succeed: a validation error, a
    container its search scrolled past the end without finding, an account with nothing to
    export. Final: the same request fails the same way."""


class WrongValue(UpstreamRejected):
    """The appointment page does not list a value it was given: `Option 'X' not found in
    <Label>. Available options: <names>` with names listed. `label` is the page's dropdown
    (`Trucking`, `Terminal`, `Move`), `value` what was sent, `options` the names E-Modal listed
    (its first ten, as one text: a name may hold a comma)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        found = WRONG_VALUE.search(self.message)
        self.value = found["value"] if found else ""
        self.label = found["label"] if found else ""
        self.options = found["options"].strip() if found else ""


class AnswerTooLarge(UpstreamUnavailable):
    """An answer larger, once decoded, than the portal reads (EMODAL_MAX_JSON_BYTES): not
    read further. A glitch of the server, not a verdict on what was asked."""


class FileTooLarge(AnswerTooLarge):
    """A file download exceeded the configured size limit (EMODAL_MAX_DOWNLOAD_BYTES)."""


# The page's words for a value its dropdown does not list (L2544-2552), with the list: a list
# with nothing after the colon had not loaded (transient; see `CLASSIFICATION`).
WRONG_VALUE = re.compile(
    r"Option '(?P<value>.*)' not found in (?P<label>[^.]+)\. "
    r"Available options: (?P<options>\S.*)",
    re.DOTALL,
)


@dataclass(frozen=True)
class Rule:
    """One row of the classification: every condition given must hold. `fault` names a
    failure without a usable JSON answer ("timeout", "connection", "not_json"); rows without
    one match JSON answers by status, exact error `marker`, login `cause` (the failure type
    named in `details`, see `login_cause`), a `pattern` searched in the error text, and
    `endpoints` (the rule's endpoints only; none given: every endpoint)."""

    error: type[UpstreamError]
    note: str
    fault: str = ""
    status: range = range(0, 1000)
    marker: str = ""
    cause: str = ""
    pattern: re.Pattern[str] | None = None
    endpoints: tuple[str, ...] = ()

    def matches(
        self, *, fault: str, status: int | None, body: dict[str, Any], endpoint: str = ""
    ) -> bool:
        if self.fault or fault:
            return self.fault == fault
        error = str(body.get("error") or "")
        return (
            status in self.status
            and (not self.endpoints or endpoint in self.endpoints)
            and (not self.marker or error.strip() == self.marker)
            and (not self.cause or login_cause(body.get("details")) == self.cause)
            and (self.pattern is None or self.pattern.search(error) is not None)
        )


CHECK = "/check_appointments"
BOOK = "/make_appointment"


def _status(code: int) -> range:
    return range(code, code + 1)


# Every upstream outcome that is not a success; the first matching row decides. The client
# raises the row's class; callers act on the class's `disposition` (the SessionManager:
# retry a login with back-off, replay once after a gone session; the circuit breaker: count
# transient failures) or `retryable` (the query engine: retry the step later, or fail it).
CLASSIFICATION: tuple[Rule, ...] = (
    # -- no usable answer ----------------------------------------------------------------------
    Rule(UpstreamTimeout, "read timed out: the call may have run upstream", fault="timeout"),
    Rule(UpstreamUnavailable, "connection refused, reset or closed", fault="connection"),
    Rule(UpstreamUnavailable, "an answer that is not JSON", fault="not_json"),
    # The limits every answer is read under (sessions_app/upstream/transport.py).
    Rule(AnswerTooLarge, "an answer over the size limit, decoded: not read", fault="too_large"),
    Rule(AnswerTooSlow, "an answer not in full within the call's deadline", fault="too_slow"),
    Rule(UpstreamUnavailable, "an answer compressed in a way not read", fault="encoding"),
    # Never followed: it would resend the request's credentials, or fetch a file, elsewhere.
    Rule(UpstreamError, "a redirect", fault="redirect"),
    # -- session gone: this exact 400 text only; every other 400 is a validation error -----------
    Rule(SessionGone, "session unknown upstream", status=_status(400), marker=SESSION_GONE_MARKER),
    # -- login refused (401): the failure type in `details` decides ----------------------------
    Rule(
        CredentialsRejected,
        "wrong username/password",
        status=_status(401),
        cause="INVALID_CREDENTIALS",
    ),
    Rule(CredentialsRejected, "E-Modal wants a VPN", status=_status(401), cause="VPN_REQUIRED"),
    Rule(
        CaptchaFailed,
        "captcha not solved: key refused or captcha unsolvable",
        status=_status(401),
        cause="RECAPTCHA_FAILED",
    ),
    # NETWORK_ERROR, PAGE_LOAD_ERROR, UNKNOWN_ERROR, ..., and a 401 with no `details` at all
    # (`Manual login interrupted: EOF when reading a line` from a server without a console).
    Rule(LoginFailed, "any other or unknown login failure", status=_status(401)),
    # -- the rest: final only where the contract says so ("Error texts: final or transient") --
    Rule(UpstreamRejected, "validation error, unknown file or session", status=range(400, 500)),
    # Most 5xx texts name a page step that did not work this time: never read "not found" as
    # "absent". Only a container search that scrolled to the end means the container is not
    # there, and an empty export that the account has no containers.
    Rule(
        UpstreamRejected,
        "a container search that scrolled to the end",
        status=range(500, 600),
        pattern=re.compile(r"Container '.*' not found after scrolling"),
    ),
    Rule(
        UpstreamRejected,
        "no containers to export",
        status=range(500, 600),
        pattern=re.compile(r"No container data extracted"),
    ),
    # The appointment page does not list a value (a trucking company, a terminal name): the
    # same value fails the same way. With no names after "options:" the list had not loaded.
    Rule(
        WrongValue,
        "a value the page's dropdown does not list (its options listed)",
        status=range(500, 600),
        pattern=WRONG_VALUE,
        endpoints=(CHECK, BOOK),
    ),
    # A value holding `'` breaks the page's query, every time.
    Rule(
        UpstreamRejected,
        "a value the page cannot look up (an invalid selector)",
        status=range(500, 600),
        pattern=re.compile(r"invalid selector"),
        endpoints=(CHECK, BOOK),
    ),
    # `Dropdown '<Label>' not found`, an empty options list, `Truck plate field not found`,
    # stale elements, `Expand failed: …`, `Excel file not found after download`, `Excel
    # download button not found`, `Navigation failed: …`, HTML 500s: the page this time.
    Rule(UpstreamUnavailable, "automation failure", status=range(500, 600)),
    Rule(UpstreamUnavailable, "any other answer (2xx with success false, 3xx)"),
)


def find_rule(
    *,
    status: int | None = None,
    body: dict[str, Any] | None = None,
    fault: str = "",
    endpoint: str = "",
) -> Rule:
    for rule in CLASSIFICATION:
        if rule.matches(fault=fault, status=status, body=body or {}, endpoint=endpoint):
            return rule
    raise ValueError(f"unknown upstream fault {fault!r}")


def login_cause(details: Any) -> str:
    """The failure type a 401 names: `LoginErrorType.INVALID_CREDENTIALS` → `INVALID_CREDENTIALS`;
    "" when it names none (no `details`, or text of another form)."""
    text = str(details or "").strip()
    if not text.startswith(LOGIN_ERROR_PREFIX):
        return ""
    words = text[len(LOGIN_ERROR_PREFIX) :].split()
    return words[0].strip(".:,").upper() if words else ""


def classify_error(endpoint: str, status: int, body: dict[str, Any]) -> UpstreamError:
    """The typed error for a JSON answer that is not a success (by `CLASSIFICATION`)."""
    error_class = find_rule(status=status, body=body, endpoint=endpoint).error
    error = str(body.get("error") or f"HTTP {status}")
    if error_class is SessionGone:
        return SessionGone(
            "The upstream session is gone", endpoint=endpoint, status=status, payload=body
        )
    if issubclass(error_class, LoginRejected):
        details = str(body.get("details") or "")
        return error_class(
            str(body.get("error") or "Authentication failed"),
            cause=login_cause(details) or "UNKNOWN",
            endpoint=endpoint,
            status=status,
            details=details,
        )
    detail = body.get("error_message") or body.get("details") or ""
    return error_class(
        error, endpoint=endpoint, status=status, details=str(detail or ""), payload=body
    )


def classify_fault(
    endpoint: str,
    fault: str,
    *,
    status: int | None = None,
    exc: Exception | None = None,
    limit: float | None = None,
) -> UpstreamError:
    """The typed error for a call without a usable answer (by `CLASSIFICATION`); `limit` is
    the size (bytes) or the deadline (seconds) an answer went past."""
    error_class = find_rule(fault=fault).error
    if fault == "too_large":
        text = f"The upstream's answer to {endpoint} is over {limit or 0:.0f} bytes: not read"
    elif fault == "too_slow":
        text = f"The upstream's answer to {endpoint} did not arrive in full within {limit or 0:g} s"
    elif fault == "encoding":
        text = f"The upstream answered {endpoint} in an encoding the portal does not read"
    elif fault == "timeout":
        text = f"No answer from the upstream within the time limit for {endpoint}"
    elif fault == "redirect":
        text = (
            f"The upstream answered {endpoint} with a redirect (HTTP {status}); redirects are "
            "never followed"
        )
    elif fault == "not_json":
        text = f"The upstream answered {endpoint} with HTTP {status} and a body that is not JSON"
    else:
        text = f"Could not reach the upstream for {endpoint}: {type(exc).__name__}"
    return error_class(text, endpoint=endpoint, status=status)


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Capped exponential back-off with jitter (half fixed, half random) after `attempt`."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311


def call_with_retries(
    call: Callable[[], T],
    *,
    attempts: int | None = None,
    on_failure: Callable[[UpstreamError, int], None] | None = None,
) -> T:
    """Run `call`, repeating it after a transient failure (the one place upstream calls are
    retried beyond the connection level): at most `attempts` tries in all
    (EMODAL_RETRY_ATTEMPTS), back-off from EMODAL_RETRY_BASE_SECONDS doubling up to
    EMODAL_RETRY_MAX_SECONDS. Anything else — session gone, permanent, indeterminate, an open
    circuit — is raised at once. `on_failure(error, attempt)` sees every failure."""
    attempts = settings.EMODAL_RETRY_ATTEMPTS if attempts is None else attempts
    attempt = 1
    while True:
        try:
            return call()
        except UpstreamError as exc:
            if on_failure is not None:
                on_failure(exc, attempt)
            # An open circuit is transient, but nothing will change within a back-off.
            transient = exc.disposition is Disposition.TRANSIENT and not isinstance(
                exc, CircuitOpen
            )
            if not transient or attempt >= attempts:
                raise
        time.sleep(
            backoff_seconds(
                attempt,
                base=settings.EMODAL_RETRY_BASE_SECONDS,
                cap=settings.EMODAL_RETRY_MAX_SECONDS,
            )
        )
        attempt += 1
