"""Simulator configuration, default step latencies and the test credentials.

Test credentials (anything else logs in fine):

- password ``wrong-password``         -> 401 ``invalid_credentials`` (a captcha IS solved first)
- captcha key ``bad-captcha-key``     -> 401 ``recaptcha_failed`` (no solve; a captcha failure)
- captcha key ``no-balance-key``      -> 401 ``recaptcha_failed: ERROR_ZERO_BALANCE ...``
- captcha key ``flaky-captcha-key``   -> 401 ``network_error`` on odd attempts per username,
  success on even ones (to exercise transient retries)
- username starting with ``vpn-``     -> 401 ``vpn_required``
- container ``NOTF0000000``            -> never found (timeline, booking number, bulk, appointments)
- booking number starting ``INVALID``  -> 400 ``Booking number validation failed``
- a username containing ``+c<N>``      -> that user has N containers (e.g. ``bench+c10000``)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

WRONG_PASSWORD = "wrong-password"  # noqa: S105 - a documented test credential
BAD_CAPTCHA_KEY = "bad-captcha-key"
UNSOLVABLE_CAPTCHA_KEY = "unsolvable-captcha-key"
NO_BALANCE_CAPTCHA_KEY = "no-balance-key"
FLAKY_CAPTCHA_KEY = "flaky-captcha-key"
VPN_USERNAME_PREFIX = "vpn-"
NOT_FOUND_CONTAINER = "NOTF0000000"
INVALID_BOOKING_PREFIX = "INVALID"

# Simulated seconds per step: mid-range values of the production timings in the contract.
DEFAULT_LATENCIES: dict[str, float] = {
    "captcha": 30.0,
    "login": 4.0,
    "login_reuse": 2.0,
    "get_containers_first_page": 45.0,
    "get_containers_full": 120.0,
    "timeline": 8.0,
    "timeline_not_found": 45.0,
    "booking_number": 8.0,
    "bulk_per_container": 7.0,
    "check_appointments": 35.0,
    "get_appointments": 20.0,
    "make_appointment": 30.0,
}


@dataclass
class SimConfig:
    """Tunable behaviour of a simulator instance.

    ``latencies`` are simulated seconds; the real sleep is ``latency * time_scale``.
    ``idle_timeout`` is in real seconds and deliberately not scaled, so tests can make
    sessions expire quickly without making every step instantaneous.
    """

    time_scale: float = 1.0
    idle_timeout: float = 600.0
    capacity: int = 10
    seed: int = 0
    containers: int = 40
    latencies: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LATENCIES))
    # Anchors the generated dates; None follows the wall clock (dates then drift daily).
    today: dt.date | None = None
    # Files served under /files/ are forgotten after this many real seconds.
    file_ttl: float = 24 * 3600.0
    max_files: int = 2000

    def __post_init__(self) -> None:
        merged = dict(DEFAULT_LATENCIES)
        merged.update(self.latencies)
        self.latencies = merged
        validate_config(self)

    def latency(self, name: str) -> float:
        """Simulated seconds for one step."""
        return float(self.latencies.get(name, 0.0))

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
        }


def validate_config(config: SimConfig) -> None:
    if config.time_scale < 0:
        raise ValueError("time_scale must be >= 0")
    if config.idle_timeout <= 0:
        raise ValueError("idle_timeout must be > 0")
    if config.capacity < 1:
        raise ValueError("capacity must be >= 1")
    if config.containers < 0:
        raise ValueError("containers must be >= 0")
    unknown = sorted(set(config.latencies) - set(DEFAULT_LATENCIES))
    if unknown:
        raise ValueError(f"unknown latency names: {', '.join(unknown)}")
    for name, value in config.latencies.items():
        if value < 0:
            raise ValueError(f"latency {name} must be >= 0")
