"""The HTTP plumbing under `EModalClient`: connection reuse, read timeouts sized from the
upstream's timings, no redirects ever followed, every answer's JSON body read on every status
and turned into a typed error (`errors.CLASSIFICATION`), streamed size-limited downloads, and
`upstream_call` told how each call went. Errors and logs name an endpoint by a label, never by
a path that holds a session id."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..signals import upstream_call
from .errors import FileTooLarge, UpstreamError, UpstreamRejected, classify_error, classify_fault

logger = logging.getLogger(__name__)

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


FILE_LABEL = "/files/{path}"


class CallGuard(Protocol):
    """Wraps every call to one server (the circuit breaker, `breaker.Breaker`)."""

    def guard(self) -> AbstractContextManager[None]: ...

    def refuse_if_open(self) -> None: ...


class Transport:
    """Sends requests to one upstream server and reads its answers (see the module docstring).
    With a `breaker`, every call but the health check passes the server's shared circuit
    breaker and may fail fast with `CircuitOpen`."""

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
                sender=type(self),
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

    # -- files -----------------------------------------------------------------------------------

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


def path_of(file_url: str) -> str:
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
