"""HTTP front of the simulator: routing, faults, the /_sim/ control surface, SimServer."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import data, endpoints, glitches, texts
from .config import SimConfig
from .core import Context, Response
from .state import ApiError, Call, HtmlCrash, SimState

JSON_ERROR = texts.JSON_ERROR
BAD_REQUEST_ERROR = f"Unexpected error: {texts.BAD_REQUEST}"
UNSUPPORTED_MEDIA_TYPE_ERROR = texts.UNSUPPORTED_MEDIA_TYPE
# Endpoints that read a JSON body.
JSON_ENDPOINTS = {"/get_session", *endpoints.OPERATION_ENDPOINTS}
# Their handlers answer an unreadable body with the exception's bare text (no prefix).
BARE_EXCEPTION_ENDPOINTS = {"/get_session", "/get_info_bulk"}
# The poison sweep runs first thing in these, before the body is even read (L7472, L8286).
SWEEPING_ENDPOINTS = {"/check_appointments", "/make_appointment"}
HTML_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The proxy received an invalid response.</p></body></html>"
)


# Endpoint names chaos can be limited to, as they appear in the call history.
CHAOS_ENDPOINTS = {*endpoints.POST_ENDPOINTS, "/sessions", "/sessions/{id}", "/files/{name}"}


class _NotJson(Exception):
    pass


def _unexpected(endpoint: str, text: str) -> ApiError:
    """A body the handler could not read, in that handler's words."""
    if endpoint in BARE_EXCEPTION_ENDPOINTS:
        return ApiError(500, text)
    if endpoint == "/check_appointments":
        return ApiError(500, f"Unexpected error: {text}", current_phase=0)
    return ApiError(500, f"Unexpected error: {text}")


class _ConnectionDropped(Exception):
    """A "close" fault: hang up without answering."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: SimState
    quiet: bool

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        # Open client connections, so that stopping hangs up on them too: a kept-alive
        # connection would otherwise go on being served after the server stopped.
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def hang_up(self) -> None:
        """Drop every open client connection without an answer (a crashed process)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a timed-out read, a closed pool) is ordinary here; anything
        # else keeps the standard traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _is_json_type(content_type: str) -> bool:
    """Flask's ``request.is_json``: application/json or application/*+json."""
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _NotJson from None
    if not isinstance(value, dict):
        raise _NotJson
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer
    server_version = "Werkzeug/3.0.1"
    sys_version = "Python/3.11"

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # ------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        # The whole body must be consumed, or the next request on a kept-alive
        # connection would be parsed from its leftovers.
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        if not host:
            address, port = self.server.server_address[:2]
            host = f"{address!s}:{port}"
        return f"http://{host}"

    def _dispatch(self, method: str) -> None:
        raw = self._read_body()
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        try:
            if path.startswith("/_sim/"):
                response = self._control(method, path, parse_qs(parts.query), raw)
            else:
                response = self._public(method, path, raw)
        except _ConnectionDropped:
            self.close_connection = True
            return
        self._send(response)

    # ---------------------------------------------------------- public API

    def _route(
        self, method: str, path: str
    ) -> tuple[str, Callable[..., Response], tuple[str, ...]] | Response:
        if method == "POST" and path in endpoints.POST_ENDPOINTS:
            return path, endpoints.POST_ENDPOINTS[path], ()
        if method == "GET" and path == "/health":
            return path, endpoints.health, ()
        if method == "GET" and path == "/sessions":
            return path, endpoints.list_sessions, ()
        is_session = path.startswith("/sessions/") and len(path) > 10
        is_file = path.startswith("/files/") and len(path) > 7
        if method == "DELETE" and is_session:
            return "/sessions/{id}", endpoints.delete_session, (path[10:],)
        if method == "GET" and is_file:
            return "/files/{name}", endpoints.get_file, (path[7:],)
        if path in endpoints.POST_ENDPOINTS or path in ("/health", "/sessions"):
            return Response.html(405)
        if is_session or is_file:
            return Response.html(405)
        return Response.html(404)

    def _json_body(self, endpoint: str, raw: bytes) -> tuple[Any, ApiError | None]:
        """The request's JSON object, or the error the real server answers for it."""
        if endpoint not in JSON_ENDPOINTS:
            return {}, None
        if not _is_json_type(self.headers.get("Content-Type") or ""):
            if endpoint == "/get_session":
                # No is_json check there: get_json() raises and str(e) is answered.
                return None, ApiError(500, texts.UNSUPPORTED_MEDIA_TYPE)
            return None, ApiError(400, JSON_ERROR)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, _unexpected(endpoint, texts.BAD_REQUEST)
        if not isinstance(body, dict):
            kind = type(body).__name__
            return body, _unexpected(endpoint, f"'{kind}' object has no attribute 'get'")
        return body, None

    def _public(self, method: str, path: str, raw: bytes) -> Response:
        state = self.server.state
        route = self._route(method, path)
        if isinstance(route, Response):
            return route
        endpoint, handler, args = route
        body, body_error = self._json_body(endpoint, raw)
        block = body if isinstance(body, dict) else {}
        session_in = block.get("session_id") if isinstance(block.get("session_id"), str) else None
        username = block.get("username") if isinstance(block.get("username"), str) else None
        call = state.begin_call(endpoint, session_in, username, body)
        if endpoint in endpoints.OPERATION_ENDPOINTS and body_error is None:
            # Every route defaults to debug off; make_appointment builds its bundle anyway.
            call.debug = bool(block.get("debug", False))
        try:
            return self._answer(call, endpoint, handler, block, args, body_error)
        finally:
            call.done.set()

    def _answer(
        self,
        call: Call,
        endpoint: str,
        handler: Callable[..., Response],
        body: dict[str, Any],
        args: tuple[str, ...],
        body_error: ApiError | None,
    ) -> Response:
        state = self.server.state
        # A call that takes a counted fault is not rolled for chaos: tests that inject one
        # fault expect exactly that one.
        fault = state.take_fault(endpoint) or state.chaos_roll(endpoint)
        if fault is not None:
            if fault.mode == "close":
                state.end_call(call, 0, "fault", "connection closed")
                raise _ConnectionDropped
            if fault.mode == "status":
                state.end_call(call, fault.status or 500, "fault", fault.error)
                answer = {"success": False, "error": fault.error}
                if fault.details:
                    answer["details"] = fault.details
                return Response.json(answer, fault.status or 500)
            if fault.mode == "non_json":
                status = fault.status or 200
                state.end_call(call, status, "fault", fault.error or "non-JSON answer")
                return Response(status, HTML_ERROR_PAGE, "text/html; charset=utf-8")
            if fault.mode == "crash":
                # Chaos only: the server fails before any browser, Flask's HTML 500 page.
                state.end_call(call, 500, "fault", fault.error)
                return Response.html(500)
            if fault.mode == "stale_sheet":
                call.stale_sheet = True
            elif fault.mode == "glitch":
                call.glitch = glitches.Glitch(fault.kind, fault.step, fault.container_id)
                if not fault.kind:
                    call.glitch.kind = glitches.CALL_KINDS[endpoint][0]
            elif fault.mode == "answer":
                call.answer_fields = dict(fault.fields)
            elif fault.mode == "book_then_fail":
                call.book_then_fail = True
            else:
                call.extra_delay = fault.delay
                if endpoint not in endpoints.OPERATION_ENDPOINTS:
                    # No session step to stretch: spend the delay up front.
                    state.sleep(fault.delay)
                    call.extra_delay = 0.0
        if call.glitch is None:
            call.glitch = state.glitch_roll(endpoint)

        if endpoint in SWEEPING_ENDPOINTS:
            state.sweep()
        if body_error is not None:
            state.end_call(call, body_error.status, "error", body_error.payload["error"])
            return Response.json(body_error.payload, body_error.status)
        return self._run(call, handler, body, args)

    def _run(
        self,
        call: Call,
        handler: Callable[..., Response],
        body: dict[str, Any],
        args: tuple[str, ...],
    ) -> Response:
        state = self.server.state
        context = Context(state, body, call, self._base_url())
        try:
            response = handler(context, *args)
        except ApiError as exc:
            response = Response.json(exc.payload, exc.status)
            state.end_call(call, exc.status, exc.outcome, exc.payload["error"])
        except HtmlCrash:
            response = Response.html(500)
            state.end_call(call, 500, "error", "HTML 500 (glitch)")
        except Exception as exc:  # a crash answers Flask's HTML error page
            response = Response.html(500)
            state.end_call(call, 500, "error", f"crash: {type(exc).__name__}: {exc}")
        else:
            outcome = call.forced_outcome or ("ok" if response.status < 400 else "error")
            error = None if response.status < 400 else "HTML error page"
            state.end_call(call, response.status, outcome, error)
        call.response = response
        return response

    # ------------------------------------------------------ control surface

    def _control(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> Response:
        state = self.server.state
        try:
            body = _parse_json(raw) if raw.strip() else {}
        except _NotJson:
            return Response.json({"success": False, "error": JSON_ERROR}, 400)
        try:
            payload = _control_action(state, method, path, query, body)
        except (ValueError, TypeError, KeyError) as exc:
            return Response.json({"success": False, "error": str(exc)}, 400)
        if payload is None:
            return Response.json({"success": False, "error": "Not found"}, 404)
        return Response.json(payload)


def _query_username(query: dict[str, list[str]]) -> str:
    username = query.get("username", [""])[0]
    if not username:
        raise ValueError("username required")
    return username


def _query_generation(state: SimState, username: str, query: dict[str, list[str]]) -> int:
    text = query.get("generation", [""])[0]
    generation = int(text) if text else state.generation(username)
    if generation < 0:
        raise ValueError("generation must be >= 0")
    return generation


def _control_action(
    state: SimState, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
) -> dict[str, Any] | None:
    route = (method, path.rstrip("/"))
    if route == ("GET", "/_sim/stats"):
        return state.stats()
    if route == ("GET", "/_sim/calls"):
        since = int(query.get("since", ["0"])[0] or 0)
        return {"calls": state.calls(since)}
    if route == ("GET", "/_sim/faults"):
        return {"success": True, "faults": state.faults()}
    if route == ("POST", "/_sim/faults"):
        status = body.get("status")
        fields = body.get("fields")
        fault = state.add_fault(
            endpoint=str(body.get("endpoint", "*")),
            count=int(body.get("count", 1)),
            mode=str(body.get("mode", "status")),
            status=int(status) if status is not None else None,
            error=str(body.get("error", "Unexpected error: injected fault")),
            delay=float(body.get("delay", 0.0)),
            details=str(body.get("details", "")),
            kind=str(body.get("kind", "")),
            step=str(body.get("step", "")),
            container_id=str(body.get("container_id", "")),
            fields=fields if isinstance(fields, dict) else None,
        )
        return {"success": True, "fault": fault.public(), "faults": state.faults()}
    if route == ("DELETE", "/_sim/faults"):
        state.clear_faults()
        return {"success": True, "faults": []}
    if route == ("GET", "/_sim/chaos"):
        return {"success": True, "chaos": state.chaos()}
    if route == ("POST", "/_sim/chaos"):
        seed = body.get("seed")
        endpoints = body.get("endpoints", [])
        endpoints = [endpoints] if endpoints == "*" else endpoints
        if not isinstance(endpoints, list):
            raise ValueError("endpoints must be a list of endpoint paths")
        unknown = sorted(set(endpoints) - CHAOS_ENDPOINTS - {"*"})
        if unknown:
            raise ValueError(f"unknown endpoints: {', '.join(map(str, unknown))}")
        state.set_chaos(
            error_rate=float(body.get("error_rate", 0.0)),
            evict_rate=float(body.get("evict_rate", 0.0)),
            close_share=float(body.get("close_share", 0.5)),
            stale_sheet_rate=float(body.get("stale_sheet_rate", 0.0)),
            glitch_rate=float(body.get("glitch_rate", 0.0)),
            seed=int(seed) if seed is not None else None,
            endpoints=endpoints,
        )
        return {"success": True, "chaos": state.chaos()}
    if route == ("DELETE", "/_sim/chaos"):
        state.clear_chaos()
        return {"success": True, "chaos": None}
    if route == ("GET", "/_sim/evictions"):
        return {"evictions": state.evictions()}
    if route == ("GET", "/_sim/sessions"):
        workflows = state.workflows()
        return {
            "success": True,
            "sessions": state.sim_sessions(),
            "workflows": workflows,
            # Held (failed) workflows: each will close its browser at a sweep once due.
            "poisons": [w for w in workflows if not w["running"]],
        }
    if route == ("GET", "/_sim/bookings"):
        return {"bookings": state.bookings()}
    if route == ("GET", "/_sim/glitches"):
        return {"glitches": state.glitch_counts(), "kinds": glitches.CALL_KINDS}
    if route == ("POST", "/_sim/sessions/expire"):
        if "session_id" not in body and "username" not in body:
            raise ValueError("session_id or username required")
        count = state.expire_sessions(body.get("session_id"), body.get("username"))
        return {"success": True, "expired": count}
    if route == ("POST", "/_sim/sessions/delete"):
        if "session_id" not in body:
            raise ValueError("session_id required")
        return {"success": True, "deleted": state.delete_session(str(body["session_id"]))}
    if route == ("POST", "/_sim/restart"):
        state.restart()
        return {"success": True, "message": "All sessions dropped"}
    if route == ("POST", "/_sim/reset"):
        state.reset()
        return {"success": True, "message": "Simulator reset"}
    if route == ("GET", "/_sim/config"):
        return state.config.to_dict()
    if route == ("POST", "/_sim/config"):
        return state.update_config(body)
    if route == ("POST", "/_sim/data/advance"):
        username = body.get("username")
        if not isinstance(username, str) or not username:
            raise ValueError("username required")
        generation = state.advance(username, int(body.get("steps", 1)))
        return {"success": True, "username": username, "generation": generation}
    if route == ("POST", "/_sim/data/rows"):
        username, numbers = body.get("username"), body.get("numbers")
        if not isinstance(username, str) or not username:
            raise ValueError("username required")
        if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
            raise ValueError("numbers must be a list of strings")
        state.add_rows(username, numbers)
        return {"success": True, "username": username, "added": numbers}
    if route == ("GET", "/_sim/data/containers"):
        username = _query_username(query)
        generation = _query_generation(state, username, query)
        sheet = state.sheet(username, generation)
        return {
            "username": username,
            "generation": generation,
            "current_generation": state.generation(username),
            "containers": sheet.rows,
            "details": data.container_details(sheet, state.config),
            "truck_plates": data.truck_plates(username, state.config),
        }
    if route == ("GET", "/_sim/data/changes"):
        username = _query_username(query)
        generation = _query_generation(state, username, query)
        return {
            "username": username,
            "from_generation": generation,
            "to_generation": generation + 1,
            "changes": state.sheet(username, generation + 1).changes,
        }
    return None


class SimServer:
    """The simulator bound to a socket; ``start()`` serves from a daemon thread. ``stop()``
    closes the socket and hangs up on every client; ``start()`` after it listens again on
    the same address, with every session gone, like a restarted upstream process."""

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 5010,
        quiet: bool = True,
    ) -> None:
        self.config = config or SimConfig()
        self.state = SimState(self.config)
        self.quiet = quiet
        self._httpd = self._bind((host, port))
        # The real port (when 0 was asked for), kept for a restart on the same address.
        self._address = (self.host, self.port)
        self._thread: threading.Thread | None = None
        self._stopped = False

    def _bind(self, address: tuple[str, int]) -> _HTTPServer:
        httpd = _HTTPServer(address)
        httpd.state = self.state
        httpd.quiet = self.quiet
        return httpd

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimServer:
        if self._stopped:
            self._httpd = self._bind(self._address)
            self.state.resume()
            self._stopped = False
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="emodal-sim",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop as a crash would: new connections are refused, open ones are dropped without
        an answer, and every session is lost (sleeping calls wake and end)."""
        if self._stopped:
            return
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        self._httpd.hang_up()
        self.state.shutdown()
        self._stopped = True

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
