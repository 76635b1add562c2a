"""Simulator configuration, default step latencies and the test credentials.

Test credentials (anything else logs in fine; the README has the full table):

- password ``wrong-password``          -> 401 ``LoginErrorType.INVALID_CREDENTIALS`` (a captcha IS
  solved first)
- captcha key ``bad-captcha-key`` / ``no-balance-key`` -> 401 ``LoginErrorType.RECAPTCHA_FAILED``
  (the key is refused, no solve; a captcha failure)
- captcha key ``unsolvable-captcha-key`` -> 401 ``LoginErrorType.RECAPTCHA_FAILED`` after the
  captcha wait
- captcha key ``flaky-captcha-key``    -> 401 ``LoginErrorType.NETWORK_ERROR`` on odd attempts
  per username, success on even ones
- username starting ``vpn-``           -> 401 ``LoginErrorType.VPN_REQUIRED``
- username starting ``unknown-``       -> 401 ``LoginErrorType.UNKNOWN_ERROR`` (a captcha spent)
- username starting ``dashboard-``     -> 401 ``Manual login failed - not on eModal dashboard``
- username starting ``nobutton-``     -> 401 ``LoginErrorType.LOGIN_BUTTON_NOT_FOUND``
- username starting ``pageload-``     -> 401 ``LoginErrorType.PAGE_LOAD_ERROR``
- username starting ``verify-``        -> 401 ``Verification failed: ...`` (no details)
- container ``NOTF0000000``            -> never found (timeline, booking number, bulk, appointments)
- booking number starting ``INVALID``  -> 400 ``Booking number validation failed``
- a username containing ``+c<N>``      -> that user has N containers (``+c0``: none at all)
- a username containing ``+p0``        -> the appointment page lists no truck plates

Without a login console (``login_console=False``) every failed login answers at once 401
``Manual login interrupted: EOF when reading a line`` with no ``details``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

WRONG_PASSWORD = "wrong-password"  # noqa: S105 - a documented test credential
BAD_CAPTCHA_KEY = "bad-captcha-key"
UNSOLVABLE_CAPTCHA_KEY = "unsolvable-captcha-key"
NO_BALANCE_CAPTCHA_KEY = "no-balance-key"
FLAKY_CAPTCHA_KEY = "flaky-captcha-key"
VPN_USERNAME_PREFIX = "vpn-"
UNKNOWN_ERROR_USERNAME_PREFIX = "unknown-"
DASHBOARD_USERNAME_PREFIX = "dashboard-"
NO_BUTTON_USERNAME_PREFIX = "nobutton-"
PAGE_LOAD_USERNAME_PREFIX = "pageload-"
VERIFY_USERNAME_PREFIX = "verify-"
NOT_FOUND_CONTAINER = "NOTF0000000"
INVALID_BOOKING_PREFIX = "INVALID"
NO_CONTAINERS_MARK = "+c0"
NO_PLATES_MARK = "+p0"

# Simulated seconds per step (and a few simulated durations the server waits for); the real
# sleep is ``latency * time_scale``. Mid-range values of the production timings in the contract.
DEFAULT_LATENCIES: dict[str, float] = {
    "captcha": 30.0,
    "login": 4.0,
    "login_reuse": 2.0,
    # A failed login waits this long for an operator to finish it by hand (console mode only).
    "manual_login_wait": 10.0,
    "get_containers_first_page": 45.0,
    "get_containers_full": 120.0,
    "timeline": 8.0,
    # A search for a container the page does not show (lower case, unknown): 2/3..4/3 of this.
    "timeline_not_found": 45.0,
    "booking_number": 8.0,
    "bulk_per_container": 7.0,
    # A whole appointment check, its fixed waits included (production: 114-117 s). Its steps
    # take their share of it (appointments.IMPORT_STEPS / EXPORT_STEPS): missing Phase-1 fields
    # are reported ~35 s in, a missing truck plate ~83 s in.
    "check_appointments_import": 116.0,
    "check_appointments_export": 121.5,
    "get_appointments": 20.0,
    # A whole booking (~2 min: the check's waits, a slot and Submit).
    "make_appointment": 120.0,
    # The refresh thread takes a browser not flagged in use, older than this, to its own
    # page: the next call first spends page_return getting back.
    "keep_alive_idle": 120.0,
    "page_return": 30.0,
    # Building the screenshots zip of a call with "debug": true (make_appointment: always).
    "debug_bundle": 5.0,
    # A held workflow closes its browser at the first sweep this long after its last use.
    "poison_delay": 600.0,
    # get_appointments hands back the newest spreadsheet downloaded within this window.
    "download_window": 30.0,
}

DEFAULT_TRUCKING_COMPANIES: list[str] = [
    "K & R TRANSPORTATION LLC",
    "PACIFIC DRAYAGE SERVICES INC",
    "HARBOR FREIGHT LINES LLC",
]

# Terminal code -> the visible name in the appointment page's dropdown (the contract's list).
TERMINAL_NAMES: dict[str, str] = {
    "ETSLAX": "Everport Terminal Services - Los Angeles",
    "ETSOAK": "Everport Terminal Services - Oakland",
    "ETSTAC": "Everport Terminal Services Inc. - Tacoma, WA",
    "FIT": "Florida International Terminal (FIT)",
    "HUSKY": "Husky Terminal and Stevedoring, Inc.",
    "ITS": "ITS Long Beach",
    "OICT": "OICT",
    "PCT": "Pacific Container Terminal",
    "PACKR": "Packer Avenue Marine Terminal",
    "PET": "Port Everglades Terminal",
    "SSA": "SSA Terminal - PierA / LB",
    "SSAT30": "SSAT - Terminal 30",
    "SSAT5": "SSAT - Terminal 5",
    "T18": "Terminal 18",
    "TTI": "Total Terminals Intl LLC",
    "TRPOAK": "TraPac - Oakland",
    "TRP1": "TraPac LLC - Los Angeles",
    "WUT": "Washington United Terminals",
}
DEFAULT_TERMINALS: list[str] = list(TERMINAL_NAMES.values())


def _names(value: Any, what: str) -> list[str]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{what} must be a non-empty list of names")
    if not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a non-empty list of names")
    return list(value)


@dataclass
class SimConfig:
    """Tunable behaviour of a simulator instance.

    ``latencies`` are simulated seconds; the real sleep is ``latency * time_scale``.
    ``idle_timeout`` (real seconds, not scaled) is off by default (None or 0): like the real
    server, sessions never expire by idle time. A positive value makes idle sessions expire.
    """

    time_scale: float = 1.0
    idle_timeout: float | None = None
    capacity: int = 10
    seed: int = 0
    containers: int = 40
    latencies: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LATENCIES))
    # Anchors the generated dates; None follows the wall clock (dates then drift daily).
    today: dt.date | None = None
    # Files served under /files/ are forgotten after this many real seconds.
    file_ttl: float = 24 * 3600.0
    max_files: int = 2000
    # A console where an operator may finish a failed login; without one a failed login
    # answers at once "Manual login interrupted: EOF when reading a line".
    login_console: bool = True
    # The appointment page's dropdowns (exact visible names).
    trucking_companies: list[str] = field(default_factory=lambda: list(DEFAULT_TRUCKING_COMPANIES))
    terminals: list[str] = field(default_factory=lambda: list(DEFAULT_TERMINALS))
    # Share of operation calls that meet one of their endpoint's real transient failures
    # (emodal_sim.glitches), seeded by ``seed``. Chaos (/_sim/chaos) overrides it.
    glitch_rate: float = 0.0

    def __post_init__(self) -> None:
        merged = dict(DEFAULT_LATENCIES)
        merged.update(self.latencies)
        self.latencies = merged
        if not self.idle_timeout:
            self.idle_timeout = None
        self.trucking_companies = _names(self.trucking_companies, "trucking_companies")
        self.terminals = _names(self.terminals, "terminals")
        validate_config(self)

    def latency(self, name: str) -> float:
        """Simulated seconds for one step."""
        return float(self.latencies.get(name, 0.0))

    def scaled(self, name: str) -> float:
        """Real seconds for one step."""
        return self.latency(name) * self.time_scale

    def current_date(self) -> dt.date:
        if self.today is not None:
            return self.today
        return dt.datetime.now().astimezone().date()

    def to_dict(self) -> dict[str, object]:
        return {
            "time_scale": self.time_scale,
            "idle_timeout": self.idle_timeout,
            "capacity": self.capacity,
            "seed": self.seed,
            "containers": self.containers,
            "latencies": dict(self.latencies),
            "today": self.today.isoformat() if self.today else None,
            "login_console": self.login_console,
            "trucking_companies": list(self.trucking_companies),
            "terminals": list(self.terminals),
            "glitch_rate": self.glitch_rate,
        }


def validate_config(config: SimConfig) -> None:
    if config.time_scale < 0:
        raise ValueError("time_scale must be >= 0")
    if config.idle_timeout is not None and config.idle_timeout < 0:
        raise ValueError("idle_timeout must be >= 0 (0 or null: never)")
    if config.capacity < 1:
        raise ValueError("capacity must be >= 1")
    if config.containers < 0:
        raise ValueError("containers must be >= 0")
    if not 0.0 <= config.glitch_rate <= 1.0:
        raise ValueError("glitch_rate must be between 0 and 1")
    if not isinstance(config.login_console, bool):
        raise ValueError("login_console must be a boolean")
    unknown = sorted(set(config.latencies) - set(DEFAULT_LATENCIES))
    if unknown:
        raise ValueError(f"unknown latency names: {', '.join(unknown)}")
    for name, value in config.latencies.items():
        if value < 0:
            raise ValueError(f"latency {name} must be >= 0")
