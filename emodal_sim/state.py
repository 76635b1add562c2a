"""The simulator's shared state, shaped like the real server's: the map of live browsers
(``active_sessions``), the credentials map (``persistent_sessions``), the held appointment
workflows (``appointment_sessions``), browsers nobody lists any more, each session's download
folder, counters, the call history, faults, chaos and glitches.

All mutable state sits behind one lock; the lock is never held while a simulated step
sleeps, so calls on different sessions (and on the same one: there is no busy guard) really
run concurrently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import posixpath
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import data, glitches, texts
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

SESSION_GONE_ERROR = texts.SESSION_GONE
CAPACITY_ERROR = texts.CAPACITY
NO_CONSOLE_ERROR = texts.NO_CONSOLE
DASHBOARD_ERROR = texts.DASHBOARD
VERIFICATION_ERROR = texts.VERIFICATION
STALE_ELEMENT_ERROR = texts.STALE_ELEMENT
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
SECRET_PARAMS = ("password", "captcha_api_key", "session_id", "username", "appointment_session_id")
FAULT_MODES = (
    "status",
    "close",
    "non_json",
    "delay",
    "stale_sheet",
    "glitch",
    "answer",
    "book_then_fail",
)
MAX_CALL_HISTORY = 100_000
MAX_EVICTION_HISTORY = 10_000
# Chaos spares the health check: it answers for the server, not for a browser.
CHAOS_EXEMPT = ("/health",)
# Pages a browser can show (GET /sessions' current_url).
DASHBOARD_PAGE = "https://ecp2.emodal.com/"
CONTAINERS_PAGE = "https://ecp2.emodal.com/containers"
APPOINTMENT_PAGE = "https://termops.emodal.com/trucker/web/addvisit"
MY_APPOINTMENTS_PAGE = "https://truckerportal.emodal.com/myappointments"
# Where the refresh thread takes an idle browser that is not flagged in use (L821).
REFRESH_PAGE = "https://termops.emodal.com/trucker/web/"
PAGES = {
    "dashboard": DASHBOARD_PAGE,
    "containers": CONTAINERS_PAGE,
    "appointment": APPOINTMENT_PAGE,
    "myappointments": MY_APPOINTMENTS_PAGE,
}
SPREADSHEET_SUFFIXES = (".xlsx", ".xls")

COUNTER_NAMES = (
    "login_attempts",
    "captcha_solves",
    "captcha_failures",
    "logins",
    "login_failures",
    "sessions_created",
    "sessions_reused",
    "silent_relogins",
    "session_id_collisions",
    "evictions",
    "evictions_busy",
    "collisions",
    "expired",
    "deleted",
    "restarts",
    "cleanups",
    "emergency_recoveries",
    "orphans_killed",
    "make_appointment_calls",
    "appointments_booked",
    "debug_bundles",
    "page_returns",
    "workflows_held",
    "workflows_expired",
    "resumes",
    "poisoned_browsers",
    "stale_sheets",
    "glitches",
)


class ApiError(Exception):
    """An error answer: HTTP status, JSON payload and the outcome recorded in the history."""

    def __init__(self, status: int, error: str, outcome: str = "error", **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.payload: dict[str, Any] = {"success": False, "error": error, **extra}
        self.outcome = outcome


class HtmlCrash(Exception):
    """An unhandled error inside the server: Flask answers its HTML 500 page."""


class BrowserGone(Exception):
    """The browser a step was driving is gone (evicted, deleted, poisoned, killed): every
    driver command now fails with the connection-refused text."""

    def __init__(self, session: Session) -> None:
        super().__init__(session.closed_reason or "closed")
        self.session = session
        self.reason = session.closed_reason or "closed"
        self.text = texts.dead_driver(session.session_id)

    @property
    def outcome(self) -> str:
        return {"evicted": "evicted", "poisoned": "poisoned"}.get(self.reason, "closed")


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
    # Effective debug flag of an operation call (absent counts as false).
    debug: bool | None = None
    # Simulated seconds added by a "delay" fault.
    extra_delay: float = 0.0
    # The call ran a login (a captcha solve and the portal's login form), whatever its result.
    login: bool = False
    # The call's login created a session (a browser) for its username.
    session_created: bool = False
    # The browser had been moved away by the refresh thread: the call paid page_return.
    page_return: bool = False
    # A "stale_sheet" fault (get_appointments): the export's download does not arrive.
    stale_sheet: bool = False
    # The glitch this call meets (a counted fault or the glitch rate).
    glitch: glitches.Glitch | None = None
    # "answer" fault: fields merged into a success body; "book_then_fail": Submit raises.
    answer_fields: dict[str, Any] | None = None
    book_then_fail: bool = False
    # What the appointment page actually selected (check_appointments, make_appointment).
    selected: dict[str, Any] | None = None
    # A check resumed a held workflow.
    resumed: bool = False
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
            "selected": self.selected,
            "resumed": self.resumed,
            "glitch": self.glitch.public() if self.glitch and self.glitch.fired else None,
        }


@dataclass
class Session:
    session_id: str
    username: str
    password: str
    captcha_api_key: str
    created_at: float
    last_used: float  # wall clock, for display
    last_used_mono: float  # monotonic: LRU eviction, idle expiry
    # Calls being served right now (no busy guard: there may be several).
    active: list[Call] = field(default_factory=list)
    closed_reason: str | None = None
    # Set when the browser goes away; a sleeping call waits on it to end promptly.
    closed: threading.Event = field(default_factory=threading.Event)
    # Closed by a poisoned workflow but still listed by the server (until next used).
    dead: bool = False
    # Replaced in the map by a same-second login of its user: running, listed nowhere.
    orphan: bool = False
    # The server's in-use flag: every operation sets it; only get_info_bulk and the booking
    # validation 400 clear it. The refresh thread only touches browsers without it.
    in_use: bool = False
    # Operations that drove this browser (a held workflow resumes only if none came since).
    drives: int = 0
    page: str = "dashboard"
    # When an operation last drove the browser (the refresh thread's clock).
    driven_mono: float = field(default_factory=time.monotonic)

    @property
    def busy(self) -> bool:
        return bool(self.active)

    @property
    def gone(self) -> bool:
        return self.closed_reason is not None

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
    """A check's appointment workflow (``appointment_sessions``): registered when a check
    starts, dropped when it succeeds; a failed one stays held, resumable, until a sweep finds
    it over ``poison_delay`` old and quits its browser."""

    appointment_session_id: str
    session: Session
    username: str
    last_used: float  # monotonic; set at creation and at each resume, never otherwise
    phase: int = 1
    phase_data: dict[str, Any] = field(default_factory=dict)
    # The browser reached the appointment page (a navigation failure leaves it elsewhere).
    on_page: bool = False
    # session.drives after the last call that drove this workflow.
    mark: int = 0
    running: bool = True
    error: str = ""

    def public(self, state: SimState, now: float) -> dict[str, Any]:
        return {
            "appointment_session_id": self.appointment_session_id,
            "session_id": self.session.session_id,
            "username": self.username,
            "phase": self.phase,
            "running": self.running,
            "error": self.error,
            "age": state.simulated_age(self.last_used, now),
            "due_in": state.poison_due_in(self, now),
            "browser_closed": self.session.gone,
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
    kind: str = ""
    step: str = ""
    container_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "count": self.remaining,
            "mode": self.mode,
            "status": self.status,
            "error": self.error,
            "details": self.details,
            "delay": self.delay,
            "kind": self.kind,
            "step": self.step,
            "container_id": self.container_id,
            "fields": self.fields,
        }


@dataclass
class Chaos:
    """Probabilistic faults: each public call (but the health check) of the chosen endpoints
    first evicts a random live session with probability ``evict_rate``, then fails before
    reaching a browser with probability ``error_rate`` — by hanging up with probability
    ``close_share``, else with Flask's HTML 500 page. A ``/get_appointments`` call that did not
    fail loses its download with probability ``stale_sheet_rate``; every operation meets one
    of its endpoint's real glitches with probability ``glitch_rate``."""

    error_rate: float
    evict_rate: float
    close_share: float
    seed: int | None
    endpoints: tuple[str, ...]  # empty: every public endpoint
    stale_sheet_rate: float = 0.0
    glitch_rate: float = 0.0
    errors: int = 0
    closes: int = 0
    evictions: int = 0
    stale_sheets: int = 0

    def applies_to(self, endpoint: str) -> bool:
        if endpoint in CHAOS_EXEMPT:
            return False
        return not self.endpoints or endpoint in self.endpoints

    def public(self, glitch_counts: dict[str, int]) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "evict_rate": self.evict_rate,
            "close_share": self.close_share,
            "stale_sheet_rate": self.stale_sheet_rate,
            "glitch_rate": self.glitch_rate,
            "seed": self.seed,
            "endpoints": list(self.endpoints) or ["*"],
            "injected": {
                "errors": self.errors,
                "closes": self.closes,
                "evictions": self.evictions,
                "stale_sheets": self.stale_sheets,
                "glitches": dict(glitch_counts),
            },
        }


@dataclass
class StoredFile:
    content: bytes
    content_type: str
    stored_at: float  # monotonic: the 24 h retention and get_appointments' 30 s window


def _nonempty(value: Any) -> bool:
    return bool(value)


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
        # active_sessions: session id -> the browser that id drives now (dead ones included).
        self._sessions: dict[str, Session] = {}
        # persistent_sessions: (username, password) -> session id. DELETE leaves it behind.
        self._persistent: dict[tuple[str, str], str] = {}
        # Browsers replaced in the map by a same-second login: running, unlisted, uncounted.
        self._orphans: list[Session] = []
        self._issued_ids: set[str] = set()
        self._logins_in_flight: dict[str, int] = {}
        self._counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._calls_by_endpoint: dict[str, int] = {}
        self._max_concurrent = 0
        self._calls: deque[Call] = deque(maxlen=MAX_CALL_HISTORY)
        self._next_call_id = 1
        self._faults: list[Fault] = []
        self._chaos: Chaos | None = None
        self._rng = random.Random()
        self._glitch_rng = random.Random(self.config.seed)
        self._glitch_counts: dict[str, int] = {}
        self._evictions: deque[dict[str, Any]] = deque(maxlen=MAX_EVICTION_HISTORY)
        self._generations: dict[str, int] = {}
        # Rows with these container numbers, as written, added to an account's sheet.
        self._added_numbers: dict[str, tuple[str, ...]] = {}
        self._flaky_attempts: dict[str, int] = {}
        self._booked: dict[str, list[dict[str, str]]] = {}
        self._bookings: list[dict[str, Any]] = []
        self._files: dict[str, StoredFile] = {}
        self._workflows: dict[str, Workflow] = {}
        self._appointment_ids: set[str] = set()
        self._cache: dict[tuple[Any, ...], Any] = {}

    # ----------------------------------------------------------------- time

    def sleep(self, simulated: float, session: Session | None = None) -> None:
        """Spend ``simulated`` seconds; a browser that goes away ends the wait at once."""
        if session is not None and session.gone:
            raise BrowserGone(session)
        real = max(0.0, simulated) * self.config.time_scale
        event = session.closed if session is not None else self._shutdown
        if real > 0:
            event.wait(real)
        if session is not None and session.gone:
            raise BrowserGone(session)

    def step(self, name: str, session: Session | None = None, extra: float = 0.0) -> None:
        self.sleep(self.config.latency(name) + extra, session)

    def simulated_age(self, since: float, now: float | None = None) -> float:
        """Simulated seconds since the monotonic time ``since`` (0 at time scale 0)."""
        elapsed = (time.monotonic() if now is None else now) - since
        scale = self.config.time_scale
        return elapsed / scale if scale > 0 else 0.0

    def wait_for_call(self, call: Call) -> None:
        """Wait until ``call`` has its answer (or the server stops)."""
        while not call.done.wait(0.05):
            if self._shutdown.is_set():
                return

    def shutdown(self) -> None:
        """Wake every sleeping call (server stopping): the process and its browsers are gone."""
        self._shutdown.set()
        with self._lock:
            self._drop_everything_locked("shutdown")

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
            if endpoint == "/make_appointment":
                self._counters["make_appointment_calls"] += 1
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
        error: str = "Unexpected error: injected fault",
        delay: float = 0.0,
        details: str = "",
        kind: str = "",
        step: str = "",
        container_id: str = "",
        fields: dict[str, Any] | None = None,
    ) -> Fault:
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
        if mode == "stale_sheet" and endpoint != "/get_appointments":
            raise ValueError("mode stale_sheet applies to /get_appointments only")
        if mode == "book_then_fail" and endpoint != "/make_appointment":
            raise ValueError("mode book_then_fail applies to /make_appointment only")
        if mode == "glitch":
            glitches.validate(endpoint, kind, step)
        if mode == "answer" and not isinstance(fields, dict):
            raise ValueError("mode answer needs fields (an object)")
        if count < 1:
            raise ValueError("count must be >= 1")
        if mode == "status" and status is None:
            status = 500
        fault = Fault(
            endpoint,
            count,
            mode,
            status,
            error,
            delay,
            details,
            kind,
            step,
            container_id,
            dict(fields or {}),
        )
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
        glitch_rate: float = 0.0,
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
            ("glitch_rate", glitch_rate),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if isinstance(endpoints, str) or not all(isinstance(e, str) for e in endpoints):
            raise ValueError("endpoints must be a list of endpoint paths")
        chosen = tuple(e for e in endpoints if e != "*")
        chaos = Chaos(
            error_rate, evict_rate, close_share, seed, chosen, stale_sheet_rate, glitch_rate
        )
        with self._lock:
            self._chaos = chaos
            self._rng = random.Random(seed)
            self._glitch_rng = random.Random(seed)
            self._glitch_counts.clear()
        return chaos

    def chaos(self) -> dict[str, Any] | None:
        with self._lock:
            if self._chaos is None:
                return None
            return self._chaos.public(self._glitch_counts)

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
                return Fault(endpoint, 1, "crash", 500, "HTML 500 (chaos)", 0.0)
            if (
                endpoint == "/get_appointments"
                and chaos.stale_sheet_rate
                and self._rng.random() < chaos.stale_sheet_rate
            ):
                chaos.stale_sheets += 1
                return Fault(endpoint, 1, "stale_sheet", None, "", 0.0)
            return None

    # -------------------------------------------------------------- glitches

    def _glitch_rate_locked(self, endpoint: str) -> float:
        if self._chaos is not None:
            return self._chaos.glitch_rate if self._chaos.applies_to(endpoint) else 0.0
        return self.config.glitch_rate

    def glitch_roll(self, endpoint: str) -> glitches.Glitch | None:
        """The glitch a whole call meets at the glitch rate (None most of the time)."""
        if endpoint not in glitches.CALL_KINDS:
            return None
        with self._lock:
            rate = self._glitch_rate_locked(endpoint)
            if not rate or self._glitch_rng.random() >= rate:
                return None
            return glitches.pick(endpoint, self._glitch_rng, texts.PAGE_EXCEPTIONS)

    def glitch_entry(self, trade: str) -> glitches.Glitch | None:
        """The glitch one get_info_bulk entry meets at the glitch rate."""
        with self._lock:
            rate = self._glitch_rate_locked("/get_info_bulk")
            if not rate or self._glitch_rng.random() >= rate:
                return None
            return glitches.pick_entry(trade, self._glitch_rng, texts.PAGE_EXCEPTIONS)

    def count_glitch(self, endpoint: str, kind: str) -> None:
        with self._lock:
            key = f"{endpoint} {kind}"
            self._glitch_counts[key] = self._glitch_counts.get(key, 0) + 1
            self._counters["glitches"] += 1

    def glitch_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._glitch_counts)

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
        """Quit the browser's driver: every command on it fails from now on."""
        if session.closed_reason is None:
            session.closed_reason = reason
        session.closed.set()
        if session in self._orphans:
            self._orphans.remove(session)

    def _unmap_locked(self, session: Session) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]

    def _drop_locked(self, session: Session, reason: str) -> None:
        self._unmap_locked(session)
        self._close_locked(session, reason)

    def _forget_credentials_locked(self, session: Session) -> None:
        key = (session.username, session.password)
        if self._persistent.get(key) == session.session_id:
            del self._persistent[key]

    def _touch_locked(self, session: Session) -> None:
        session.last_used = time.time()
        session.last_used_mono = time.monotonic()

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
        self._forget_credentials_locked(session)
        self._drop_locked(session, "evicted")

    def _ensure_capacity_locked(self) -> None:
        """L238: only a login checks capacity, before it starts, and evicts one least recently
        used browser (dead ones included, busy ones too). Logins in flight are not counted,
        so concurrent logins can end above capacity."""
        self._expire_idle_locked()
        if len(self._sessions) >= self.config.capacity and self._sessions:
            lru = min(self._sessions.values(), key=lambda s: s.last_used_mono)
            self._evict_locked(lru, "capacity")

    def _allocate_id_locked(self, username: str) -> str:
        """``session_<unix seconds>_<hash(username)>``, taken when the login starts (L6830).
        A login of the same user started in the same second while it still runs gets the same
        id. On the real server a login takes 20-90 s, so logins one after another never share
        a second; here time may be scaled, so a second already used by a finished login is
        skipped instead."""
        seconds = int(time.time())
        suffix = username_hash(username)
        while True:
            session_id = f"session_{seconds}_{suffix}"
            if session_id in self._logins_in_flight or session_id not in self._issued_ids:
                break
            seconds += 1
        self._issued_ids.add(session_id)
        self._logins_in_flight[session_id] = self._logins_in_flight.get(session_id, 0) + 1
        return session_id

    def _login_ended_locked(self, session_id: str) -> None:
        left = self._logins_in_flight.get(session_id, 0) - 1
        if left > 0:
            self._logins_in_flight[session_id] = left
        else:
            self._logins_in_flight.pop(session_id, None)

    def _register_locked(self, session_id: str, username: str, password: str, key: str) -> Session:
        """The login finished: its browser goes into the map under its id. A browser already
        there under that id (a same-second login of the user that finished first) is
        overwritten: it keeps running, listed and counted nowhere."""
        previous = self._sessions.get(session_id)
        if previous is not None:
            del self._sessions[session_id]
            if previous.gone:
                pass  # a dead browser's entry is simply replaced
            else:
                previous.orphan = True
                self._orphans.append(previous)
                self._counters["session_id_collisions"] += 1
        now = time.time()
        session = Session(session_id, username, password, key, now, now, time.monotonic())
        self._sessions[session_id] = session
        self._persistent[(username, password)] = session_id
        self._counters["sessions_created"] += 1
        self._max_concurrent = max(self._max_concurrent, len(self._sessions))
        return session

    def _live_by_credentials_locked(self, username: str, password: str) -> Session | None:
        """find_session_by_credentials (L135): through the credentials map only. A mapped id
        that is no longer live finds nothing (and a dead browser there is cleared)."""
        self._expire_idle_locked()
        session_id = self._persistent.get((username, password))
        if session_id is None:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.gone:
            del self._persistent[(username, password)]
            self._unmap_locked(session)
            return None
        return session

    def _moved_locked(self, session: Session) -> bool:
        """The refresh thread took this browser to its own page (L986-1008): it only touches
        browsers not flagged in use, once they are older than keep_alive_idle."""
        idle = time.monotonic() - session.driven_mono
        return (
            not session.in_use and not session.busy and idle > self.config.scaled("keep_alive_idle")
        )

    def _attach_locked(self, session: Session, call: Call) -> None:
        """``call`` starts driving ``session``'s browser (alongside any call already there)."""
        if session.active:
            self._counters["collisions"] += 1
            call.collided_with = session.active[0]
        elif self._moved_locked(session):
            call.page_return = True
            self._counters["page_returns"] += 1
        session.active.append(call)
        session.in_use = True
        session.drives += 1
        self._touch_locked(session)
        session.driven_mono = time.monotonic()
        call.username = session.username
        call.session_id_out = session.session_id

    def attach(self, session: Session, call: Call) -> None:
        with self._lock:
            self._attach_locked(session, call)

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

    def _login(self, username: str, password: str, key: str, call: Call | None) -> Session:
        """A new browser: capacity first, the id when the login starts, the map when it ends."""
        with self._lock:
            self._ensure_capacity_locked()
            session_id = self._allocate_id_locked(username)
        try:
            self.authenticate(username, password, key, call)
        except BaseException:
            with self._lock:
                self._login_ended_locked(session_id)
            raise
        with self._lock:
            self._login_ended_locked(session_id)
            session = self._register_locked(session_id, username, password, key)
            if call is not None:
                call.session_created = True
            return session

    def get_session(
        self, username: str, password: str, key: str, call: Call | None = None
    ) -> tuple[Session, bool]:
        """POST /get_session: reuse the live session of the same credentials, else log in."""
        with self._lock:
            reuse = self._live_by_credentials_locked(username, password)
            if reuse is not None:
                self._touch_locked(reuse)
                self._counters["sessions_reused"] += 1
        if reuse is not None:
            # Closed meanwhile: the answer still names it, as the real one would.
            with contextlib.suppress(BrowserGone):
                self.step("login_reuse", reuse)
            return reuse, False
        return self._login(username, password, key, call), True

    def acquire(self, block: dict[str, Any], call: Call) -> tuple[Session, bool]:
        """Resolve a session block (L398-677): the live session named; else, with
        credentials, the live session of the same credentials or a silent login. A dead
        browser named by its id is removed from the map on the way."""
        session_id = block.get("session_id")
        with self._lock:
            self._expire_idle_locked()
            if session_id and isinstance(session_id, str) and session_id in self._sessions:
                session = self._sessions[session_id]
                if session.gone:
                    self._unmap_locked(session)
                    self._forget_credentials_locked(session)
                else:
                    self._attach_locked(session, call)
                    return session, False
        if not all(_nonempty(block.get(name)) for name in CREDENTIAL_FIELDS):
            raise ApiError(400, SESSION_GONE_ERROR, outcome="session_gone")
        username, password, key = (str(block[name]) for name in CREDENTIAL_FIELDS)
        call.username = username
        with self._lock:
            reuse = self._live_by_credentials_locked(username, password)
            if reuse is not None:
                self._counters["sessions_reused"] += 1
                self._attach_locked(reuse, call)
        if reuse is not None:
            try:
                self.step("login_reuse", reuse)
            except BrowserGone:
                self.release(reuse, call)
                raise
            return reuse, False
        session = self._login(username, password, key, call)
        with self._lock:
            self._counters["silent_relogins"] += 1
            self._attach_locked(session, call)
            return session, True

    def release(self, session: Session, call: Call) -> None:
        with self._lock:
            if call in session.active:
                session.active.remove(call)
            if not session.gone:
                self._touch_locked(session)
                session.driven_mono = time.monotonic()

    def not_in_use(self, session: Session) -> None:
        """``release_session_after_operation``: the refresh thread may take this browser."""
        with self._lock:
            session.in_use = False

    def current_url(self, session: Session) -> str:
        if self._moved_locked(session):
            return REFRESH_PAGE
        return PAGES.get(session.page, DASHBOARD_PAGE)

    def list_sessions(self) -> list[Session]:
        """Every session the server lists, dead browsers included."""
        with self._lock:
            self._expire_idle_locked()
            return list(self._sessions.values())

    def active_sessions(self) -> int:
        return len(self.list_sessions())

    def persistent_sessions(self) -> int:
        with self._lock:
            return len(self._persistent)

    def sim_sessions(self) -> list[dict[str, Any]]:
        """Sessions with simulator-only detail (busy flag, calls in flight, idle age, dead)."""
        now = time.monotonic()
        with self._lock:
            self._expire_idle_locked()
            listed = [
                {
                    **s.public(self.current_url(s)),
                    "busy": s.busy,
                    "calls_in_flight": len(s.active),
                    "idle_seconds": now - s.last_used_mono,
                    "dead": s.gone,
                    "in_use": s.in_use,
                    "orphan": False,
                }
                for s in self._sessions.values()
            ]
            orphans = [
                {
                    **s.public(self.current_url(s)),
                    "busy": s.busy,
                    "calls_in_flight": len(s.active),
                    "idle_seconds": now - s.last_used_mono,
                    "dead": False,
                    "in_use": s.in_use,
                    "orphan": True,
                }
                for s in self._orphans
            ]
            return listed + orphans

    def delete_session(self, session_id: str) -> bool:
        """DELETE /sessions/{id} (L9180): quits the browser and unlists it; the credentials
        map entry and any held workflow stay."""
        with self._lock:
            self._expire_idle_locked()
            session = self._sessions.get(session_id)
            if session is None:
                return False
            self._drop_locked(session, "deleted")
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
                self._forget_credentials_locked(session)
                self._drop_locked(session, "expired")
            self._counters["expired"] += len(victims)
            return len(victims)

    def emergency_recovery(self) -> int:
        """POST /emergency_recovery (L321-365): every Chrome and chromedriver process on the
        host is killed (orphaned browsers too) and both session maps are cleared; held
        workflows stay, pointing at dead browsers. Answers the processes killed: a
        chromedriver and a browser per session, as the simulator counts them."""
        with self._lock:
            browsers = [*self._sessions.values(), *self._orphans]
            live = [s for s in browsers if not s.gone]
            for session in browsers:
                self._close_locked(session, "killed")
            self._sessions.clear()
            self._persistent.clear()
            self._orphans.clear()
            self._counters["emergency_recoveries"] += 1
            return 2 * len(live)

    def cleanup_orphans(self) -> int:
        """POST /cleanup_orphaned_processes (L254-319): kills the chromedriver of every
        browser no session in the map owns (the same-second losers)."""
        with self._lock:
            orphans = list(self._orphans)
            for session in orphans:
                self._close_locked(session, "killed")
            self._counters["orphans_killed"] += len(orphans)
            return len(orphans)

    def _drop_everything_locked(self, reason: str) -> int:
        browsers = [*self._sessions.values(), *self._orphans]
        for session in browsers:
            self._close_locked(session, reason)
        count = len(self._sessions)
        self._sessions.clear()
        self._persistent.clear()
        self._orphans.clear()
        self._workflows.clear()
        self._logins_in_flight.clear()
        return count

    def restart(self) -> None:
        """The server process restarts: every map is empty again."""
        with self._lock:
            self._drop_everything_locked("restart")
            self._counters["restarts"] += 1

    def reset(self) -> None:
        with self._lock:
            self._drop_everything_locked("restart")
            self._issued_ids.clear()
            self._appointment_ids.clear()
            self._counters = dict.fromkeys(COUNTER_NAMES, 0)
            self._calls_by_endpoint.clear()
            self._max_concurrent = 0
            self._calls.clear()
            self._next_call_id = 1
            self._faults.clear()
            self._chaos = None
            self._glitch_rng = random.Random(self.config.seed)
            self._glitch_counts.clear()
            self._evictions.clear()
            self._generations.clear()
            self._added_numbers.clear()
            self._flaky_attempts.clear()
            self._booked.clear()
            self._bookings.clear()
            self._files.clear()
            self._cache.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._expire_idle_locked()
            return {
                **self._counters,
                "active_sessions": len(self._sessions),
                "persistent_sessions": len(self._persistent),
                "max_concurrent_sessions": self._max_concurrent,
                "dead_browsers": sum(1 for s in self._sessions.values() if s.gone),
                "orphaned_browsers": len(self._orphans),
                "held_workflows": sum(1 for w in self._workflows.values() if not w.running),
                "workflows": len(self._workflows),
                # Kept under its older name: workflows that will close a browser when swept.
                "pending_poisons": sum(1 for w in self._workflows.values() if not w.running),
                "calls": dict(self._calls_by_endpoint),
            }

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    # ------------------------------------------------- appointment workflows

    def poison_due_in(self, workflow: Workflow, now: float | None = None) -> float | None:
        """Simulated seconds until a sweep would close the workflow's browser (None at time
        scale 0, where no simulated time passes)."""
        if self.config.time_scale <= 0:
            return None
        return self.config.latency("poison_delay") - self.simulated_age(workflow.last_used, now)

    def _expired_locked(self, workflow: Workflow, now: float) -> bool:
        """AppointmentSession.is_expired: ``(now - last_used).seconds > 600``. ``seconds`` is
        the seconds part of the timedelta, so a workflow more than a day old looks young
        again for 10 minutes of every day."""
        if self.config.time_scale <= 0:
            return False
        age = int(self.simulated_age(workflow.last_used, now))
        return age % 86400 > self.config.latency("poison_delay")

    def sweep(self) -> list[str]:
        """cleanup_expired_appointment_sessions (L1011-1025), run at the start of every
        check_appointments and make_appointment: each expired workflow is dropped and its
        browser's driver quit — whoever is using that browser now. The session stays listed
        (dead) until its id is next used. Returns the ids of the browsers closed."""
        now = time.monotonic()
        closed: list[str] = []
        with self._lock:
            for workflow in list(self._workflows.values()):
                if not self._expired_locked(workflow, now):
                    continue
                del self._workflows[workflow.appointment_session_id]
                self._counters["workflows_expired"] += 1
                session = workflow.session
                if session.gone:
                    continue
                listed = self._sessions.get(session.session_id) is session
                self._close_locked(session, "poisoned")
                session.dead = listed
                self._counters["poisoned_browsers"] += 1
                closed.append(session.session_id)
        return closed

    def register_workflow(self, session: Session) -> Workflow:
        """A new check's workflow, ``appt_<session_id>_<unix seconds>`` (L7532-7541). As with
        session ids, a second is shared only with a check still running on that browser (it
        then overwrites that check's workflow); finished ones skip to the next second."""
        with self._lock:
            seconds = int(time.time())
            while True:
                appointment_id = f"appt_{session.session_id}_{seconds}"
                existing = self._workflows.get(appointment_id)
                if appointment_id not in self._appointment_ids or (
                    existing is not None and existing.running
                ):
                    break
                seconds += 1
            self._appointment_ids.add(appointment_id)
            workflow = Workflow(
                appointment_id, session, session.username, time.monotonic(), mark=session.drives
            )
            self._workflows[appointment_id] = workflow
            return workflow

    def workflow(self, appointment_session_id: Any) -> Workflow | None:
        if not isinstance(appointment_session_id, str):
            return None
        with self._lock:
            return self._workflows.get(appointment_session_id)

    def resume_workflow(self, workflow: Workflow, call: Call) -> bool:
        """A check continues a held workflow (L7496-7510): ``update_last_used``, no session
        block. Answers whether the browser still shows that workflow's page: alive, on the
        appointment page, and driven by nothing else since (nor moved by the refresh thread)."""
        with self._lock:
            session = workflow.session
            intact = (
                not session.gone
                and workflow.on_page
                and session.drives == workflow.mark
                and not self._moved_locked(session)
            )
            workflow.last_used = time.monotonic()
            workflow.running = True
            self._counters["resumes"] += 1
            call.resumed = True
            if not session.gone:
                self._attach_locked(session, call)
            else:
                call.username = session.username
                call.session_id_out = session.session_id
            return intact

    def end_workflow(self, workflow: Workflow, *, succeeded: bool, error: str = "") -> None:
        """A successful check drops its workflow (L8182); a failed one is held."""
        with self._lock:
            workflow.running = False
            workflow.mark = workflow.session.drives
            if succeeded:
                if self._workflows.get(workflow.appointment_session_id) is workflow:
                    del self._workflows[workflow.appointment_session_id]
                return
            workflow.error = error
            if self._workflows.get(workflow.appointment_session_id) is workflow:
                self._counters["workflows_held"] += 1

    def workflows(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [w.public(self, now) for w in self._workflows.values()]

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
            "glitch_rate",
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
                glitch_rate=float(changes.get("glitch_rate", cfg.glitch_rate)),
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
            if cfg.glitch_rate != candidate.glitch_rate:
                self._glitch_rng = random.Random(cfg.seed)
            cfg.glitch_rate = candidate.glitch_rate
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

    def book(self, username: str, row: dict[str, str], record: dict[str, Any]) -> None:
        """The Submit click went through: E-Modal has the appointment from now on."""
        with self._lock:
            self._booked.setdefault(username, []).append(row)
            self._bookings.append({**record, "time": time.time(), "row": dict(row)})
            self._counters["appointments_booked"] += 1

    def bookings(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(b) for b in self._bookings]

    # ---------------------------------------------------------------- files

    def store_file(self, make_name: Callable[[str], str], content: bytes, content_type: str) -> str:
        """Store a file under ``make_name(<YYYYmmdd_HHMMSS>)``; a name already used (two files
        of one kind and session in the same second) takes the next second instead."""
        with self._lock:
            moment = int(time.time())
            while True:
                stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(moment))
                name = make_name(stamp)
                if name not in self._files:
                    break
                moment += 1
            while len(self._files) >= self.config.max_files:
                self._files.pop(next(iter(self._files)))
            self._files[name] = StoredFile(content, content_type, time.monotonic())
            return name

    def store_named(self, name: str, content: bytes, content_type: str) -> str:
        with self._lock:
            self._files[name] = StoredFile(content, content_type, time.monotonic())
            return name

    def get_file(self, name: str) -> StoredFile | None:
        """GET /files/<path> (L9599-9633): the path under the downloads folder, else a bare
        file name found in any subfolder."""
        with self._lock:
            self._purge_files_locked()
            if name in self._files:
                return self._files[name]
            if "/" not in name:
                for key, stored in self._files.items():
                    if key.rsplit("/", 1)[-1] == name:
                        return stored
            return None

    @staticmethod
    def inside_downloads(name: str) -> bool:
        """The real route refuses a path that resolves outside its downloads folder."""
        normal = posixpath.normpath("/downloads/" + name)
        return normal.startswith("/downloads/")

    def _purge_files_locked(self) -> None:
        limit = time.monotonic() - self.config.file_ttl
        for name in [n for n, f in self._files.items() if f.stored_at < limit]:
            del self._files[name]

    def cleanup_files(self) -> dict[str, float]:
        """POST /cleanup (L9195-9234): files past retention go; storage sizes are answered.
        Sessions are not touched."""
        with self._lock:
            self._counters["cleanups"] += 1
            self._purge_files_locked()
            downloads = sum(
                len(f.content) for f in self._files.values() if f.content_type != "image/png"
            )
            screenshots = sum(
                len(f.content) for f in self._files.values() if f.content_type == "image/png"
            )
            mb = 1024 * 1024
            return {
                "current_storage_mb": round((downloads + screenshots) / mb, 2),
                "downloads_mb": round(downloads / mb, 2),
                "screenshots_mb": round(screenshots / mb, 2),
            }

    def newest_download(self, session_id: str, own: str | None = None) -> str | None:
        """The newest spreadsheet in ``downloads/<session_id>/`` from the last download_window
        (L9025-9040): whatever it is. ``own``, the file this call's click downloaded, is
        always recent: on the real server it is 5 s old against a 30 s window, a margin
        that a scaled clock must not eat up."""
        limit = time.monotonic() - self.config.scaled("download_window")
        prefix = f"{session_id}/"
        with self._lock:
            candidates = [
                (stored.stored_at, name)
                for name, stored in self._files.items()
                if name.startswith(prefix)
                and name.endswith(SPREADSHEET_SUFFIXES)
                and (stored.stored_at >= limit or name == own)
            ]
        return max(candidates)[1] if candidates else None

    def move_file(self, old: str, new: str) -> None:
        """shutil.move: the old path answers 404 from now on; the time stamp moves along."""
        with self._lock:
            stored = self._files.pop(old)
            self._files[new] = stored


def _with_rows(sheet: data.Sheet, numbers: tuple[str, ...]) -> data.Sheet:
    """The sheet with a copy of its first row for each number (``SimState.add_rows``)."""
    if not numbers or not sheet.rows:
        return sheet
    first = sheet.rows[0]
    copies = [{**first, "Container #": number} for number in numbers]
    hidden = {**sheet.hidden, **dict.fromkeys(numbers, sheet.hidden[first["Container #"]])}
    return dataclasses.replace(sheet, rows=[*sheet.rows, *copies], hidden=hidden, _index=None)
