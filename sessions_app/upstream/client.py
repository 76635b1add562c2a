"""EModalClient: the only code that speaks HTTP to the upstream automation API.

Every call has a deadline sized from the upstream's timings and a cap on its answer's size
(see `transport`), reads the JSON body on every status and turns the outcome into a typed
error by one table, `CLASSIFICATION` (transient, session gone, permanent, indeterminate; see
`Disposition`).
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

from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings

from .breaker import Breaker
from .errors import UpstreamRejected, UpstreamUnavailable
from .transport import FILE_LABEL, Transport, path_of


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


class EModalClient(Transport):
    """A thin, typed client over the upstream contract (`docs/upstream-contract.md`).

    With a `breaker` (as `from_settings` builds it), every call but `health()` passes the
    server's shared circuit breaker and may fail fast with `CircuitOpen`."""

    @classmethod
    def from_settings(cls, base_url: str | None = None) -> EModalClient:
        client = cls(
            base_url or settings.EMODAL_API_URL,
            connect_timeout=settings.EMODAL_CONNECT_TIMEOUT,
            timeout_scale=settings.EMODAL_TIMEOUT_SCALE,
            max_download_bytes=settings.EMODAL_MAX_DOWNLOAD_BYTES,
            max_json_bytes=settings.EMODAL_MAX_JSON_BYTES,
        )
        # A probe holds the half-open breaker at most as long as the longest call.
        probe_seconds = client.longest_call_seconds() + 30
        client.breaker = Breaker(client.base_url, probe_seconds=probe_seconds)
        return client

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

    def make_appointment(self, session_id: str, **fields: Any) -> dict[str, Any]:
        """BOOKS A REAL APPOINTMENT (import only). Sent once per confirmation by
        `bookings_app` alone and never retried here: any failure after the request left may
        have booked (see "POST /make_appointment" in the contract)."""
        if fields.get("container_id"):
            fields["container_id"] = upper(fields["container_id"])
        return self._operation(
            "/make_appointment", session_id, fields, timeout_name="make_appointment"
        )

    # -- files -----------------------------------------------------------------------------------

    def download_file(self, file_url: str, destination: IO[bytes]) -> int:
        """Stream an upstream file into `destination`; returns the byte count.

        Raises `FileTooLarge` past `max_download_bytes` (checked while streaming, not only
        against Content-Length, which a server may omit)."""
        path = path_of(file_url)
        with self._guarded(), self._reported(FILE_LABEL) as report:
            size = self._download(path, destination)
            report["status"] = 200
            return size


def upper(container_number: str) -> str:
    """The upstream's page search is case-sensitive: numbers go out trimmed, upper case."""
    return str(container_number).strip().upper()
