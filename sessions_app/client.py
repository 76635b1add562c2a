"""EModalClient: the only code that speaks HTTP to the upstream automation API.

Every call has a connect and a read timeout sized from the upstream's timings, reads the JSON
body on every status and turns the outcome into a typed error by one table,
`CLASSIFICATION` (transient, session gone, permanent, indeterminate; see `Disposition`).
`call_with_retries` is the one place a transient failure is retried with back-off. Only
`get_session` carries credentials: operations send the session id alone, so that a dead
session comes back as `SessionGone` instead of a silent re-login that spends a captcha.
Every operation sends `debug: false` (the upstream otherwise builds a zip of screenshots on
each call), container numbers go out trimmed and upper case (the upstream's page search is
case-sensitive), and no redirect is ever followed (a redirect would resend credentials, or
fetch a file, from wherever it points).

Nothing here logs or raises with a password, captcha key or session id in the text; file URLs
hold a session id and are never logged either. The contract this implements is
`docs/upstream-contract.md`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any, ClassVar, Protocol, TypeVar

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .redaction import redact
from .signals import upstream_call

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The only reliable "session is gone" signal (a 400 with exactly this error text); every
# other 400 is a real validation error and must not cause a new login.
SESSION_GONE_MARKER = (
    "Missing required fields: username, password, captcha_api_key (or valid session_id)"
)

# Read timeouts in seconds, from the upstream's timings with headroom. `timeout_scale`
# multiplies them (a time-scaled simulator answers proportionally faster).
DEFAULT_TIMEOUTS: dict[str, float] = {
    "health": 15,
    "sessions": 15,
    # The captcha (the solver gives up after ~2 min), the login itself, and the 10 s the
    # server waits for an operator to finish a failed login by hand before it answers.
    "get_session": 250,
    "get_containers": 300,  # full scroll 90-180 s
    "get_containers_first_page": 120,
    "get_container_timeline": 120,  # not found: 30-60 s
    "get_booking_number": 120,
    "get_info_bulk": 60,  # plus `get_info_bulk_per_container` for each container
    "get_info_bulk_per_container": 20,  # 5-10 s each, sequential
    # 45-50 s of fixed waits, ~35 s before late validation answers, and ~30 s when the
    # keep-alive moved an idle browser to another page.
    "check_appointments": 180,
    "get_appointments": 120,  # 10-40 s
    "file": 60,
}

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
        self.payload = {k: v for k, v in (payload or {}).items() if k not in _SECRET_FIELDS}
        super().__init__(self.readable())

    def readable(self) -> str:
        text = self.message
        if self.details:
            text = f"{text} ({self.details})"
        return text


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


class CircuitOpen(UpstreamUnavailable):
    """The server failed too often in a row (see `breaker.py`): calls to it fail fast, without
    reaching it, until one probe after the reset time succeeds. Retryable later, not now."""

    counts_as_failure = False


class UpstreamRejected(UpstreamError):
    """The upstream answered that the request itself cannot succeed (validation, not found)."""


class FileTooLarge(UpstreamError):
    """A file download exceeded the configured size limit."""


_SECRET_FIELDS = {"session_id", "password", "captcha_api_key", "username"}


@dataclass(frozen=True)
class SessionGrant:
    session_id: str
    is_new: bool
    username: str

    def __repr__(self) -> str:  # keep the bearer token out of reprs and tracebacks
        return f"SessionGrant(is_new={self.is_new}, username={self.username!r})"


@dataclass(frozen=True)
class UpstreamSession:
    session_id: str
    username: str
    created_at: str | None
    last_used: str | None

    def __repr__(self) -> str:
        return f"UpstreamSession(username={self.username!r}, last_used={self.last_used!r})"


@dataclass(frozen=True)
class Rule:
    """One row of the classification: every condition given must hold. `fault` names a
    failure without a usable JSON answer ("timeout", "connection", "not_json"); rows without
    one match JSON answers by status, exact error `marker`, login `cause` (the failure type
    named in `details`, see `login_cause`), or text in the error."""

    error: type[UpstreamError]
    note: str
    fault: str = ""
    status: range = range(0, 1000)
    marker: str = ""
    cause: str = ""
    error_contains: str = ""

    def matches(self, *, fault: str, status: int | None, body: dict[str, Any]) -> bool:
        if self.fault or fault:
            return self.fault == fault
        error = str(body.get("error") or "")
        return (
            status in self.status
            and (not self.marker or error.strip() == self.marker)
            and (not self.cause or login_cause(body.get("details")) == self.cause)
            and (not self.error_contains or self.error_contains in error.lower())
        )


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
    # -- the rest --------------------------------------------------------------------------------
    Rule(UpstreamRejected, "validation error, unknown file or session", status=range(400, 500)),
    # The automation reports a missing container as a 500 ("Search failed: ... not found");
    # repeating the search cannot find it.
    Rule(UpstreamRejected, "not found", status=range(500, 600), error_contains="not found"),
    # An account with no containers: its export has nothing in it, however often it is asked.
    Rule(
        UpstreamRejected,
        "no containers to export",
        status=range(500, 600),
        error_contains="no container data extracted",
    ),
    # An appointment page refusing what it was given (a terminal or trucking company its
    # dropdown does not have, a truck plate): the same input fails the same way, and every
    # failed check poisons the browser, so it is never repeated.
    Rule(
        UpstreamRejected,
        "appointment page refused a field",
        status=range(500, 600),
        error_contains="phase 1 failed - ",
    ),
    Rule(
        UpstreamRejected,
        "appointment page refused a field",
        status=range(500, 600),
        error_contains="phase 2 failed - ",
    ),
    Rule(UpstreamUnavailable, "automation failure", status=range(500, 600)),
    Rule(UpstreamUnavailable, "any other answer (2xx with success false, 3xx)"),
)


def find_rule(
    *, status: int | None = None, body: dict[str, Any] | None = None, fault: str = ""
) -> Rule:
    for rule in CLASSIFICATION:
        if rule.matches(fault=fault, status=status, body=body or {}):
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
    error_class = find_rule(status=status, body=body).error
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
    endpoint: str, fault: str, *, status: int | None = None, exc: Exception | None = None
) -> UpstreamError:
    """The typed error for a call without a usable answer (by `CLASSIFICATION`)."""
    error_class = find_rule(fault=fault).error
    if fault == "timeout":
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


class CallGuard(Protocol):
    """Wraps every call to one server (the circuit breaker, `breaker.Breaker`)."""

    def guard(self) -> AbstractContextManager[None]: ...

    def refuse_if_open(self) -> None: ...


class EModalClient:
    """A thin, typed client over the upstream contract (`docs/upstream-contract.md`).

    With a `breaker` (as `from_settings` builds it), every call but `health()` passes the
    server's shared circuit breaker and may fail fast with `CircuitOpen`."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        timeout_scale: float = 1.0,
        timeouts: dict[str, float] | None = None,
        max_download_bytes: int = 50 * 1024 * 1024,
        breaker: CallGuard | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.breaker = breaker
        self.connect_timeout = connect_timeout
        self.timeout_scale = timeout_scale
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.max_download_bytes = max_download_bytes
        self.http = requests.Session()
        # Retries at this level only where repeating is harmless: a refused connection (the
        # request never left) for any method, and read failures for GET/DELETE only.
        retry = Retry(
            total=3,
            connect=2,
            read=2,
            status=0,
            other=0,
            allowed_methods=frozenset({"GET", "DELETE"}),
            backoff_factor=0.2,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=32)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    @classmethod
    def from_settings(cls, base_url: str | None = None) -> EModalClient:
        from .breaker import Breaker  # the breaker's errors come from this module

        client = cls(
            base_url or settings.EMODAL_API_URL,
            connect_timeout=settings.EMODAL_CONNECT_TIMEOUT,
            timeout_scale=settings.EMODAL_TIMEOUT_SCALE,
            max_download_bytes=settings.EMODAL_MAX_DOWNLOAD_BYTES,
        )
        # A probe holds the half-open breaker at most as long as the longest call.
        probe_seconds = client.longest_call_seconds() + 30
        client.breaker = Breaker(client.base_url, probe_seconds=probe_seconds)
        return client

    def _guarded(self) -> AbstractContextManager[None]:
        return self.breaker.guard() if self.breaker is not None else nullcontext()

    def longest_call_seconds(self) -> float:
        """The longest read timeout of any single call (how long a call may hold a browser)."""
        return max(self.timeouts.values()) * self.timeout_scale

    def close(self) -> None:
        self.http.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _timeout(self, name: str, extra: float = 0.0) -> tuple[float, float]:
        return (self.connect_timeout, (self.timeouts[name] + extra) * self.timeout_scale)

    def _request(
        self,
        method: str,
        path: str,
        *,
        timeout_name: str,
        json: dict[str, Any] | None = None,
        extra_timeout: float = 0.0,
        label: str | None = None,
        guarded: bool = True,
    ) -> dict[str, Any]:
        with self._guarded() if guarded else nullcontext():
            return self._send(
                method,
                path,
                timeout_name=timeout_name,
                json=json,
                extra_timeout=extra_timeout,
                label=label,
            )

    def _send(
        self,
        method: str,
        path: str,
        *,
        timeout_name: str,
        json: dict[str, Any] | None,
        extra_timeout: float,
        label: str | None,
    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        # Errors and logs name the endpoint by `label`: a path can hold a session id.
        # Exceptions from requests are not chained (`from None`): they quote the full URL.
        path = label or path
        with self._reported(path) as report:
            body, status = self._answer(method, url, path, json, timeout_name, extra_timeout)
            report["status"] = status
            return body

    @contextmanager
    def _reported(self, endpoint: str) -> Iterator[dict[str, Any]]:
        """Tell `upstream_call` how a call went (its outcome, status and duration)."""
        report: dict[str, Any] = {"status": None}
        started = time.monotonic()
        outcome = "ok"
        try:
            yield report
        except UpstreamError as exc:
            outcome, report["status"] = type(exc).__name__, exc.status
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            upstream_call.send_robust(
                sender=EModalClient,
                server=self.base_url,
                endpoint=endpoint,
                outcome=outcome,
                status=report["status"],
                duration=time.monotonic() - started,
            )

    def _answer(
        self,
        method: str,
        url: str,
        path: str,
        json: dict[str, Any] | None,
        timeout_name: str,
        extra_timeout: float,
    ) -> tuple[dict[str, Any], int]:
        started = time.monotonic()
        try:
            response = self.http.request(
                method,
                url,
                json=json,
                timeout=self._timeout(timeout_name, extra_timeout),
                allow_redirects=False,
            )
        except requests.exceptions.ReadTimeout:
            raise classify_fault(path, "timeout") from None
        except requests.exceptions.RequestException as exc:
            raise classify_fault(path, "connection", exc=exc) from None
        elapsed = time.monotonic() - started
        logger.info("upstream %s %s -> %s in %.2fs", method, path, response.status_code, elapsed)
        if response.is_redirect:
            raise classify_fault(path, "redirect", status=response.status_code)
        body = _json_body(response)
        if body is None:
            raise classify_fault(path, "not_json", status=response.status_code)
        if response.status_code == 200 and body.get("success", True) is not False:
            return body, response.status_code
        raise classify_error(path, response.status_code, body)

    def _operation(
        self,
        path: str,
        session_id: str,
        fields: dict[str, Any],
        *,
        timeout_name: str,
        extra_timeout: float = 0.0,
    ) -> dict[str, Any]:
        # The session id alone, never credentials (see the module docstring).
        payload = {
            "session_id": session_id,
            **{k: v for k, v in fields.items() if v is not None},
            "debug": False,
        }
        return self._request(
            "POST", path, json=payload, timeout_name=timeout_name, extra_timeout=extra_timeout
        )

    # -- sessions ------------------------------------------------------------------------------

    def health(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server's own health report. Not guarded by the breaker: it is how reachability
        is observed (`/healthz`); `timeout` overrides the read timeout (seconds)."""
        if timeout is not None:
            extra = timeout / self.timeout_scale - self.timeouts["health"]
            return self._request(
                "GET", "/health", timeout_name="health", extra_timeout=extra, guarded=False
            )
        return self._request("GET", "/health", timeout_name="health", guarded=False)

    def list_sessions(self) -> list[UpstreamSession]:
        """Every tenant's sessions. Refused while the breaker is open, but its failures do not
        count there: the upstream answers this with an HTML 500 while any one browser is dead,
        which says nothing of the server."""
        if self.breaker is not None:
            self.breaker.refuse_if_open()
        body = self._request("GET", "/sessions", timeout_name="sessions", guarded=False)
        return [
            UpstreamSession(
                session_id=str(item["session_id"]),
                username=str(item.get("username") or ""),
                created_at=item.get("created_at"),
                last_used=item.get("last_used"),
            )
            for item in body.get("sessions") or []
            if isinstance(item, dict) and item.get("session_id")
        ]

    def delete_session(self, session_id: str) -> bool:
        """Close a session upstream. False when the upstream no longer knew it."""
        try:
            self._request(
                "DELETE",
                f"/sessions/{session_id}",
                timeout_name="sessions",
                label="/sessions/{id}",
            )
        except UpstreamRejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def get_session(self, *, username: str, password: str, captcha_api_key: str) -> SessionGrant:
        """Log in (solving a captcha) or reuse the upstream's session for these credentials."""
        body = self._request(
            "POST",
            "/get_session",
            json={"username": username, "password": password, "captcha_api_key": captcha_api_key},
            timeout_name="get_session",
        )
        session_id = body.get("session_id")
        if not session_id:
            raise UpstreamUnavailable("The upstream answered a login without a session id")
        return SessionGrant(
            session_id=str(session_id), is_new=bool(body.get("is_new")), username=username
        )

    # -- operations ----------------------------------------------------------------------------

    def get_containers(
        self,
        session_id: str,
        *,
        infinite_scrolling: bool = True,
        target_count: int | None = None,
        target_container_id: str | None = None,
    ) -> dict[str, Any]:
        """The containers sheet's metadata; `file_url` points at the .xlsx to download."""
        return self._operation(
            "/get_containers",
            session_id,
            {
                "infinite_scrolling": infinite_scrolling,
                "target_count": target_count,
                "target_container_id": upper(target_container_id) if target_container_id else None,
                "return_url": True,
            },
            timeout_name="get_containers" if infinite_scrolling else "get_containers_first_page",
        )

    def get_container_timeline(self, session_id: str, *, container_id: str) -> dict[str, Any]:
        return self._operation(
            "/get_container_timeline",
            session_id,
            {"container_id": upper(container_id)},
            timeout_name="get_container_timeline",
        )

    def get_booking_number(self, session_id: str, *, container_id: str) -> dict[str, Any]:
        return self._operation(
            "/get_booking_number",
            session_id,
            {"container_id": upper(container_id)},
            timeout_name="get_booking_number",
        )

    def get_info_bulk(
        self,
        session_id: str,
        *,
        import_containers: list[str] | None = None,
        export_containers: list[str] | None = None,
    ) -> dict[str, Any]:
        imports = [upper(number) for number in import_containers or []]
        exports = [upper(number) for number in export_containers or []]
        return self._operation(
            "/get_info_bulk",
            session_id,
            {"import_containers": imports, "export_containers": exports},
            timeout_name="get_info_bulk",
            extra_timeout=self.timeouts["get_info_bulk_per_container"]
            * (len(imports) + len(exports)),
        )

    def check_appointments(self, session_id: str, **fields: Any) -> dict[str, Any]:
        """Read available appointment slots. Never books anything."""
        for name in ("container_id", "booking_number"):
            if fields.get(name):
                fields[name] = upper(fields[name])
        return self._operation(
            "/check_appointments", session_id, fields, timeout_name="check_appointments"
        )

    def get_appointments(
        self,
        session_id: str,
        *,
        target_count: int | None = None,
        target_appointment_id: str | None = None,
    ) -> dict[str, Any]:
        return self._operation(
            "/get_appointments",
            session_id,
            {"target_count": target_count, "target_appointment_id": target_appointment_id},
            timeout_name="get_appointments",
        )

    # -- files -----------------------------------------------------------------------------------

    def download_file(self, file_url: str, destination: IO[bytes]) -> int:
        """Stream an upstream file into `destination`; returns the byte count.

        Raises `FileTooLarge` past `max_download_bytes` (checked while streaming, not only
        against Content-Length, which a server may omit)."""
        path = _path_of(file_url)
        with self._guarded(), self._reported(FILE_LABEL) as report:
            size = self._download(path, destination)
            report["status"] = 200
            return size

    def _download(self, path: str, destination: IO[bytes]) -> int:
        url = f"{self.base_url}{path}"
        # A file's path holds the session id: errors and logs name it by this label.
        path = FILE_LABEL
        try:
            with self.http.get(
                url, stream=True, timeout=self._timeout("file"), allow_redirects=False
            ) as response:
                if response.is_redirect:
                    raise classify_fault(path, "redirect", status=response.status_code)
                if response.status_code != 200:
                    body = _json_body(response) or {}
                    raise classify_error(path, response.status_code, body)
                declared = int(response.headers.get("Content-Length") or 0)
                if declared > self.max_download_bytes:
                    raise FileTooLarge(
                        f"File is {declared} bytes, over the {self.max_download_bytes} limit",
                        endpoint=path,
                    )
                size = 0
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    size += len(chunk)
                    if size > self.max_download_bytes:
                        raise FileTooLarge(
                            f"File exceeds the {self.max_download_bytes} byte limit",
                            endpoint=path,
                        )
                    destination.write(chunk)
                return size
        except requests.exceptions.ReadTimeout:
            raise classify_fault(path, "timeout") from None
        except requests.exceptions.RequestException as exc:
            raise classify_fault(path, "connection", exc=exc) from None


FILE_LABEL = "/files/{path}"


def upper(container_number: str) -> str:
    """The upstream's page search is case-sensitive: numbers go out trimmed, upper case."""
    return str(container_number).strip().upper()


def _path_of(file_url: str) -> str:
    """The upstream hands out absolute URLs; only their path is used, always on the
    configured server (never a host named by a response)."""
    if "://" in file_url:
        file_url = "/" + file_url.split("://", 1)[1].split("/", 1)[-1]
    if not file_url.startswith("/files/") or ".." in file_url:
        raise UpstreamRejected("The upstream named a file outside /files/", endpoint=FILE_LABEL)
    return file_url


def _json_body(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
