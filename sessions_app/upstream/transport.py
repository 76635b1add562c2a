"""The HTTP plumbing under `EModalClient`: connection reuse, a deadline on every call sized
from the upstream's timings, no redirects ever followed, every answer's JSON body read on
every status and turned into a typed error (`errors.CLASSIFICATION`), streamed size-limited
downloads, and `upstream_call` told how each call went. Errors and logs name an endpoint by a
label, never by a path that holds a session id.

Every call, a file download included, ends by its deadline (the endpoint's time below) for
connecting (within the connect timeout), sending, the status, the headers and the body together
(`emodal_portal.outbound.Deadline`), however slowly the server sends them; the account's lease
is given back then. An answer is read raw and decoded here, up to EMODAL_MAX_JSON_BYTES
(EMODAL_MAX_DOWNLOAD_BYTES for a file) once decoded: a huge answer, or a small gzip one that
inflates to gigabytes, fails its call as `AnswerTooLarge` after that many bytes. Past its
deadline a call fails as `UpstreamTimeout` when no answer had begun, as `AnswerTooSlow` when
one had but did not arrive in full."""

from __future__ import annotations

import json as json_module
import logging
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.retry import Retry

from emodal_portal.outbound import (
    BodyTooLarge,
    Deadline,
    EncodingRefused,
    read_capped,
    watched_pools,
)

from ..signals import upstream_call
from .errors import FileTooLarge, UpstreamError, UpstreamRejected, classify_error, classify_fault

logger = logging.getLogger(__name__)

# Each call's deadline in seconds (connecting, sending and the whole answer), from the
# upstream's timings with headroom. `timeout_scale` multiplies them (a time-scaled simulator
# answers proportionally faster).
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
    # ~2-3 min of the check's waits plus Submit; never retried, so its deadline is generous:
    # a timeout leaves the booking's outcome unknown.
    "make_appointment": 300,
    "file": 60,
}


FILE_LABEL = "/files/{path}"

# Answers are read as they are sent: the upstream's Flask server compresses nothing, and an
# answer compressed anyway (a proxy in between) is decoded here with a bound.
PLAIN = {"Accept-Encoding": "identity"}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with connections that hand their sockets to the call's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = watched_pools()


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
        max_json_bytes: int = 5 * 1024 * 1024,
        breaker: CallGuard | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.breaker = breaker
        self.connect_timeout = connect_timeout
        self.timeout_scale = timeout_scale
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.max_download_bytes = max_download_bytes
        self.max_json_bytes = max_json_bytes
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
        adapter = _WatchedAdapter(max_retries=retry, pool_connections=4, pool_maxsize=32)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def _guarded(self) -> AbstractContextManager[None]:
        return self.breaker.guard() if self.breaker is not None else nullcontext()

    def longest_call_seconds(self) -> float:
        """The longest deadline of any single call (how long a call may hold a browser)."""
        return max(self.timeouts.values()) * self.timeout_scale

    def close(self) -> None:
        self.http.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _deadline(self, name: str, extra: float = 0.0) -> Deadline:
        return Deadline((self.timeouts[name] + extra) * self.timeout_scale)

    def _timeout(self, deadline: Deadline) -> tuple[float, float]:
        # Per read, the time left: a silent server times out with the deadline; a dripping
        # one is cut off by the deadline itself.
        left = deadline.remaining()
        return (min(self.connect_timeout, left), left)

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
        with self._deadline(timeout_name, extra_timeout) as deadline:
            response = self._send_request(method, url, path, deadline, json=json)
            try:
                if response.is_redirect:
                    raise classify_fault(path, "redirect", status=response.status_code)
                content = self._read(response, path, deadline, self.max_json_bytes)
            except BaseException:
                response.close()
                raise
            response.raw.release_conn()
        elapsed = time.monotonic() - started
        logger.info("upstream %s %s -> %s in %.2fs", method, path, response.status_code, elapsed)
        body = _json_body(content)
        if body is None:
            raise classify_fault(path, "not_json", status=response.status_code)
        if response.status_code == 200 and body.get("success", True) is not False:
            return body, response.status_code
        raise classify_error(path, response.status_code, body)

    def _send_request(
        self,
        method: str,
        url: str,
        path: str,
        deadline: Deadline,
        *,
        json: dict[str, Any] | None = None,
    ) -> requests.Response:
        """Send the request and read the status and headers (the body is read by `_read`)."""
        try:
            response = self.http.request(
                method,
                url,
                json=json,
                headers=PLAIN,
                timeout=self._timeout(deadline),
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.RequestException as exc:
            if deadline.passed or isinstance(exc, requests.exceptions.ReadTimeout):
                raise classify_fault(path, "timeout") from None
            error = classify_fault(path, "connection", exc=exc)
            error.may_still_run = request_left(exc)
            raise error from None
        if deadline.passed:  # the headers may have been cut short
            response.close()
            raise classify_fault(path, "timeout")
        return response

    def _read(
        self,
        response: requests.Response,
        path: str,
        deadline: Deadline,
        limit: int,
        sink: Any = None,
    ) -> bytes:
        """The answer's body, decoded, within the deadline and `limit` (see the docstring)."""
        try:
            content = read_capped(response.raw, limit, sink=sink)
            if deadline.passed:  # the body may have been cut short
                raise TimeoutError
            return content
        except BodyTooLarge:
            if sink is not None:
                raise
            raise classify_fault(
                path, "too_large", status=response.status_code, limit=limit
            ) from None
        except EncodingRefused:
            raise classify_fault(path, "encoding", status=response.status_code) from None
        except Exception as exc:
            # Whatever the connection's end raised (a broken read, a short body, a closed
            # socket): past the deadline, that is why.
            if deadline.passed:
                raise classify_fault(
                    path, "too_slow", status=response.status_code, limit=deadline.seconds
                ) from None
            raise classify_fault(path, "connection", exc=exc) from None

    # -- files -----------------------------------------------------------------------------------

    def _download(self, path: str, destination: IO[bytes]) -> int:
        url = f"{self.base_url}{path}"
        # A file's path holds the session id: errors and logs name it by this label.
        path = FILE_LABEL
        with self._deadline("file") as deadline:
            response = self._send_request("GET", url, path, deadline)
            try:
                if response.is_redirect:
                    raise classify_fault(path, "redirect", status=response.status_code)
                if response.status_code != 200:
                    content = self._read(response, path, deadline, self.max_json_bytes)
                    raise classify_error(path, response.status_code, _json_body(content) or {})
                size = 0

                def write(piece: bytes) -> None:
                    nonlocal size
                    size += len(piece)
                    destination.write(piece)

                try:
                    self._read(response, path, deadline, self.max_download_bytes, sink=write)
                except BodyTooLarge as exc:
                    if exc.declared is not None:
                        text = f"File is {exc.declared} bytes, over the {exc.limit} limit"
                    else:
                        text = f"File exceeds the {exc.limit} byte limit"
                    raise FileTooLarge(text, endpoint=path) from None
            except BaseException:
                response.close()
                raise
            response.raw.release_conn()
            return size


# A part of a file's path as the upstream names its files (a session id, a sheet's or a
# screenshot's name). Nothing else is sent: no `..`, no percent-encoding (`%2e%2e`, `%2f`
# decode to a traversal on the server), no backslash, query or empty part.
FILE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def path_of(file_url: str) -> str:
    """The upstream hands out absolute URLs; only their path is used, always on the
    configured server (never a host named by a response)."""
    if "://" in file_url:
        file_url = "/" + file_url.split("://", 1)[1].split("/", 1)[-1]
    parts = file_url.split("/")[2:]
    if (
        not file_url.startswith("/files/")
        or not parts
        or not all(FILE_PART.fullmatch(part) and ".." not in part for part in parts)
    ):
        raise UpstreamRejected(
            "The upstream named a file outside /files/ or a path the portal does not fetch "
            "(a '..', '%', '\\', query or empty part)",
            endpoint=FILE_LABEL,
        )
    return file_url


def _json_body(content: bytes) -> dict[str, Any] | None:
    try:
        body = json_module.loads(content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def request_left(exc: requests.exceptions.RequestException) -> bool:
    """Whether a request that failed without an answer may have reached the server: all but a
    connection that never opened (refused, unreachable, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return not isinstance(reason, NewConnectionError | ConnectTimeoutError)
