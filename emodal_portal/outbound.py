"""Limits on every exchange the portal starts with another server (the upstream, webhook
receivers, the mail server): a wall-clock deadline for the whole exchange, and a cap on the
size of an answer counted after decoding.

A socket timeout bounds one read, not an exchange: a peer that sends one byte every few
seconds keeps a per-read timeout from ever firing, and a worker (with the account's lease, or
a delivery's claim) is held for as long as the peer likes. A `Deadline` keeps a duplicate of
each socket of its exchange and, when the time is up, shuts the connection down from a timer
thread: the read or write blocked on it returns at once and every later one fails, whatever
the library doing the reading (http.client's header lines, TLS, smtplib's replies). The
caller then sees an error, or an answer cut short that looks whole (http.client takes the end
of the connection for the end of the headers, or of a body without a length), and asks
`Deadline.passed` whether the clock is why: an exchange past its deadline never counts as
answered.

The exchange finds its deadline through a context variable (`with Deadline(seconds):`); the
urllib3 connection classes here hand it every socket they open or reuse (`watched_pools()`
for requests, `WatchedHTTPConnectionPool` and `WatchedHTTPSConnectionPool` for urllib3 used
directly), and `emodal_portal.mail` does the same for SMTP.

`read_capped` reads an urllib3 answer's raw bytes and decodes them itself, gzip and deflate
incrementally with a bound: a few kilobytes that inflate to gigabytes are refused after the
cap, not after the gigabytes.
"""

from __future__ import annotations

import _socket
import contextlib
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError

CHUNK = 64 * 1024

_current: ContextVar[Deadline | None] = ContextVar("outbound_deadline", default=None)


def current_deadline() -> Deadline | None:
    return _current.get()


class Deadline:
    """The wall-clock limit of one exchange: a context manager; see the module docstring."""

    def __init__(self, seconds: float) -> None:
        self.seconds = max(float(seconds), 0.0)
        self.expires_at = time.monotonic() + self.seconds
        self._fired = False
        self._closed = False
        self._lock = threading.Lock()
        # Duplicates of the exchange's sockets (their own descriptors, so that shutting one
        # down can never reach a descriptor the process reused for something else), by the
        # id of the socket they copy.
        self._watched: dict[int, socket.socket] = {}
        self._timer: threading.Timer | None = None
        self._token: Token[Deadline | None] | None = None

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    @property
    def passed(self) -> bool:
        return self._fired or time.monotonic() >= self.expires_at

    def watch(self, sock: socket.socket) -> None:
        """Shut this socket's connection down when the time is up (at once if it is)."""
        with self._lock:
            if self._closed or id(sock) in self._watched:
                return
            try:
                copy = socket.socket(fileno=os.dup(sock.fileno()))
            except OSError:
                return  # already closed: nothing left to bound
            self._watched[id(sock)] = copy
            if self._fired:
                _shut(copy)

    def __enter__(self) -> Deadline:
        self._token = _current.set(self)
        self._timer = threading.Timer(self.remaining(), self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._closed = True
            copies, self._watched = list(self._watched.values()), {}
        for copy in copies:
            copy.close()  # the copy only: the connection itself stays open (or pooled)
        if self._token is not None:
            _current.reset(self._token)

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._fired = True
            for copy in self._watched.values():
                _shut(copy)


class _CutShortFilter(logging.Filter):
    """urllib3 logs a traceback when a response's headers end mid-line: that is what a
    deadline cutting the connection looks like, and the exchange reports it itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        deadline = current_deadline()
        return deadline is None or not deadline.passed


logging.getLogger("urllib3.connection").addFilter(_CutShortFilter())


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected (any more)
        _socket.socket.shutdown(sock, socket.SHUT_RDWR)


def bound_connect_timeout(timeout: Any) -> Any:
    """The connect timeout to use under the deadline in force (if any): never past it."""
    deadline = current_deadline()
    if deadline is None:
        return timeout
    left = deadline.remaining()
    if left <= 0:
        raise TimeoutError("the exchange's deadline passed before connecting")
    if isinstance(timeout, int | float):
        return min(float(timeout), left)
    return left


class _Watched:
    """Mixed into urllib3's connections: each socket goes to the deadline in force."""

    timeout: Any
    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        try:
            self.timeout = bound_connect_timeout(self.timeout)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, str(exc)) from None
        sock = super()._new_conn()  # type: ignore[misc]
        deadline = current_deadline()
        if deadline is not None:
            # Before any TLS handshake: the copy outlives the wrapping of this socket.
            deadline.watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        deadline = current_deadline()
        if deadline is not None and self.sock is not None:
            deadline.watch(self.sock)  # a kept-alive connection, reused
        return super().request(*args, **kwargs)  # type: ignore[misc]


class WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


def watched_pools() -> dict[str, type[urllib3.HTTPConnectionPool]]:
    """For `PoolManager.pool_classes_by_scheme` (a requests adapter's pool manager)."""
    return {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}


# -- answers -------------------------------------------------------------------------------------


class BodyTooLarge(Exception):
    """The answer, decoded, is larger than the cap."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit, self.declared = limit, declared
        size = f"{declared} bytes" if declared is not None else "larger"
        super().__init__(f"{size}, over the {limit} byte limit")


class EncodingRefused(Exception):
    """The answer is compressed in a way the portal does not decode."""


class Inflater:
    """Decodes a Content-Encoding (none, gzip or deflate) a piece at a time, never producing
    more than it is asked for."""

    def __init__(self, encoding: str) -> None:
        name = (encoding or "").strip().lower()
        if name in ("", "identity"):
            self._z = None
        elif name in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif name == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise EncodingRefused(f"an answer encoded as {name[:40]!r}")

    @property
    def identity(self) -> bool:
        return self._z is None

    def feed(self, data: bytes, at_most: int) -> bytes:
        """The decoded bytes of `data`, at most `at_most` (beyond that the rest is dropped:
        the caller has what it needs, or knows the answer is over its cap)."""
        if self._z is None:
            return data[:at_most]
        try:
            return self._z.decompress(data, at_most)
        except zlib.error as exc:
            raise EncodingRefused(f"a compressed answer that does not decode ({exc})") from None


def read_capped(
    raw: urllib3.BaseHTTPResponse,
    limit: int,
    *,
    sink: Callable[[bytes], Any] | None = None,
    truncate: bool = False,
) -> bytes:
    """The answer's body, decoded, read a chunk at a time. More than `limit` decoded bytes
    raise `BodyTooLarge` (with `truncate`, the first `limit` bytes are returned instead and
    the rest is left unread). With `sink`, each piece goes there and b"" is returned."""
    inflater = Inflater(raw.headers.get("Content-Encoding", ""))
    declared = _content_length(raw)
    if not truncate and inflater.identity and declared is not None and declared > limit:
        raise BodyTooLarge(limit, declared)
    kept = bytearray()
    size = 0
    while True:
        # What one read of the socket brings (not a full chunk): what came before a read
        # that fails (the deadline) has gone to the sink already.
        chunk = raw.read1(CHUNK, decode_content=False)
        if not chunk:
            break
        piece = inflater.feed(chunk, limit - size + 1)
        if size + len(piece) > limit:
            if not truncate:
                raise BodyTooLarge(limit)
            piece = piece[: limit - size]
        size += len(piece)
        if sink is not None:
            sink(piece)
        else:
            kept += piece
        if truncate and size >= limit:
            break
    return bytes(kept)


def _content_length(raw: urllib3.BaseHTTPResponse) -> int | None:
    try:
        return int(raw.headers.get("Content-Length", ""))
    except ValueError:
        return None
