"""Stand-alone simulator of the E-Modal automation API (see README.md in this package)."""

from .config import (
    BAD_CAPTCHA_KEY,
    DEFAULT_LATENCIES,
    FLAKY_CAPTCHA_KEY,
    INVALID_BOOKING_PREFIX,
    NO_BALANCE_CAPTCHA_KEY,
    NOT_FOUND_CONTAINER,
    UNSOLVABLE_CAPTCHA_KEY,
    VPN_USERNAME_PREFIX,
    WRONG_PASSWORD,
    SimConfig,
)
from .server import SimServer
from .state import BUSY_ERROR, CHAOS_ERROR, SESSION_GONE_ERROR, SimState

__all__ = [
    "BAD_CAPTCHA_KEY",
    "BUSY_ERROR",
    "CHAOS_ERROR",
    "DEFAULT_LATENCIES",
    "FLAKY_CAPTCHA_KEY",
    "INVALID_BOOKING_PREFIX",
    "NOT_FOUND_CONTAINER",
    "NO_BALANCE_CAPTCHA_KEY",
    "SESSION_GONE_ERROR",
    "VPN_USERNAME_PREFIX",
    "WRONG_PASSWORD",
    "SimConfig",
    "SimServer",
    "SimState",
    "UNSOLVABLE_CAPTCHA_KEY",
]
