"""Session pool, counters, call history, faults and files: the simulator's shared state.

All mutable state sits behind one lock; the lock is never held while a simulated step
sleeps, so calls on different sessions really run concurrently.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from . import data
from .config import (
    BAD_CAPTCHA_KEY,
    DEFAULT_LATENCIES,
    FLAKY_CAPTCHA_KEY,
    NO_BALANCE_CAPTCHA_KEY,
    UNSOLVABLE_CAPTCHA_KEY,
    VPN_USERNAME_PREFIX,
    WRONG_PASSWORD,
    SimConfig,
    validate_config,
)

SESSION_GONE_ERROR = (
    "Missing required fields: username, password, captcha_api_key (or valid session_id)"
)
BUSY_ERROR = "Automation failed: browser busy (concurrent request on the same session)"
CREDENTIAL_FIELDS = ("username", "password", "captcha_api_key")
FAULT_MODES = ("status", "close", "non_json", "delay")
MAX_CALL_HISTORY = 100_000
MAX_EVICTION_HISTORY = 10_000
CHAOS_ERROR = "Automation failed: injected transient error"
# Chaos spares the health check: it answers for the server, not for a browser.
CHAOS_EXEMPT = ("/health",)

COUNTER_NAMES = (
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
    "appointments_booked",
)


class ApiError(Exception):
    """An error answer: HTTP status, JSON payload and the outcome recorded in the history."""

    def __init__(self, status: int, error: str, outcome: str = "error", **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.payload: dict[str, Any] = {"success": False, "error": error, **extra}
        self.outcome = outcome


def closed_error(reason: str) -> ApiError:
    return ApiError(
        500, f"Automation failed: browser session was closed ({reason})", outcome="evicted"
    )


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).isoformat()


@dataclass
class Session:
    session_id: str
    username: str
    password: str
    captcha_api_key: str
    created_at: float
    last_used: float  # wall clock, for display
    last_used_mono: float  # monotonic, for idle expiry
    busy: bool = False
    closed_reason: str | None = None
    # Set when the browser goes away; a sleeping call waits on it to end promptly.
    closed: threading.Event = field(default_factory=threading.Event)
    current_url: str = "https://truckerportal.emodal.com/containers"

    def public(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "username": self.username,
            "created_at": iso(self.created_at),
            "last_used": iso(self.last_used),
            "keep_alive": False,
            "current_url": self.current_url,
        }


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
    # Simulated seconds added by a "delay" fault; spent inside the session's main step.
    extra_delay: float = 0.0
    # The call ran a login (a captcha solve and the portal's login form), whatever its result.
    login: bool = False
    # The call's login created a session (a browser) for its username.
    session_created: bool = False

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
    500 automation error."""

    error_rate: float
    evict_rate: float
    close_share: float
    seed: int | None
    endpoints: tuple[str, ...]  # empty: every public endpoint
    errors: int = 0
    closes: int = 0
    evictions: int = 0

    def applies_to(self, endpoint: str) -> bool:
        if endpoint in CHAOS_EXEMPT:
            return False
        return not self.endpoints or endpoint in self.endpoints

    def public(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "evict_rate": self.evict_rate,
            "close_share": self.close_share,
            "seed": self.seed,
            "endpoints": list(self.endpoints) or ["*"],
            "injected": {"errors": self.errors, "closes": self.closes, "evictions": self.evictions},
        }


@dataclass
class StoredFile:
    content: bytes
    content_type: str
    stored_at: float


def new_session_id() -> str:
    value = int.from_bytes(secrets.token_bytes(8), "big", signed=True)
    return f"session_{int(time.time())}_{value}"


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


class SimState:
    """Everything the HTTP layer and the control surface share."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._lock = threading.RLock()
        self._shutdown = threading.Event()
        self._sessions: dict[str, Session] = {}
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
        self._flaky_attempts: dict[str, int] = {}
        self._booked: dict[str, list[dict[str, str]]] = {}
        self._files: dict[str, StoredFile] = {}
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

    def shutdown(self) -> None:
        """Wake every sleeping call (server stopping)."""
        self._shutdown.set()
        with self._lock:
            for session in list(self._sessions.values()):
                self._close_locked(session, "shutdown")
            self._sessions.clear()

    def resume(self) -> None:
        """Serve again after `shutdown()`, with every session gone, as a restarted upstream
        process would (counts a restart; counters, history and data are kept)."""
        with self._lock:
            self._shutdown.clear()
            self._counters["restarts"] += 1

    # ---------------------------------------------------------------- calls

    def begin_call(self, endpoint: str, session_id: str | None, username: str | None) -> Call:
        with self._lock:
            call = Call(self._next_call_id, endpoint, session_id, username, time.time())
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
        seed: int | None = None,
        endpoints: list[str] | tuple[str, ...] = (),
    ) -> Chaos:
        """Replace the chaos settings (and their counters); the seed makes the sequence of
        decisions repeatable for the same sequence of calls."""
        for name, value in (
            ("error_rate", error_rate),
            ("evict_rate", evict_rate),
            ("close_share", close_share),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if isinstance(endpoints, str) or not all(isinstance(e, str) for e in endpoints):
            raise ValueError("endpoints must be a list of endpoint paths")
        chosen = tuple(e for e in endpoints if e != "*")
        chaos = Chaos(error_rate, evict_rate, close_share, seed, chosen)
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
            if not chaos.error_rate or self._rng.random() >= chaos.error_rate:
                return None
            if self._rng.random() < chaos.close_share:
                chaos.closes += 1
                return Fault(endpoint, 1, "close", None, "connection closed (chaos)", 0.0)
            chaos.errors += 1
            return Fault(endpoint, 1, "status", 500, CHAOS_ERROR, 0.0)

    def evictions(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._evictions)

    # ------------------------------------------------------------- sessions

    def _expire_idle_locked(self) -> None:
        limit = time.monotonic() - self.config.idle_timeout
        for session in list(self._sessions.values()):
            # A browser serving a call is in use, whatever its last_used says.
            if not session.busy and session.last_used_mono < limit:
                self._drop_locked(session, "expired")
                self._counters["expired"] += 1

    def _close_locked(self, session: Session, reason: str) -> None:
        session.closed_reason = reason
        session.closed.set()

    def _drop_locked(self, session: Session, reason: str) -> None:
        self._sessions.pop(session.session_id, None)
        self._close_locked(session, reason)

    def _touch_locked(self, session: Session) -> None:
        session.last_used = time.time()
        session.last_used_mono = time.monotonic()

    def _live_locked(self, session_id: Any) -> Session | None:
        self._expire_idle_locked()
        if not isinstance(session_id, str):
            return None
        return self._sessions.get(session_id)

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

    def _create_locked(self, username: str, password: str, key: str, busy: bool) -> Session:
        while len(self._sessions) >= self.config.capacity:
            lru = min(self._sessions.values(), key=lambda s: s.last_used_mono)
            self._evict_locked(lru, "capacity")
        now = time.time()
        session = Session(
            new_session_id(), username, password, key, now, now, time.monotonic(), busy=busy
        )
        self._sessions[session.session_id] = session
        self._counters["sessions_created"] += 1
        self._max_concurrent = max(self._max_concurrent, len(self._sessions))
        return session

    def authenticate(
        self, username: str, password: str, key: str, call: Call | None = None
    ) -> None:
        """Run the login (captcha + portal), spending its latency; 401 on failure."""
        if call is not None:
            call.login = True

        def fail(details: str) -> ApiError:
            with self._lock:
                self._counters["login_failures"] += 1
            return ApiError(401, "Authentication failed", details=details)

        if username.startswith(VPN_USERNAME_PREFIX):
            self.step("login")
            raise fail("vpn_required: E-Modal is only reachable through the VPN")
        if key == FLAKY_CAPTCHA_KEY:
            with self._lock:
                attempt = self._flaky_attempts.get(username, 0) + 1
                self._flaky_attempts[username] = attempt
            if attempt % 2 == 1:
                self.step("login")
                raise fail("network_error: connection reset while loading the login page")
        if key in (BAD_CAPTCHA_KEY, NO_BALANCE_CAPTCHA_KEY):
            # The solver refuses an unknown or empty-balance key as soon as it is submitted.
            self.step("login")
            with self._lock:
                self._counters["captcha_failures"] += 1
            if key == NO_BALANCE_CAPTCHA_KEY:
                raise fail("recaptcha_failed: ERROR_ZERO_BALANCE (captcha account has no balance)")
            raise fail("recaptcha_failed: ERROR_KEY_DOES_NOT_EXIST (captcha API key is invalid)")
        if key == UNSOLVABLE_CAPTCHA_KEY:
            # The solver accepted the job but gave up: a passing failure, polled until give-up.
            self.step("captcha")
            with self._lock:
                self._counters["captcha_failures"] += 1
            raise fail("recaptcha_failed: ERROR_CAPTCHA_UNSOLVABLE")
        self.step("captcha")
        with self._lock:
            self._counters["captcha_solves"] += 1
        self.step("login")
        if password == WRONG_PASSWORD:
            raise fail("invalid_credentials: invalid username or password")
        with self._lock:
            self._counters["logins"] += 1

    def get_session(
        self, username: str, password: str, key: str, call: Call | None = None
    ) -> tuple[Session, bool]:
        """POST /get_session: reuse a live session of the same account, else log in."""
        with self._lock:
            self._expire_idle_locked()
            reuse = next(
                (
                    s
                    for s in self._sessions.values()
                    if s.username == username and s.password == password
                ),
                None,
            )
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
            session = self._create_locked(username, password, key, busy=False)
            if call is not None:
                call.session_created = True
            return session, True

    def acquire(self, block: dict[str, Any], call: Call) -> tuple[Session, bool]:
        """Resolve a session block and mark the session busy for this call."""
        with self._lock:
            session = self._live_locked(block.get("session_id"))
            if session is not None:
                if session.busy:
                    self._counters["collisions"] += 1
                    raise ApiError(500, BUSY_ERROR, outcome="collision")
                session.busy = True
                self._touch_locked(session)
                call.username = session.username
                call.session_id_out = session.session_id
                return session, False
        if not all(_nonempty(block.get(name)) for name in CREDENTIAL_FIELDS):
            raise ApiError(400, SESSION_GONE_ERROR, outcome="session_gone")
        username = block["username"].strip()
        call.username = username
        self.authenticate(username, block["password"], block["captcha_api_key"], call)
        with self._lock:
            session = self._create_locked(
                username, block["password"], block["captcha_api_key"], busy=True
            )
            call.session_created = True
            self._counters["silent_relogins"] += 1
            call.session_id_out = session.session_id
            return session, True

    def release(self, session: Session) -> None:
        with self._lock:
            session.busy = False
            if session.closed_reason is None:
                self._touch_locked(session)

    def list_sessions(self) -> list[Session]:
        with self._lock:
            self._expire_idle_locked()
            return list(self._sessions.values())

    def active_sessions(self) -> int:
        return len(self.list_sessions())

    def sim_sessions(self) -> list[dict[str, Any]]:
        """Sessions with simulator-only detail (busy flag, idle age)."""
        now = time.monotonic()
        with self._lock:
            self._expire_idle_locked()
            return [
                {**s.public(), "busy": s.busy, "idle_seconds": now - s.last_used_mono}
                for s in self._sessions.values()
            ]

    def delete_session(self, session_id: str, reason: str = "deleted") -> bool:
        with self._lock:
            session = self._live_locked(session_id)
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

    def restart(self) -> None:
        with self._lock:
            for session in list(self._sessions.values()):
                self._drop_locked(session, "restart")
            self._counters["restarts"] += 1

    def reset(self) -> None:
        with self._lock:
            for session in list(self._sessions.values()):
                self._drop_locked(session, "restart")
            self._counters = dict.fromkeys(COUNTER_NAMES, 0)
            self._calls_by_endpoint.clear()
            self._max_concurrent = 0
            self._calls.clear()
            self._next_call_id = 1
            self._faults.clear()
            self._chaos = None
            self._evictions.clear()
            self._generations.clear()
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
                "calls": dict(self._calls_by_endpoint),
            }

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    # --------------------------------------------------------------- config

    def update_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        allowed = {"time_scale", "idle_timeout", "capacity", "latencies"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        with self._lock:
            latencies = dict(self.config.latencies)
            if "latencies" in changes:
                if not isinstance(changes["latencies"], dict):
                    raise ValueError("latencies must be an object")
                for name, value in changes["latencies"].items():
                    if name not in DEFAULT_LATENCIES:
                        raise ValueError(f"unknown latency name: {name}")
                    latencies[name] = float(value)
            candidate = SimConfig(
                time_scale=float(changes.get("time_scale", self.config.time_scale)),
                idle_timeout=float(changes.get("idle_timeout", self.config.idle_timeout)),
                capacity=int(changes.get("capacity", self.config.capacity)),
                seed=self.config.seed,
                containers=self.config.containers,
                latencies=latencies,
                today=self.config.today,
            )
            validate_config(candidate)
            # Mutate in place: everyone holding the config object sees the change.
            self.config.time_scale = candidate.time_scale
            self.config.idle_timeout = candidate.idle_timeout
            self.config.capacity = candidate.capacity
            self.config.latencies = candidate.latencies
            return self.config.to_dict()

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

    def _cached(self, key: tuple[Any, ...], make: Any) -> Any:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = make()  # computed outside the lock: large accounts take a while
        with self._lock:
            if len(self._cache) >= 64:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = value
        return value

    def _data_key(self, username: str, kind: str) -> tuple[Any, ...]:
        cfg = self.config
        return (
            kind,
            username,
            self.generation(username),
            cfg.seed,
            cfg.containers,
            cfg.current_date(),
        )

    def containers(self, username: str) -> list[dict[str, str]]:
        """The containers currently served to ``username`` (its current data generation)."""
        generation = self.generation(username)
        return self._cached(
            self._data_key(username, "containers"),
            lambda: data.containers_for(username, self.config, generation),
        )

    def containers_xlsx(self, username: str) -> bytes:
        rows = self.containers(username)
        return self._cached(
            self._data_key(username, "xlsx"),
            lambda: data.xlsx_bytes(data.COLUMNS, rows, "Containers"),
        )

    def appointments(self, username: str) -> list[dict[str, str]]:
        base = data.appointments_for(username, self.containers(username), self.config)
        with self._lock:
            return base + list(self._booked.get(username, []))

    def book(self, username: str, row: dict[str, str]) -> None:
        with self._lock:
            self._booked.setdefault(username, []).append(row)
            self._counters["appointments_booked"] += 1

    # ---------------------------------------------------------------- files

    def put_file(self, name: str, content: bytes, content_type: str) -> None:
        with self._lock:
            self._purge_files_locked()
            while len(self._files) >= self.config.max_files:
                self._files.pop(next(iter(self._files)))
            self._files[name] = StoredFile(content, content_type, time.monotonic())

    def get_file(self, name: str) -> StoredFile | None:
        with self._lock:
            self._purge_files_locked()
            return self._files.get(name)

    def _purge_files_locked(self) -> None:
        limit = time.monotonic() - self.config.file_ttl
        for name in [n for n, f in self._files.items() if f.stored_at < limit]:
            del self._files[name]
