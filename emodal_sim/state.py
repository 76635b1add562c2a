"""Session pool, counters, call history, faults, held appointment workflows and files: the
simulator's shared state.

All mutable state sits behind one lock; the lock is never held while a simulated step
sleeps, so calls on different sessions (and on the same one: there is no busy guard) really
run concurrently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import data
from .config import (
    BAD_CAPTCHA_KEY,
    DASHBOARD_USERNAME_PREFIX,
    DEFAULT_LATENCIES,
    FLAKY_CAPTCHA_KEY,
    NO_BALANCE_CAPTCHA_KEY,
    NO_BUTTON_USERNAME_PREFIX,
    PAGE_LOAD_USERNAME_PREFIX,
    UNKNOWN_ERROR_USERNAME_PREFIX,
    UNSOLVABLE_CAPTCHA_KEY,
    VERIFY_USERNAME_PREFIX,
    VPN_USERNAME_PREFIX,
    WRONG_PASSWORD,
    SimConfig,
    _names,
    validate_config,
)

SESSION_GONE_ERROR = (
    "Missing required fields: username, password, captcha_api_key (or valid session_id)"
)
# What the later of two concurrent calls on one browser gets when the endpoints differ.
STALE_ELEMENT_ERROR = (
    "Automation failed: Message: stale element reference: element is not attached to the page "
    "document"
)
# Kept for compatibility: there is no busy guard any more; this is the collision's garbage.
BUSY_ERROR = STALE_ELEMENT_ERROR
# A call in flight on a browser that a poisoned appointment workflow closed.
POISONED_ERROR = "Automation failed: Message: invalid session id"
CAPACITY_ERROR = "Failed to allocate session capacity"
NO_CONSOLE_ERROR = "Manual login interrupted: EOF when reading a line"
DASHBOARD_ERROR = "Manual login failed - not on eModal dashboard"
VERIFICATION_ERROR = "Verification failed: login could not be verified"
LOGIN_ERROR_TYPES = (
    "INVALID_CREDENTIALS",
    "RECAPTCHA_FAILED",
    "VPN_REQUIRED",
    "NETWORK_ERROR",
    "UNKNOWN_ERROR",
    "LOGIN_BUTTON_NOT_FOUND",
    "PAGE_LOAD_ERROR",
)
CREDENTIAL_FIELDS = ("username", "password", "captcha_api_key")
# Keys of a request body left out of the call history's params.
SECRET_PARAMS = ("password", "captcha_api_key", "session_id", "username")
FAULT_MODES = ("status", "close", "non_json", "delay", "stale_sheet")
MAX_CALL_HISTORY = 100_000
MAX_EVICTION_HISTORY = 10_000
CHAOS_ERROR = "Automation failed: injected transient error"
# Chaos spares the health check: it answers for the server, not for a browser.
CHAOS_EXEMPT = ("/health",)
CONTAINERS_PAGE = "https://truckerportal.emodal.com/containers"
KEEP_ALIVE_PAGE = "https://truckerportal.emodal.com/dashboard"

COUNTER_NAMES = (
    "login_attempts",
    "captcha_solves",
    "captcha_failures",
    "logins",
    "login_failures",
    "sessions_created",
    "sessions_reused",
    "silent_relogins",
    "evictions",
    "evictions_busy",
    "collisions",
    "expired",
    "deleted",
    "restarts",
    "cleanups",
    "appointments_booked",
    "debug_bundles",
    "page_returns",
    "poisoned_browsers",
    "stale_sheets",
)


class ApiError(Exception):
    """An error answer: HTTP status, JSON payload and the outcome recorded in the history."""

    def __init__(self, status: int, error: str, outcome: str = "error", **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.payload: dict[str, Any] = {"success": False, "error": error, **extra}
        self.outcome = outcome


def closed_error(reason: str) -> ApiError:
    if reason == "poisoned":
        return ApiError(500, POISONED_ERROR, outcome="poisoned")
    return ApiError(
        500, f"Automation failed: browser session was closed ({reason})", outcome="evicted"
    )


def naive_local(timestamp: float) -> str:
    """A naive local time, as the real server writes its times (no zone)."""
    return (
        dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).astimezone().replace(tzinfo=None)
    ).isoformat()


def username_hash(username: str) -> int:
    """A stable signed 64-bit hash of a username: the suffix of its session ids."""
    digest = hashlib.sha256(username.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Call:
    id: int
    endpoint: str
    session_id: str | None
    username: str | None
    start: float
    session_id_out: str | None = None
    end: float | None = None
    status: int | None = None
    outcome: str | None = None
    error: str | None = None
    # The request body without secrets and session fields (None when it was not a JSON object).
    params: dict[str, Any] | None = None
    # Effective debug flag of an operation call (a missing "debug" counts as true).
    debug: bool | None = None
    # Simulated seconds added by a "delay" fault; spent inside the session's main step.
    extra_delay: float = 0.0
    # The call ran a login (a captcha solve and the portal's login form), whatever its result.
    login: bool = False
    # The call's login created a session (a browser) for its username.
    session_created: bool = False
    # The browser had been moved away by the keep-alive thread: the call paid page_return.
    page_return: bool = False
    # A "stale_sheet" fault (get_appointments): the export fails, an older sheet comes back.
    stale_sheet: bool = False
    # The call in flight on the same browser when this one started (no busy guard).
    collided_with: Call | None = None
    # Set by the HTTP layer when the answer is known (a colliding call may copy it).
    response: Any = None
    done: threading.Event = field(default_factory=threading.Event)
    # Outcome to record instead of "ok"/"error" for an answer that is not an ApiError.
    forced_outcome: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "session_id": self.session_id,
            "session_id_out": self.session_id_out,
            "username": self.username,
            "start": self.start,
            "end": self.end,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "login": self.login,
            "session_created": self.session_created,
            "params": self.params,
            "debug": self.debug,
            "page_return": self.page_return,
        }


@dataclass
class Session:
    session_id: str
    username: str
    password: str
    captcha_api_key: str
    created_at: float
    last_used: float  # wall clock, for display
    last_used_mono: float  # monotonic, for idle expiry and the keep-alive page move
    # Calls being served right now (no busy guard: there may be several).
    active: list[Call] = field(default_factory=list)
    closed_reason: str | None = None
    # Set when the browser goes away; a sleeping call waits on it to end promptly.
    closed: threading.Event = field(default_factory=threading.Event)
    # Closed by a poisoned appointment workflow but still listed by the server.
    dead: bool = False
    # Spreadsheets this browser downloaded: (monotonic time, content), newest last.
    downloads: list[tuple[float, bytes]] = field(default_factory=list)
    # When an operation last drove the browser (get_session reuse does not): the keep-alive
    # thread moves a browser left alone longer than keep_alive_idle to another page.
    driven_mono: float = field(default_factory=time.monotonic)

    @property
    def busy(self) -> bool:
        return bool(self.active)

    def public(self, current_url: str) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "username": self.username,
            "created_at": naive_local(self.created_at),
            "last_used": naive_local(self.last_used),
            "keep_alive": True,
            "current_url": current_url,
        }


@dataclass
class Workflow:
    """A failed appointment check the server keeps: resumable until it poisons its browser."""

    appointment_session_id: str
    session_id: str
    username: str
    params: dict[str, Any]
    error: str
    due: float  # monotonic time from which the next check_appointments closes the browser

    def public(self, now: float) -> dict[str, Any]:
        return {
            "appointment_session_id": self.appointment_session_id,
            "session_id": self.session_id,
            "username": self.username,
            "error": self.error,
            "due_in": self.due - now,
        }


@dataclass
class Fault:
    endpoint: str
    remaining: int
    mode: str
    status: int | None
    error: str
    delay: float
    details: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "count": self.remaining,
            "mode": self.mode,
            "status": self.status,
            "error": self.error,
            "details": self.details,
            "delay": self.delay,
        }


@dataclass
class Chaos:
    """Probabilistic faults: each public call (but the health check) of the chosen endpoints
    first evicts a random live session with probability ``evict_rate``, then fails with
    probability ``error_rate`` — by hanging up with probability ``close_share``, else with a
    500 automation error. A ``/get_appointments`` call that did not fail takes a stale sheet
    with probability ``stale_sheet_rate``."""

    error_rate: float
    evict_rate: float
    close_share: float
    seed: int | None
    endpoints: tuple[str, ...]  # empty: every public endpoint
    stale_sheet_rate: float = 0.0
    errors: int = 0
    closes: int = 0
    evictions: int = 0
    stale_sheets: int = 0

    def applies_to(self, endpoint: str) -> bool:
        if endpoint in CHAOS_EXEMPT:
            return False
        return not self.endpoints or endpoint in self.endpoints

    def public(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "evict_rate": self.evict_rate,
            "close_share": self.close_share,
            "stale_sheet_rate": self.stale_sheet_rate,
            "seed": self.seed,
            "endpoints": list(self.endpoints) or ["*"],
            "injected": {
                "errors": self.errors,
                "closes": self.closes,
                "evictions": self.evictions,
                "stale_sheets": self.stale_sheets,
            },
        }


@dataclass
class StoredFile:
    content: bytes
    content_type: str
    stored_at: float


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def secret_free(body: Any) -> dict[str, Any] | None:
    """The request body as the call history shows it: no credentials, no session fields."""
    if not isinstance(body, dict):
        return None
    return {k: v for k, v in body.items() if k not in SECRET_PARAMS}


class _LoginFailed(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.payload["error"])
        self.error = error


class SimState:
    """Everything the HTTP layer and the control surface share."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._lock = threading.RLock()
        self._shutdown = threading.Event()
        self._sessions: dict[str, Session] = {}
        self._issued_ids: set[str] = set()
        self._counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._calls_by_endpoint: dict[str, int] = {}
        self._max_concurrent = 0
        self._calls: deque[Call] = deque(maxlen=MAX_CALL_HISTORY)
        self._next_call_id = 1
        self._faults: list[Fault] = []
        self._chaos: Chaos | None = None
        self._rng = random.Random()
        self._evictions: deque[dict[str, Any]] = deque(maxlen=MAX_EVICTION_HISTORY)
        self._generations: dict[str, int] = {}
        # Rows with these container numbers, as written, added to an account's sheet.
        self._added_numbers: dict[str, tuple[str, ...]] = {}
        self._flaky_attempts: dict[str, int] = {}
        self._booked: dict[str, list[dict[str, str]]] = {}
        self._files: dict[str, StoredFile] = {}
        self._file_names: set[str] = set()
        self._workflows: dict[str, Workflow] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}

    # ----------------------------------------------------------------- time

    def sleep(self, simulated: float, session: Session | None = None) -> None:
        """Spend ``simulated`` seconds; a closed session ends the wait with a 500."""
        real = max(0.0, simulated) * self.config.time_scale
        event = session.closed if session is not None else self._shutdown
        if real > 0:
            event.wait(real)
        if session is not None and session.closed_reason is not None:
            raise closed_error(session.closed_reason)

    def step(self, name: str, session: Session | None = None, extra: float = 0.0) -> None:
        self.sleep(self.config.latency(name) + extra, session)

    def wait_for_call(self, call: Call) -> None:
        """Wait until ``call`` has its answer (or the server stops)."""
        while not call.done.wait(0.05):
            if self._shutdown.is_set():
                return

    def shutdown(self) -> None:
        """Wake every sleeping call (server stopping)."""
        self._shutdown.set()
        with self._lock:
            for session in list(self._sessions.values()):
                self._close_locked(session, "shutdown")
            self._sessions.clear()
            self._workflows.clear()

    def resume(self) -> None:
        """Serve again after `shutdown()`, with every session gone, as a restarted upstream
        process would (counts a restart; counters, history and data are kept)."""
        with self._lock:
            self._shutdown.clear()
            self._counters["restarts"] += 1

    # ---------------------------------------------------------------- calls

    def begin_call(
        self, endpoint: str, session_id: str | None, username: str | None, body: Any = None
    ) -> Call:
        with self._lock:
            call = Call(self._next_call_id, endpoint, session_id, username, time.time())
            call.params = secret_free(body)
            self._next_call_id += 1
            self._calls.append(call)
            self._calls_by_endpoint[endpoint] = self._calls_by_endpoint.get(endpoint, 0) + 1
            return call

    def end_call(self, call: Call, status: int, outcome: str, error: str | None = None) -> None:
        with self._lock:
            call.end = time.time()
            call.status = status
            call.outcome = outcome
            call.error = error

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [c.public() for c in self._calls if c.id > since]

    # --------------------------------------------------------------- faults

    def add_fault(
        self,
        endpoint: str,
        count: int = 1,
        mode: str = "status",
        status: int | None = None,
        error: str = "Automation failed: injected fault",
        delay: float = 0.0,
        details: str = "",
    ) -> Fault:
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
        if mode == "stale_sheet" and endpoint != "/get_appointments":
            raise ValueError("mode stale_sheet applies to /get_appointments only")
        if count < 1:
            raise ValueError("count must be >= 1")
        if mode == "status" and status is None:
            status = 500
        fault = Fault(endpoint, count, mode, status, error, delay, details)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint in (endpoint, "*"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.public() for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ---------------------------------------------------------------- chaos

    def set_chaos(
        self,
        *,
        error_rate: float = 0.0,
        evict_rate: float = 0.0,
        close_share: float = 0.5,
        stale_sheet_rate: float = 0.0,
        seed: int | None = None,
        endpoints: list[str] | tuple[str, ...] = (),
    ) -> Chaos:
        """Replace the chaos settings (and their counters); the seed makes the sequence of
        decisions repeatable for the same sequence of calls."""
        for name, value in (
            ("error_rate", error_rate),
            ("evict_rate", evict_rate),
            ("close_share", close_share),
            ("stale_sheet_rate", stale_sheet_rate),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if isinstance(endpoints, str) or not all(isinstance(e, str) for e in endpoints):
            raise ValueError("endpoints must be a list of endpoint paths")
        chosen = tuple(e for e in endpoints if e != "*")
        chaos = Chaos(error_rate, evict_rate, close_share, seed, chosen, stale_sheet_rate)
        with self._lock:
            self._chaos = chaos
            self._rng = random.Random(seed)
        return chaos

    def chaos(self) -> dict[str, Any] | None:
        with self._lock:
            return self._chaos.public() if self._chaos is not None else None

    def clear_chaos(self) -> None:
        with self._lock:
            self._chaos = None

    def chaos_roll(self, endpoint: str) -> Fault | None:
        """Apply chaos to a call that is starting: maybe evict a random live session (a busy
        one's call then fails at once, as under a capacity eviction), and return the fault
        this call must fail with, if any."""
        with self._lock:
            chaos = self._chaos
            if chaos is None or not chaos.applies_to(endpoint):
                return None
            if chaos.evict_rate and self._rng.random() < chaos.evict_rate:
                self._expire_idle_locked()
                if self._sessions:
                    victim = self._rng.choice(list(self._sessions.values()))
                    self._evict_locked(victim, "chaos")
                    chaos.evictions += 1
            if chaos.error_rate and self._rng.random() < chaos.error_rate:
                if self._rng.random() < chaos.close_share:
                    chaos.closes += 1
                    return Fault(endpoint, 1, "close", None, "connection closed (chaos)", 0.0)
                chaos.errors += 1
                return Fault(endpoint, 1, "status", 500, CHAOS_ERROR, 0.0)
            if (
                endpoint == "/get_appointments"
                and chaos.stale_sheet_rate
                and self._rng.random() < chaos.stale_sheet_rate
            ):
                chaos.stale_sheets += 1
                return Fault(endpoint, 1, "stale_sheet", None, "", 0.0)
            return None

    def evictions(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._evictions)

    # ------------------------------------------------------------- sessions

    def _expire_idle_locked(self) -> None:
        timeout = self.config.idle_timeout
        if not timeout:
            return  # the real server marks every session keep-alive
        limit = time.monotonic() - timeout
        for session in list(self._sessions.values()):
            # A browser serving a call is in use, whatever its last_used says.
            if not session.busy and session.last_used_mono < limit:
                self._drop_locked(session, "expired")
                self._counters["expired"] += 1

    def _close_locked(self, session: Session, reason: str) -> None:
        if session.closed_reason is None:
            session.closed_reason = reason
        session.closed.set()

    def _drop_locked(self, session: Session, reason: str) -> None:
        self._sessions.pop(session.session_id, None)
        self._close_locked(session, reason)
        for key in [k for k, w in self._workflows.items() if w.session_id == session.session_id]:
            del self._workflows[key]

    def _touch_locked(self, session: Session) -> None:
        session.last_used = time.time()
        session.last_used_mono = time.monotonic()

    def _live_locked(self, session_id: Any) -> Session | None:
        self._expire_idle_locked()
        if not isinstance(session_id, str):
            return None
        session = self._sessions.get(session_id)
        if session is None or session.dead:
            return None
        return session

    def _evict_locked(self, session: Session, cause: str) -> None:
        self._counters["evictions"] += 1
        if session.busy:
            self._counters["evictions_busy"] += 1
        self._evictions.append(
            {
                "time": time.time(),
                "session_id": session.session_id,
                "username": session.username,
                "busy": session.busy,
                "cause": cause,
            }
        )
        self._drop_locked(session, "evicted")

    def _new_session_id_locked(self, username: str) -> str:
        seconds = int(time.time())
        suffix = username_hash(username)
        while f"session_{seconds}_{suffix}" in self._issued_ids:
            seconds += 1
        session_id = f"session_{seconds}_{suffix}"
        self._issued_ids.add(session_id)
        return session_id

    def _create_locked(self, username: str, password: str, key: str) -> Session:
        # A new login for a username clears its dead browsers.
        for dead in [s for s in self._sessions.values() if s.dead and s.username == username]:
            self._drop_locked(dead, "cleared")
        while len(self._sessions) >= self.config.capacity:
            lru = min(self._sessions.values(), key=lambda s: s.last_used_mono)
            self._evict_locked(lru, "capacity")
        now = time.time()
        session = Session(
            self._new_session_id_locked(username),
            username,
            password,
            key,
            now,
            now,
            time.monotonic(),
        )
        self._sessions[session.session_id] = session
        self._counters["sessions_created"] += 1
        self._max_concurrent = max(self._max_concurrent, len(self._sessions))
        return session

    def _reusable_locked(self, username: str, password: str) -> Session | None:
        self._expire_idle_locked()
        return next(
            (
                s
                for s in self._sessions.values()
                if s.username == username and s.password == password and not s.dead
            ),
            None,
        )

    def _attach_locked(self, session: Session, call: Call) -> None:
        """``call`` starts driving ``session``'s browser (alongside any call already there)."""
        if session.active:
            self._counters["collisions"] += 1
            call.collided_with = session.active[0]
        elif time.monotonic() - session.driven_mono > self.config.scaled("keep_alive_idle"):
            call.page_return = True
            self._counters["page_returns"] += 1
        session.active.append(call)
        self._touch_locked(session)
        session.driven_mono = time.monotonic()
        call.username = session.username
        call.session_id_out = session.session_id

    def authenticate(
        self, username: str, password: str, key: str, call: Call | None = None
    ) -> None:
        """Run the login (captcha + portal), spending its latency; 401 on failure, after the
        manual-login wait on a server with a console, at once without one."""
        if call is not None:
            call.login = True
        self.count("login_attempts")
        try:
            self._login_flow(username, password, key)
        except _LoginFailed as failure:
            self.count("login_failures")
            if not self.config.login_console:
                raise ApiError(401, NO_CONSOLE_ERROR) from None
            self.step("manual_login_wait")
            raise failure.error from None
        self.count("logins")

    def _login_flow(self, username: str, password: str, key: str) -> None:
        def failed(kind: str) -> _LoginFailed:
            return _LoginFailed(
                ApiError(401, "Authentication failed", details=f"LoginErrorType.{kind}")
            )

        if username.startswith(PAGE_LOAD_USERNAME_PREFIX):
            self.step("login")
            raise failed("PAGE_LOAD_ERROR")
        if username.startswith(VPN_USERNAME_PREFIX):
            self.step("login")
            raise failed("VPN_REQUIRED")
        if key == FLAKY_CAPTCHA_KEY:
            with self._lock:
                attempt = self._flaky_attempts.get(username, 0) + 1
                self._flaky_attempts[username] = attempt
            if attempt % 2 == 1:
                self.step("login")
                raise failed("NETWORK_ERROR")
        if key in (BAD_CAPTCHA_KEY, NO_BALANCE_CAPTCHA_KEY):
            # The solver refuses an unknown or empty-balance key as soon as it is submitted.
            self.step("login")
            self.count("captcha_failures")
            raise failed("RECAPTCHA_FAILED")
        if key == UNSOLVABLE_CAPTCHA_KEY:
            # The solver accepted the job but gave up: polled until give-up.
            self.step("captcha")
            self.count("captcha_failures")
            raise failed("RECAPTCHA_FAILED")
        self.step("captcha")
        self.count("captcha_solves")
        self.step("login")
        if username.startswith(NO_BUTTON_USERNAME_PREFIX):
            raise failed("LOGIN_BUTTON_NOT_FOUND")
        if password == WRONG_PASSWORD:
            raise failed("INVALID_CREDENTIALS")
        if username.startswith(UNKNOWN_ERROR_USERNAME_PREFIX):
            raise failed("UNKNOWN_ERROR")
        if username.startswith(DASHBOARD_USERNAME_PREFIX):
            raise _LoginFailed(ApiError(401, DASHBOARD_ERROR))
        if username.startswith(VERIFY_USERNAME_PREFIX):
            raise _LoginFailed(ApiError(401, VERIFICATION_ERROR))

    def get_session(
        self, username: str, password: str, key: str, call: Call | None = None
    ) -> tuple[Session, bool]:
        """POST /get_session: reuse a live session of the same account, else log in."""
        with self._lock:
            reuse = self._reusable_locked(username, password)
            if reuse is not None:
                self._touch_locked(reuse)
                self._counters["sessions_reused"] += 1
        if reuse is not None:
            self.step("login_reuse", reuse)
            with self._lock:
                self._touch_locked(reuse)
            return reuse, False
        self.authenticate(username, password, key, call)
        with self._lock:
            session = self._create_locked(username, password, key)
            if call is not None:
                call.session_created = True
            return session, True

    def acquire(self, block: dict[str, Any], call: Call) -> tuple[Session, bool]:
        """Resolve a session block: the live session named, else a live session of the same
        username+password, else a silent login. The call then drives that browser."""
        with self._lock:
            session = self._live_locked(block.get("session_id"))
            if session is not None:
                self._attach_locked(session, call)
                return session, False
        if not all(_nonempty(block.get(name)) for name in CREDENTIAL_FIELDS):
            raise ApiError(400, SESSION_GONE_ERROR, outcome="session_gone")
        username, password, key = (block[name] for name in CREDENTIAL_FIELDS)
        call.username = username
        with self._lock:
            reuse = self._reusable_locked(username, password)
            if reuse is not None:
                self._counters["sessions_reused"] += 1
                self._attach_locked(reuse, call)
        if reuse is not None:
            try:
                self.step("login_reuse", reuse)
            except ApiError:
                self.release(reuse, call)
                raise
            return reuse, False
        self.authenticate(username, password, key, call)
        with self._lock:
            session = self._create_locked(username, password, key)
            call.session_created = True
            self._counters["silent_relogins"] += 1
            self._attach_locked(session, call)
            return session, True

    def release(self, session: Session, call: Call) -> None:
        with self._lock:
            if call in session.active:
                session.active.remove(call)
            if session.closed_reason is None:
                self._touch_locked(session)
                session.driven_mono = time.monotonic()

    def current_url(self, session: Session) -> str:
        idle = time.monotonic() - session.driven_mono
        if not session.busy and idle > self.config.scaled("keep_alive_idle"):
            return KEEP_ALIVE_PAGE
        return CONTAINERS_PAGE

    def list_sessions(self) -> list[Session]:
        """Every session the server holds, dead browsers included."""
        with self._lock:
            self._expire_idle_locked()
            return list(self._sessions.values())

    def active_sessions(self) -> int:
        return len(self.list_sessions())

    def sim_sessions(self) -> list[dict[str, Any]]:
        """Sessions with simulator-only detail (busy flag, calls in flight, idle age, dead)."""
        now = time.monotonic()
        with self._lock:
            self._expire_idle_locked()
            return [
                {
                    **s.public(self.current_url(s)),
                    "busy": s.busy,
                    "calls_in_flight": len(s.active),
                    "idle_seconds": now - s.last_used_mono,
                    "dead": s.dead,
                }
                for s in self._sessions.values()
            ]

    def delete_session(self, session_id: str, reason: str = "deleted") -> bool:
        with self._lock:
            self._expire_idle_locked()
            session = self._sessions.get(session_id)
            if session is None:
                return False
            self._drop_locked(session, reason)
            self._counters["deleted"] += 1
            return True

    def expire_sessions(self, session_id: str | None = None, username: str | None = None) -> int:
        with self._lock:
            victims = [
                s
                for s in self._sessions.values()
                if (session_id is not None and s.session_id == session_id)
                or (username is not None and s.username == username)
            ]
            for session in victims:
                self._drop_locked(session, "expired")
            self._counters["expired"] += len(victims)
            return len(victims)

    def _drop_all_locked(self, reason: str) -> int:
        sessions = list(self._sessions.values())
        for session in sessions:
            self._drop_locked(session, reason)
        self._workflows.clear()
        return len(sessions)

    def cleanup(self) -> int:
        """POST /cleanup, /emergency_recovery: an operator drops every session at once."""
        with self._lock:
            self._counters["cleanups"] += 1
            return self._drop_all_locked("cleanup")

    def restart(self) -> None:
        with self._lock:
            self._drop_all_locked("restart")
            self._counters["restarts"] += 1

    def reset(self) -> None:
        with self._lock:
            self._drop_all_locked("restart")
            self._counters = dict.fromkeys(COUNTER_NAMES, 0)
            self._calls_by_endpoint.clear()
            self._max_concurrent = 0
            self._calls.clear()
            self._next_call_id = 1
            self._faults.clear()
            self._chaos = None
            self._evictions.clear()
            self._generations.clear()
            self._added_numbers.clear()
            self._flaky_attempts.clear()
            self._booked.clear()
            self._files.clear()
            self._cache.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._expire_idle_locked()
            return {
                **self._counters,
                "active_sessions": len(self._sessions),
                "max_concurrent_sessions": self._max_concurrent,
                "dead_browsers": sum(1 for s in self._sessions.values() if s.dead),
                "pending_poisons": len(self._workflows),
                "calls": dict(self._calls_by_endpoint),
            }

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    # ------------------------------------------------- appointment workflows

    def hold_workflow(
        self, session: Session, appointment_session_id: str, params: dict[str, Any], error: str
    ) -> None:
        """Keep a failed check's workflow: it poisons the browser after ``poison_delay``."""
        with self._lock:
            if session.closed_reason is not None or session.dead:
                return
            held = self._workflows.get(appointment_session_id)
            if held is not None and held.session_id == session.session_id:
                held.params, held.error = dict(params), error  # the first failure's clock runs
                return
            self._workflows[appointment_session_id] = Workflow(
                appointment_session_id,
                session.session_id,
                session.username,
                dict(params),
                error,
                time.monotonic() + self.config.scaled("poison_delay"),
            )

    def held_workflow(self, session: Session, appointment_session_id: Any) -> dict[str, Any] | None:
        """The params of a workflow held on ``session``'s browser, if any."""
        with self._lock:
            held = self._workflows.get(appointment_session_id)
            if held is None or held.session_id != session.session_id:
                return None
            return dict(held.params)

    def release_workflow(self, appointment_session_id: str) -> None:
        with self._lock:
            self._workflows.pop(appointment_session_id, None)

    def fire_poisons(self) -> list[str]:
        """A check_appointments call arrives: every held workflow past its delay closes its
        browser (a call in flight on it fails). Returns the session ids closed."""
        now = time.monotonic()
        closed: list[str] = []
        with self._lock:
            for held in [w for w in self._workflows.values() if w.due <= now]:
                self._workflows.pop(held.appointment_session_id, None)
                session = self._sessions.get(held.session_id)
                if session is None or session.dead or session.closed_reason is not None:
                    continue
                session.dead = True
                self._close_locked(session, "poisoned")
                self._counters["poisoned_browsers"] += 1
                closed.append(session.session_id)
                for key, other in list(self._workflows.items()):
                    if other.session_id == held.session_id:
                        del self._workflows[key]
        return closed

    def poisons(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [w.public(now) for w in self._workflows.values()]

    # --------------------------------------------------------------- config

    def update_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        allowed = {
            "time_scale",
            "idle_timeout",
            "capacity",
            "latencies",
            "login_console",
            "trucking_companies",
            "terminals",
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        with self._lock:
            cfg = self.config
            latencies = dict(cfg.latencies)
            if "latencies" in changes:
                if not isinstance(changes["latencies"], dict):
                    raise ValueError("latencies must be an object")
                for name, value in changes["latencies"].items():
                    if name not in DEFAULT_LATENCIES:
                        raise ValueError(f"unknown latency name: {name}")
                    latencies[name] = float(value)
            idle = changes.get("idle_timeout", cfg.idle_timeout)
            console = changes.get("login_console", cfg.login_console)
            if not isinstance(console, bool):
                raise ValueError("login_console must be a boolean")
            candidate = SimConfig(
                time_scale=float(changes.get("time_scale", cfg.time_scale)),
                idle_timeout=float(idle) if idle else None,
                capacity=int(changes.get("capacity", cfg.capacity)),
                seed=cfg.seed,
                containers=cfg.containers,
                latencies=latencies,
                today=cfg.today,
                login_console=console,
                trucking_companies=_names(
                    changes.get("trucking_companies", cfg.trucking_companies),
                    "trucking_companies",
                ),
                terminals=_names(changes.get("terminals", cfg.terminals), "terminals"),
            )
            validate_config(candidate)
            # Mutate in place: everyone holding the config object sees the change.
            cfg.time_scale = candidate.time_scale
            cfg.idle_timeout = candidate.idle_timeout
            cfg.capacity = candidate.capacity
            cfg.latencies = candidate.latencies
            cfg.login_console = candidate.login_console
            cfg.trucking_companies = candidate.trucking_companies
            cfg.terminals = candidate.terminals
            return cfg.to_dict()

    # ----------------------------------------------------------------- data

    def generation(self, username: str) -> int:
        with self._lock:
            return self._generations.get(username, 0)

    def advance(self, username: str, steps: int = 1) -> int:
        if steps < 0:
            raise ValueError("steps must be >= 0")
        with self._lock:
            self._generations[username] = self._generations.get(username, 0) + steps
            return self._generations[username]

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = make()  # computed outside the lock: large accounts take a while
        with self._lock:
            if len(self._cache) >= 64:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = value
        return value

    def add_rows(self, username: str, numbers: list[str]) -> None:
        """From now on ``username``'s sheet also has a row for each of these container numbers,
        written as given (each a copy of the sheet's first row but for its number)."""
        with self._lock:
            self._added_numbers[username] = (*self._added_numbers.get(username, ()), *numbers)

    def _data_key(self, username: str, kind: str, generation: int) -> tuple[Any, ...]:
        cfg = self.config
        with self._lock:
            added = self._added_numbers.get(username, ())
        return (kind, username, generation, cfg.seed, cfg.containers, cfg.current_date(), added)

    def sheet(self, username: str, generation: int | None = None) -> data.Sheet:
        """``username``'s data at ``generation`` (default: the one served now)."""
        if generation is None:
            generation = self.generation(username)
        key = self._data_key(username, "sheet", generation)
        return self._cached(
            key, lambda: _with_rows(data.sheet_for(username, self.config, generation), key[-1])
        )

    def containers(self, username: str) -> list[dict[str, str]]:
        """The containers currently served to ``username`` (its current data generation)."""
        return self.sheet(username).rows

    def containers_xlsx(self, username: str) -> bytes:
        generation = self.generation(username)
        rows = self.sheet(username, generation).rows
        return self._cached(
            self._data_key(username, "xlsx", generation),
            lambda: data.xlsx_bytes(data.COLUMNS, rows, "Containers"),
        )

    def appointments(self, username: str) -> list[dict[str, str]]:
        base = data.appointments_for(username, self.sheet(username), self.config)
        with self._lock:
            return base + list(self._booked.get(username, []))

    def book(self, username: str, row: dict[str, str]) -> None:
        with self._lock:
            self._booked.setdefault(username, []).append(row)
            self._counters["appointments_booked"] += 1

    # ---------------------------------------------------------------- files

    def store_file(self, make_name: Callable[[str], str], content: bytes, content_type: str) -> str:
        """Store a file under ``make_name(<YYYYmmdd_HHMMSS>)``; a name already used (two files
        of one kind and session in the same second) takes the next second instead."""
        with self._lock:
            self._purge_files_locked()
            moment = int(time.time())
            while True:
                stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(moment))
                name = make_name(stamp)
                if name not in self._file_names:
                    break
                moment += 1
            while len(self._files) >= self.config.max_files:
                self._files.pop(next(iter(self._files)))
            self._file_names.add(name)
            self._files[name] = StoredFile(content, content_type, time.monotonic())
            return name

    def get_file(self, name: str) -> StoredFile | None:
        with self._lock:
            self._purge_files_locked()
            return self._files.get(name)

    def _purge_files_locked(self) -> None:
        limit = time.monotonic() - self.config.file_ttl
        for name in [n for n, f in self._files.items() if f.stored_at < limit]:
            del self._files[name]

    def record_download(self, session: Session, content: bytes) -> None:
        with self._lock:
            session.downloads = [*session.downloads[-2:], (time.monotonic(), content)]

    def recent_download(self, session: Session) -> bytes | None:
        """The newest spreadsheet ``session``'s browser downloaded within download_window."""
        limit = time.monotonic() - self.config.scaled("download_window")
        with self._lock:
            for moment, content in reversed(session.downloads):
                if moment >= limit:
                    return content
        return None


def new_token() -> str:
    return secrets.token_hex(6)


def _with_rows(sheet: data.Sheet, numbers: tuple[str, ...]) -> data.Sheet:
    """The sheet with a copy of its first row for each number (``SimState.add_rows``)."""
    if not numbers or not sheet.rows:
        return sheet
    first = sheet.rows[0]
    copies = [{**first, "Container #": number} for number in numbers]
    hidden = {**sheet.hidden, **dict.fromkeys(numbers, sheet.hidden[first["Container #"]])}
    return dataclasses.replace(sheet, rows=[*sheet.rows, *copies], hidden=hidden, _index=None)
