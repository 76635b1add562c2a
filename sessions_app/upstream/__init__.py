"""The one seam to the upstream automation API: the HTTP client (`client`), the typed errors
and their classification (`errors`), and the circuit breaker shared by all workers
(`breaker`). Nothing else in the portal speaks HTTP to the upstream."""

from .breaker import Breaker, breaker_states
from .client import EModalClient, SessionGrant, UpstreamSession
from .errors import (
    CLASSIFICATION,
    SESSION_GONE_MARKER,
    AnswerTooLarge,
    AnswerTooSlow,
    CaptchaFailed,
    CircuitOpen,
    CredentialsRejected,
    Disposition,
    FileTooLarge,
    LoginFailed,
    LoginRejected,
    SessionGone,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    backoff_seconds,
    call_with_retries,
    classify_error,
    classify_fault,
    find_rule,
    login_cause,
)
from .transport import DEFAULT_TIMEOUTS, FILE_LABEL

__all__ = [
    "CLASSIFICATION",
    "DEFAULT_TIMEOUTS",
    "FILE_LABEL",
    "AnswerTooLarge",
    "AnswerTooSlow",
    "SESSION_GONE_MARKER",
    "Breaker",
    "CaptchaFailed",
    "CircuitOpen",
    "CredentialsRejected",
    "Disposition",
    "EModalClient",
    "FileTooLarge",
    "LoginFailed",
    "LoginRejected",
    "SessionGone",
    "SessionGrant",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamSession",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "backoff_seconds",
    "breaker_states",
    "call_with_retries",
    "classify_error",
    "classify_fault",
    "find_rule",
    "login_cause",
]
