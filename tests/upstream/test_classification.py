"""The one classification of upstream outcomes (`client.CLASSIFICATION`) and the one place
transient failures are retried (`client.call_with_retries`)."""

from __future__ import annotations

from typing import Any

import pytest

from emodal_sim.data import containers_for
from sessions_app.upstream import (
    CLASSIFICATION,
    SESSION_GONE_MARKER,
    AnswerTooLarge,
    AnswerTooSlow,
    CaptchaFailed,
    CircuitOpen,
    CredentialsRejected,
    Disposition,
    EModalClient,
    LoginFailed,
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
)
from sessions_app.upstream.errors import WrongValue

from ..sim import SimControl

T = Disposition.TRANSIENT
G = Disposition.SESSION_GONE
P = Disposition.PERMANENT
I = Disposition.INDETERMINATE  # noqa: E741

CREDS = {"username": "dora-emodal", "password": "dora-pw", "captcha_api_key": "dora-key"}


def login_failure(details: str) -> dict[str, Any]:
    return {"success": False, "error": "Authentication failed", "details": details}


# A server without a console answers a failed login at once, naming no cause.
NO_CONSOLE = {"success": False, "error": "Manual login interrupted: EOF when reading a line"}


ANSWERS = [
    # (status, body, error class, disposition, retryable later)
    (400, {"error": SESSION_GONE_MARKER}, SessionGone, G, False),
    (400, {"error": f"  {SESSION_GONE_MARKER} "}, SessionGone, G, False),
    (400, {"error": "Missing required field: container_id"}, UpstreamRejected, P, False),
    (400, {"error": "Booking number validation failed"}, UpstreamRejected, P, False),
    (400, {"error": "Missing required fields: username"}, UpstreamRejected, P, False),
    # The real 401s: the failure type named exactly like the upstream's enum.
    (401, login_failure("LoginErrorType.INVALID_CREDENTIALS"), CredentialsRejected, P, False),
    (401, login_failure("LoginErrorType.VPN_REQUIRED"), CredentialsRejected, P, False),
    (401, login_failure("LoginErrorType.RECAPTCHA_FAILED"), CaptchaFailed, T, True),
    (401, login_failure("LoginErrorType.NETWORK_ERROR"), LoginFailed, T, True),
    (401, login_failure("LoginErrorType.UNKNOWN_ERROR"), LoginFailed, T, True),
    (401, login_failure("LoginErrorType.PAGE_LOAD_ERROR"), LoginFailed, T, True),
    (401, login_failure("LoginErrorType.LOGIN_BUTTON_NOT_FOUND"), LoginFailed, T, True),
    (401, NO_CONSOLE, LoginFailed, T, True),
    (401, {"error": "Manual login failed - not on eModal dashboard"}, LoginFailed, T, True),
    (401, {"error": "Verification failed: code expired"}, LoginFailed, T, True),
    # Text of another form names no cause: not a verdict on the credentials.
    (401, login_failure("invalid_credentials: bad password"), LoginFailed, T, True),
    (401, login_failure(""), LoginFailed, T, True),
    (404, {"error": "File not found"}, UpstreamRejected, P, False),
    (404, {"error": "Session not found"}, UpstreamRejected, P, False),
    # The contract's "Error texts: final or transient": never "not found" alone.
    (
        500,
        {"error": "Search failed: Container 'MSCU1234567' not found after scrolling"},
        UpstreamRejected,
        P,
        False,
    ),
    (
        500,
        {"error": "Download failed: No container data extracted"},
        UpstreamRejected,
        P,
        False,
    ),
    (
        500,
        {"error": "Pregate status check failed: Pregate milestone not found"},
        UpstreamUnavailable,
        T,
        True,
    ),
    (
        500,
        {"error": "Expand failed: Container row not found for 'X'"},
        UpstreamUnavailable,
        T,
        True,
    ),
    (
        500,
        {"error": "Timeline extraction failed: Timeline container not found"},
        UpstreamUnavailable,
        T,
        True,
    ),
    (500, {"error": "Excel file not found after download"}, UpstreamUnavailable, T, True),
    (
        500,
        {"error": "Excel download failed: Excel download button not found after trying all"},
        UpstreamUnavailable,
        T,
        True,
    ),
    (
        500,
        {"error": "Search failed: Progressive search failed: Message: stale element reference"},
        UpstreamUnavailable,
        T,
        True,
    ),
    (500, {"error": "Phase 3 failed - page timeout"}, UpstreamUnavailable, T, True),
    (500, {"error": "Navigation failed: timeout"}, UpstreamUnavailable, T, True),
    (500, {"error": "Failed to allocate session capacity"}, UpstreamUnavailable, T, True),
    (502, {"error": "Bad gateway"}, UpstreamUnavailable, T, True),
    (503, {}, UpstreamUnavailable, T, True),
    (200, {"success": False, "error": "odd"}, UpstreamUnavailable, T, True),
]


@pytest.mark.parametrize(("status", "body", "error", "disposition", "retryable"), ANSWERS)
def test_answers_are_classified_by_the_table(
    status: int,
    body: dict[str, Any],
    error: type[UpstreamError],
    disposition: Disposition,
    retryable: bool,
) -> None:
    classified = classify_error("/get_session", status, {"success": False, **body})
    assert type(classified) is error
    assert classified.disposition is disposition
    assert classified.retryable is retryable
    assert classified.status == status


CHECK_ANSWERS = [
    # (error text of a check's 500, error class): a wrong value is final, a glitch is not.
    (
        "Phase 1 failed - Trucking company: Option 'K & R' not found in Trucking. Available "
        "options: K & R TRANSPORTATION LLC, California Cartage Express",
        WrongValue,
    ),
    (
        "Phase 1 failed - Terminal: Option 'ITS' not found in Terminal. Available options: ",
        UpstreamUnavailable,
    ),
    ("Phase 1 failed - Trucking company: Dropdown 'Trucking' not found", UpstreamUnavailable),
    ("Phase 2 failed - Truck plate: Truck plate field not found", UpstreamUnavailable),
    (
        "Phase 1 failed - Next button (after retry): Phase did not advance from 1",
        UpstreamUnavailable,
    ),
    (
        "Phase 3 failed: Appointment time dropdown not found after trying all strategies",
        UpstreamUnavailable,
    ),
    ("Phase 1 failed - Terminal: Message: invalid selector: Unable to locate", UpstreamRejected),
]


@pytest.mark.parametrize(("text", "error"), CHECK_ANSWERS)
def test_a_check_failure_is_final_only_for_a_wrong_value(
    text: str, error: type[UpstreamError]
) -> None:
    body = {"success": False, "error": text, "current_phase": 1, "appointment_session_id": "appt_1"}
    classified = classify_error("/check_appointments", 500, body)
    assert type(classified) is error
    assert classified.resume_id == "appt_1"
    assert "appointment_session_id" not in classified.payload
    assert "appt_1" not in str(classified)
    if error is WrongValue:
        assert (classified.label, classified.value) == ("Trucking", "K & R")
        assert classified.options == "K & R TRANSPORTATION LLC, California Cartage Express"
    # Elsewhere the same words are no verdict on a value.
    assert type(classify_error("/get_containers", 500, body)) is UpstreamUnavailable or (
        error is not WrongValue
    )


@pytest.mark.parametrize(
    ("fault", "error", "disposition", "retryable"),
    [
        ("timeout", UpstreamTimeout, I, False),
        ("connection", UpstreamUnavailable, T, True),
        ("not_json", UpstreamUnavailable, T, True),
        ("redirect", UpstreamError, P, False),
        # An answer over the size limit, or not in full by the deadline: the step fails for
        # now (a slow answer was the call's, so it is not replayed at once).
        ("too_large", AnswerTooLarge, T, True),
        ("too_slow", AnswerTooSlow, I, True),
        ("encoding", UpstreamUnavailable, T, True),
    ],
)
def test_failures_without_an_answer_are_classified_by_the_table(
    fault: str, error: type[UpstreamError], disposition: Disposition, retryable: bool
) -> None:
    classified = classify_fault("/get_booking_number", fault, exc=ConnectionResetError())
    assert type(classified) is error
    assert classified.disposition is disposition
    assert classified.retryable is retryable


def test_every_row_of_the_table_is_documented_and_exercised_above() -> None:
    hit = {find_rule(status=status, body=body) for status, body, *_ in ANSWERS}
    hit |= {
        find_rule(status=500, body={"error": text}, endpoint="/check_appointments")
        for text, _ in CHECK_ANSWERS
    }
    faults = ("timeout", "connection", "not_json", "redirect", "too_large", "too_slow", "encoding")
    hit |= {find_rule(fault=fault) for fault in faults}
    assert hit == set(CLASSIFICATION)
    assert all(rule.note for rule in CLASSIFICATION)


def test_an_open_circuit_is_retryable_later_but_not_retried_now() -> None:
    calls = []

    def refused() -> None:
        calls.append(1)
        raise CircuitOpen("upstream circuit open")

    with pytest.raises(CircuitOpen) as caught:
        call_with_retries(refused, attempts=3)
    assert caught.value.retryable
    assert len(calls) == 1


def test_back_off_grows_exponentially_up_to_the_cap_with_jitter() -> None:
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)]:
        delay = backoff_seconds(attempt, base=1.0, cap=5.0)
        assert ceiling / 2 <= delay <= ceiling


def test_transient_5xx_is_retried_until_it_succeeds(
    client_api: EModalClient, sim: SimControl
) -> None:
    sim.fault("/get_session", count=2, status=500, error="Failed to allocate session capacity")
    failures: list[tuple[str, int]] = []
    grant = call_with_retries(
        lambda: client_api.get_session(**CREDS),
        attempts=3,
        on_failure=lambda exc, n: failures.append((type(exc).__name__, n)),
    )
    assert grant.session_id
    assert failures == [("UpstreamUnavailable", 1), ("UpstreamUnavailable", 2)]
    assert len(sim.calls("/get_session")) == 3


def test_retries_are_bounded(client_api: EModalClient, sim: SimControl) -> None:
    sim.fault("/get_session", count=5, mode="close")
    with pytest.raises(UpstreamUnavailable, match="Could not reach"):
        call_with_retries(lambda: client_api.get_session(**CREDS), attempts=3)
    assert len(sim.calls("/get_session")) == 3


def test_transient_login_failure_is_retried(client_api: EModalClient, sim: SimControl) -> None:
    flaky = {**CREDS, "captcha_api_key": "flaky-captcha-key"}
    assert call_with_retries(lambda: client_api.get_session(**flaky), attempts=2).session_id
    assert len(sim.calls("/get_session")) == 2


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"password": "wrong-password"}, CredentialsRejected),
        ({"username": "vpn-dora"}, CredentialsRejected),
        ({"password": ""}, UpstreamRejected),
    ],
)
def test_permanent_failures_are_not_retried(
    client_api: EModalClient, sim: SimControl, overrides: dict[str, str], error: type
) -> None:
    with pytest.raises(error):
        call_with_retries(lambda: client_api.get_session(**{**CREDS, **overrides}), attempts=3)
    assert len(sim.calls("/get_session")) == 1


def test_session_gone_is_not_retried_here(client_api: EModalClient, sim: SimControl) -> None:
    with pytest.raises(SessionGone):
        call_with_retries(lambda: client_api.get_appointments("session_1_1"), attempts=3)
    assert len(sim.calls("/get_appointments")) == 1


def test_a_read_timeout_is_never_replayed(
    sim: SimControl, client_api: EModalClient, sim_server: Any
) -> None:
    number = containers_for(CREDS["username"], sim_server.config)[0]["Container #"]
    session_id = client_api.get_session(**CREDS).session_id
    impatient = EModalClient(sim.url, timeouts={"get_booking_number": 0.2})
    sim.fault("/get_booking_number", mode="delay", delay=2_000)  # 2 s at the test scale
    with pytest.raises(UpstreamTimeout):
        call_with_retries(
            lambda: impatient.get_booking_number(session_id, container_id=number),
            attempts=3,
        )
    assert len(sim.calls("/get_booking_number")) == 1
