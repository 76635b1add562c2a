"""Hostile peers on loopback, for the tests (and `bench/hostile.py`) of the portal's outbound
limits: a server that answers every request in a chosen hostile way, and, in front of the
simulator, a proxy that forwards everything but one endpoint, which it answers that way.

Ways to answer (`Hostile.mode`):
- "drip_headers": the status line, then one header byte every `interval` seconds, forever;
- "drip_body": status and headers (a Content-Length), then one body byte every `interval`;
- "endless": status and headers, then body bytes as fast as the socket takes them, forever;
- "huge_json": a JSON object of `size` bytes, sent as fast as it is read ("huge_json_unsized":
  the same without a Content-Length, its end being the connection's);
- "gzip_bomb": `Content-Encoding: gzip`, a small body that inflates to a JSON of `size` bytes;
- "silent": reads the request and never answers;
- "ok": a small JSON success (`{"success": true}`).
Each request is counted (`served`, and `active`/`peak` for the answers under way); a dripping
answer stops when the client goes away or the server is stopped.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CHUNK = 64 * 1024


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A gzip stream that inflates to a JSON object of about `size` bytes."""
    head, tail = b'{"success": true, "timeline": [], "pad": "', b'"}'
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(head)]
    block = b"0" * (1024 * 1024)
    for _ in range(max(size - len(head) - len(tail), 0) // len(block)):
        parts.append(packer.compress(block))
    parts.append(packer.compress(tail))
    parts.append(packer.flush())
    return b"".join(parts)


class Hostile:
    """A threaded HTTP server on 127.0.0.1; with `upstream`, a proxy forwarding to it every
    request but those whose path starts with `target` (all of them when `target` is "")."""

    def __init__(
        self,
        mode: str = "ok",
        *,
        interval: float = 0.5,
        size: int = 1024 * 1024,
        upstream: str = "",
        target: str = "",
    ) -> None:
        self.mode, self.interval, self.size = mode, interval, size
        self.upstream, self.target = upstream.rstrip("/"), target
        self.stopping = threading.Event()
        self.served = 0
        # Answers being given now, and the most at once.
        self.active = self.peak = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path
                if outer.upstream and outer.target and not path.startswith(outer.target):
                    outer._forward(self, body)
                    return
                with outer._lock:
                    outer.served += 1
                    outer.active += 1
                    outer.peak = max(outer.peak, outer.active)
                try:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        outer._answer(self)
                finally:
                    with outer._lock:
                        outer.active -= 1
                self.close_connection = True

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Hostile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers -------------------------------------------------------------------------------

    def _pause(self) -> bool:
        """Wait one interval; False once the server is stopping."""
        return not self.stopping.wait(self.interval)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        out = handler.wfile
        mode = self.mode
        if mode == "silent":
            self.stopping.wait(600)
            return
        if mode == "drip_headers":
            out.write(b"HTTP/1.1 200 OK\r\n")
            out.flush()
            header = b"X-Drip: " + b"a" * 100_000
            for index in range(len(header)):
                if not self._pause():
                    return
                out.write(header[index : index + 1])
                out.flush()
            return
        if mode == "drip_body":
            out.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
            out.flush()
            while self._pause():
                out.write(b" ")
                out.flush()
            return
        if mode == "endless":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            block = b"x" * CHUNK
            while not self.stopping.is_set():
                out.write(block)
            return
        if mode in ("huge_json", "huge_json_unsized"):
            head, tail = b'{"success": true, "timeline": [], "pad": "', b'"}'
            pad = max(self.size - len(head) - len(tail), 0)
            length = (
                f"Content-Length: {len(head) + pad + len(tail)}\r\n"
                if mode == "huge_json"
                else "Connection: close\r\n"
            )
            out.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + f"{length}\r\n".encode()
            )
            out.write(head)
            block = b"0" * CHUNK
            while pad > 0 and not self.stopping.is_set():
                out.write(block[: min(pad, CHUNK)])
                pad -= CHUNK
            out.write(tail)
            return
        if mode == "gzip_bomb":
            bomb = gzip_bomb(self.size)
            out.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Encoding: gzip\r\n"
                + f"Content-Length: {len(bomb)}\r\n\r\n".encode()
                + bomb
            )
            return
        payload = b'{"success": true}'
        out.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
            connection.request(handler.command, handler.path, body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        finally:
            connection.close()
        handler.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    return _status_kb("VmHWM") / 1024


def rss_mb() -> float:
    """This process's resident memory now (VmRSS) in MB."""
    return _status_kb("VmRSS") / 1024


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux: writing 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as refs:  # noqa: PTH123
        refs.write("5")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:  # noqa: PTH123
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def elapsed(call: Any) -> tuple[float, Any]:
    """(seconds the call took, what it returned or raised)."""
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - returned to the caller, who asserts on it
        result = exc
    return time.monotonic() - started, result
