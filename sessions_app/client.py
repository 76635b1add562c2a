"""EModalClient: the only code that speaks HTTP to the upstream automation API.

Every call has a connect and a read timeout sized from the upstream's timings, reads the JSON
body on every status and turns the outcome into a typed error (see `UpstreamError`). Only
`get_session` carries credentials: operations send the session id alone, so that a dead
session comes back as `SessionGone` instead of a silent re-login that spends a captcha.

Nothing here logs or raises with a password, captcha key or session id in the text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import IO, Any, ClassVar

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .redaction import redact

logger = logging.getLogger(__name__)

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
    "get_session": 240,  # captcha (gives up after ~2 min) + login
    "get_containers": 300,  # full scroll 90-180 s
    "get_containers_first_page": 120,
    "get_container_timeline": 120,  # not found: 30-60 s
    "get_booking_number": 120,
    "get_info_bulk": 60,  # plus `get_info_bulk_per_container` for each container
    "get_info_bulk_per_container": 20,  # 5-10 s each, sequential
    "check_appointments": 120,  # 30-45 s
    "get_appointments": 120,  # 10-40 s
    "file": 60,
}

# Captcha-service answers that mean the key itself is refused: retrying cannot help.
CAPTCHA_KEY_REFUSALS = (
    "ERROR_ZERO_BALANCE",
    "ERROR_KEY_DOES_NOT_EXIST",
    "ERROR_WRONG_USER_KEY",
    "ERROR_IP_NOT_ALLOWED",
    "ERROR_NO_SLOT_AVAILABLE",
)


class UpstreamError(Exception):
    """An upstream call did not succeed. `retryable` says whether repeating it may help."""

    retryable: ClassVar[bool] = False

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


class LoginRejected(UpstreamError):
    """The upstream could not log in (HTTP 401). `cause` is the upstream's cause token."""

    def __init__(self, message: str, *, cause: str, **kwargs: Any) -> None:
        self.cause = cause
        super().__init__(message, **kwargs)


class CredentialsRejected(LoginRejected):
    """E-Modal refused the username/password (or requires a VPN): fix the account."""


class CaptchaKeyRefused(LoginRejected):
    """The captcha service refused the API key (invalid, no balance): fix the key."""


class LoginFailed(LoginRejected):
    """Login failed for a passing reason (captcha not solved in time, network)."""

    retryable = True


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached or failed in its automation (5xx, bad body)."""

    retryable = True


class UpstreamTimeout(UpstreamUnavailable):
    """No answer within the read timeout: the call may or may not have happened upstream,
    so it must not be replayed blindly."""

    retryable = False


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


def classify_login_failure(endpoint: str, status: int, body: dict[str, Any]) -> LoginRejected:
    error = str(body.get("error") or "Authentication failed")
    details = str(body.get("details") or "")
    cause = details.split(":", 1)[0].strip().lower() or "unknown"
    kwargs: dict[str, Any] = {"endpoint": endpoint, "status": status, "details": details}
    if cause in ("invalid_credentials", "vpn_required", "account_locked"):
        return CredentialsRejected(error, cause=cause, **kwargs)
    if cause == "recaptcha_failed" and any(code in details for code in CAPTCHA_KEY_REFUSALS):
        return CaptchaKeyRefused(error, cause=cause, **kwargs)
    return LoginFailed(error, cause=cause, **kwargs)


def classify_error(endpoint: str, status: int, body: dict[str, Any]) -> UpstreamError:
    """Map a non-success answer to the error family (one table, used for every endpoint)."""
    error = str(body.get("error") or f"HTTP {status}")
    kwargs: dict[str, Any] = {"endpoint": endpoint, "status": status, "payload": body}
    if status == 400 and error.strip() == SESSION_GONE_MARKER:
        return SessionGone("The upstream session is gone", **kwargs)
    if status == 401:
        return classify_login_failure(endpoint, status, body)
    detail = body.get("error_message") or body.get("details") or ""
    kwargs["details"] = str(detail) if detail else ""
    if 400 <= status < 500:
        return UpstreamRejected(error, **kwargs)
    if "not found" in error.lower():
        # The automation reports a missing container as a 500 ("Search failed: ...");
        # repeating the search cannot find it.
        return UpstreamRejected(error, **kwargs)
    return UpstreamUnavailable(error, **kwargs)


class EModalClient:
    """A thin, typed client over the upstream contract (see `emodal-api.md`)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        timeout_scale: float = 1.0,
        timeouts: dict[str, float] | None = None,
        max_download_bytes: int = 50 * 1024 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
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
        return cls(
            base_url or settings.EMODAL_API_URL,
            connect_timeout=settings.EMODAL_CONNECT_TIMEOUT,
            timeout_scale=settings.EMODAL_TIMEOUT_SCALE,
            max_download_bytes=settings.EMODAL_MAX_DOWNLOAD_BYTES,
        )

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
    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        # Errors and logs name the endpoint by `label`: a path can hold a session id.
        # Exceptions from requests are not chained (`from None`): they quote the full URL.
        path = label or path
        started = time.monotonic()
        try:
            response = self.http.request(
                method, url, json=json, timeout=self._timeout(timeout_name, extra_timeout)
            )
        except requests.exceptions.ReadTimeout:
            raise UpstreamTimeout(
                f"No answer from the upstream within the time limit for {path}", endpoint=path
            ) from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamUnavailable(
                f"Could not reach the upstream for {path}: {type(exc).__name__}", endpoint=path
            ) from None
        elapsed = time.monotonic() - started
        body = _json_body(response)
        logger.info("upstream %s %s -> %s in %.2fs", method, path, response.status_code, elapsed)
        if body is None:
            raise UpstreamUnavailable(
                f"The upstream answered {path} with HTTP {response.status_code} "
                "and a body that is not JSON",
                endpoint=path,
                status=response.status_code,
            )
        if response.status_code == 200 and body.get("success", True) is not False:
            return body
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
        payload = {"session_id": session_id, **{k: v for k, v in fields.items() if v is not None}}
        return self._request(
            "POST", path, json=payload, timeout_name=timeout_name, extra_timeout=extra_timeout
        )

    # -- sessions ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health", timeout_name="health")

    def list_sessions(self) -> list[UpstreamSession]:
        body = self._request("GET", "/sessions", timeout_name="sessions")
        return [
            UpstreamSession(
                session_id=str(item["session_id"]),
                username=str(item.get("username") or ""),
                created_at=item.get("created_at"),
                last_used=item.get("last_used"),
            )
            for item in body.get("sessions") or []
            if item.get("session_id")
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
                "target_container_id": target_container_id,
                "return_url": True,
            },
            timeout_name="get_containers" if infinite_scrolling else "get_containers_first_page",
        )

    def get_container_timeline(self, session_id: str, *, container_id: str) -> dict[str, Any]:
        return self._operation(
            "/get_container_timeline",
            session_id,
            {"container_id": container_id},
            timeout_name="get_container_timeline",
        )

    def get_booking_number(self, session_id: str, *, container_id: str) -> dict[str, Any]:
        return self._operation(
            "/get_booking_number",
            session_id,
            {"container_id": container_id},
            timeout_name="get_booking_number",
        )

    def get_info_bulk(
        self,
        session_id: str,
        *,
        import_containers: list[str] | None = None,
        export_containers: list[str] | None = None,
    ) -> dict[str, Any]:
        imports, exports = list(import_containers or []), list(export_containers or [])
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
        url = f"{self.base_url}{path}"
        try:
            with self.http.get(url, stream=True, timeout=self._timeout("file")) as response:
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
            raise UpstreamTimeout(f"Download of {path} timed out", endpoint=path) from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamUnavailable(
                f"Could not download {path}: {type(exc).__name__}", endpoint=path
            ) from None


def _path_of(file_url: str) -> str:
    """The upstream hands out absolute URLs; only their path is used, always on the
    configured server (never a host named by a response)."""
    if "://" in file_url:
        file_url = "/" + file_url.split("://", 1)[1].split("/", 1)[-1]
    if not file_url.startswith("/files/") or ".." in file_url:
        raise UpstreamRejected("The upstream named a file outside /files/", endpoint="/files")
    return file_url


def _json_body(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
