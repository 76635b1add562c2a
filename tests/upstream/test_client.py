"""EModalClient against the simulator over real HTTP: every endpoint, success and error."""

from __future__ import annotations

import io
import threading

import openpyxl
import pytest

from emodal_sim.data import containers_for
from sessions_app.upstream import (
    CaptchaFailed,
    CredentialsRejected,
    EModalClient,
    FileTooLarge,
    LoginFailed,
    SessionGone,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

from ..sim import SimControl

CREDS = {"username": "carrier-one", "password": "pw-1", "captcha_api_key": "key-1"}


@pytest.fixture
def session_id(client_api: EModalClient) -> str:
    return client_api.get_session(**CREDS).session_id


def test_health_reports_capacity(client_api: EModalClient) -> None:
    health = client_api.health()
    assert health["max_sessions"] == 10
    assert health["session_capacity"] == "0/10"


def test_get_session_creates_then_reuses(client_api: EModalClient, sim: SimControl) -> None:
    first = client_api.get_session(**CREDS)
    second = client_api.get_session(**CREDS)
    assert first.is_new and not second.is_new
    assert first.session_id == second.session_id
    assert sim.stats()["captcha_solves"] == 1


def test_session_ids_stay_out_of_reprs(client_api: EModalClient) -> None:
    grant = client_api.get_session(**CREDS)
    assert grant.session_id not in repr(grant)
    listed = client_api.list_sessions()
    assert grant.session_id not in repr(listed)


def test_list_and_delete_sessions(client_api: EModalClient, session_id: str) -> None:
    listed = client_api.list_sessions()
    assert [(s.session_id, s.username) for s in listed] == [(session_id, "carrier-one")]
    assert client_api.delete_session(session_id) is True
    assert client_api.delete_session(session_id) is False
    assert client_api.list_sessions() == []


def test_list_sessions_failure_is_unavailable(client_api: EModalClient, sim: SimControl) -> None:
    sim.fault("/sessions", status=500, error="Browser health check failed")
    with pytest.raises(UpstreamUnavailable, match="Browser health check failed"):
        client_api.list_sessions()


@pytest.mark.parametrize(
    ("overrides", "error", "cause"),
    [
        ({"password": "wrong-password"}, CredentialsRejected, "INVALID_CREDENTIALS"),
        ({"username": "vpn-carrier"}, CredentialsRejected, "VPN_REQUIRED"),
        ({"captcha_api_key": "bad-captcha-key"}, CaptchaFailed, "RECAPTCHA_FAILED"),
        ({"captcha_api_key": "no-balance-key"}, CaptchaFailed, "RECAPTCHA_FAILED"),
        ({"captcha_api_key": "unsolvable-captcha-key"}, CaptchaFailed, "RECAPTCHA_FAILED"),
        ({"captcha_api_key": "flaky-captcha-key"}, LoginFailed, "NETWORK_ERROR"),
        ({"username": "unknown-carrier"}, LoginFailed, "UNKNOWN_ERROR"),
        ({"username": "dashboard-carrier"}, LoginFailed, "UNKNOWN"),
    ],
)
def test_login_failures_are_classified(
    client_api: EModalClient, overrides: dict[str, str], error: type, cause: str
) -> None:
    with pytest.raises(error) as caught:
        client_api.get_session(**{**CREDS, **overrides})
    assert caught.value.cause == cause
    assert caught.value.status == 401
    assert caught.value.retryable is (error is not CredentialsRejected)


def test_login_failure_never_echoes_credentials(client_api: EModalClient) -> None:
    with pytest.raises(CredentialsRejected) as caught:
        client_api.get_session(**{**CREDS, "password": "wrong-password"})
    assert "wrong-password" not in str(caught.value)
    assert "key-1" not in str(caught.value)


def test_get_session_missing_fields_is_a_validation_error(client_api: EModalClient) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        client_api.get_session(username="x", password="", captcha_api_key="")
    assert caught.value.status == 400
    assert not isinstance(caught.value, SessionGone)


def test_unknown_session_is_session_gone_and_spends_no_captcha(
    client_api: EModalClient, sim: SimControl
) -> None:
    with pytest.raises(SessionGone):
        client_api.get_container_timeline("session_1700000000_42", container_id="MSCU1234567")
    stats = sim.stats()
    assert stats["captcha_solves"] == 0
    assert stats["silent_relogins"] == 0


def test_operations_never_send_credentials(client_api: EModalClient, sim: SimControl) -> None:
    sid = client_api.get_session(**CREDS).session_id
    sim.delete(sid)
    with pytest.raises(SessionGone):
        client_api.get_containers(sid)
    # With credentials in the request the upstream would have logged in silently.
    assert sim.stats()["logins"] == 1


def test_other_400_is_not_session_gone(client_api: EModalClient, session_id: str) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        client_api.get_container_timeline(session_id, container_id="")
    assert caught.value.status == 400
    assert "container_id" in caught.value.message


def test_get_containers_and_download_sheet(
    client_api: EModalClient, session_id: str, sim_server: object
) -> None:
    meta = client_api.get_containers(session_id)
    assert meta["total_containers"] == len(containers_for("carrier-one", sim_server.config))
    buffer = io.BytesIO()
    size = client_api.download_file(meta["file_url"], buffer)
    assert size == meta["file_size"] == len(buffer.getvalue())
    sheet = openpyxl.load_workbook(buffer, read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows[0]) == 18 and rows[0][0] == "Container #"
    served = containers_for("carrier-one", sim_server.config)
    assert [r[0] for r in rows[1:]] == [c["Container #"] for c in served]


def test_get_containers_first_page_only(client_api: EModalClient, session_id: str) -> None:
    meta = client_api.get_containers(session_id, infinite_scrolling=False)
    assert meta["total_containers"] == "first_page_only"


def test_download_is_size_limited(sim: SimControl, session_id: str) -> None:
    small = EModalClient(sim.url, max_download_bytes=1000)
    meta = small.get_containers(session_id)
    with pytest.raises(FileTooLarge):
        small.download_file(meta["file_url"], io.BytesIO())


def test_download_of_missing_file_is_rejected(client_api: EModalClient) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        client_api.download_file("/files/nope.xlsx", io.BytesIO())
    assert caught.value.status == 404


def test_download_refuses_paths_outside_files(client_api: EModalClient) -> None:
    with pytest.raises(UpstreamRejected):
        client_api.download_file("http://elsewhere.example/etc/passwd", io.BytesIO())


def test_timeline_and_booking_number(
    client_api: EModalClient, session_id: str, sim_server: object
) -> None:
    served = containers_for("carrier-one", sim_server.config)
    container = served[0]["Container #"]
    timeline = client_api.get_container_timeline(session_id, container_id=container)
    assert timeline["container_id"] == container
    assert timeline["milestone_count"] == len(timeline["timeline"]) > 0
    export = next(c for c in served if c["Trade Type"] == "EXPORT")["Container #"]
    booking = client_api.get_booking_number(session_id, container_id=export)
    assert booking["booking_number"]
    imported = next(c for c in served if c["Trade Type"] == "IMPORT")["Container #"]
    assert (
        client_api.get_booking_number(session_id, container_id=imported)["booking_number"] is None
    )


def test_container_not_found_is_permanent(client_api: EModalClient, session_id: str) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        client_api.get_container_timeline(session_id, container_id="NOTF0000000")
    assert caught.value.status == 500
    assert not caught.value.retryable


def test_bulk_info_keeps_per_container_failures(
    client_api: EModalClient, session_id: str, sim_server: object
) -> None:
    served = containers_for("carrier-one", sim_server.config)
    imported = next(c for c in served if c["Trade Type"] == "IMPORT")["Container #"]
    body = client_api.get_info_bulk(
        session_id, import_containers=[imported, "NOTF0000000"], export_containers=[]
    )
    results = {r["container_id"]: r for r in body["results"]["import_results"]}
    assert results[imported]["success"] is True
    assert results["NOTF0000000"]["success"] is False
    assert body["results"]["summary"]["import_failed"] == 1


def test_bulk_info_needs_a_list(client_api: EModalClient, session_id: str) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        client_api.get_info_bulk(session_id)
    assert caught.value.status == 400


def test_check_appointments_import_and_export(
    client_api: EModalClient, session_id: str, sim: SimControl, sim_server: object
) -> None:
    served = containers_for("carrier-one", sim_server.config)
    imported = next(c for c in served if c["Trade Type"] == "IMPORT")
    common = {
        "trucking_company": "K & R TRANSPORTATION LLC",
        "terminal": "Total Terminals Intl LLC",
        "move_type": "PICK FULL",
        "truck_plate": "7ABC123",
    }
    body = client_api.check_appointments(
        session_id, container_type="import", container_id=imported["Container #"], **common
    )
    assert body["count"] == len(body["available_times"])
    body = client_api.check_appointments(
        session_id, container_type="export", booking_number="BKG123", **common
    )
    assert isinstance(body["calendar_found"], bool)
    assert sim.stats()["appointments_booked"] == 0


def test_check_appointments_errors_carry_phase(
    client_api: EModalClient, session_id: str, sim_server: object
) -> None:
    served = containers_for("carrier-one", sim_server.config)
    imported = next(c for c in served if c["Trade Type"] == "IMPORT")
    with pytest.raises(UpstreamRejected) as caught:
        client_api.check_appointments(
            session_id,
            container_type="import",
            container_id=imported["Container #"],
            trucking_company="K & R TRANSPORTATION LLC",
            terminal="Total Terminals Intl LLC",
            move_type="PICK FULL",
        )
    assert "truck_plate" in caught.value.message
    assert caught.value.payload["current_phase"] == 2
    with pytest.raises(UpstreamRejected) as caught:
        client_api.check_appointments(
            session_id,
            container_type="export",
            booking_number="INVALID42",
            trucking_company="K & R TRANSPORTATION LLC",
            terminal="Total Terminals Intl LLC",
            move_type="DROP FULL",
            truck_plate="7ABC123",
        )
    assert caught.value.message == "Booking number validation failed"
    assert caught.value.details == "No open transactions for this booking number"


def test_get_appointments_file(client_api: EModalClient, session_id: str) -> None:
    body = client_api.get_appointments(session_id)
    buffer = io.BytesIO()
    client_api.download_file(body["file_url"], buffer)
    rows = list(openpyxl.load_workbook(buffer, read_only=True).active.iter_rows(values_only=True))
    assert body["selected_count"] == len(rows) - 1


def test_idle_session_expires(client_api: EModalClient, sim: SimControl) -> None:
    sim.configure(idle_timeout=0.2)
    sid = client_api.get_session(**CREDS).session_id
    sim.wait_for(lambda: client_api.list_sessions() == [], timeout=5)
    with pytest.raises(SessionGone):
        client_api.get_booking_number(sid, container_id="MSCU1234567")
    assert sim.stats()["expired"] == 1


def test_busy_session_is_evicted_by_the_eleventh_login(sim: SimControl) -> None:
    sim.configure(latencies={"get_containers_full": 10_000})  # 10 s at the test scale
    api = EModalClient(sim.url)
    busy = api.get_session(username="user-0", password="p", captcha_api_key="k").session_id
    outcome: list[BaseException] = []

    def long_call() -> None:
        try:
            EModalClient(sim.url).get_containers(busy)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    caller = threading.Thread(target=long_call)
    caller.start()
    sim.wait_for(lambda: any(c["end"] is None for c in sim.calls("/get_containers")))
    # Nine more logins fill the browsers; the busy one is now the least recently used.
    for n in range(1, 11):
        api.get_session(username=f"user-{n}", password="p", captcha_api_key="k")
    caller.join(timeout=10)
    assert isinstance(outcome[0], UpstreamUnavailable)
    assert outcome[0].status == 500
    stats = sim.stats()
    assert (stats["evictions"], stats["evictions_busy"]) == (1, 1)
    with pytest.raises(SessionGone):
        api.get_booking_number(busy, container_id="MSCU1234567")


def test_concurrent_calls_on_one_session_are_collisions(sim: SimControl) -> None:
    sim.configure(latencies={"get_appointments": 2_000})
    api = EModalClient(sim.url)
    sid = api.get_session(**CREDS).session_id
    first = threading.Thread(target=lambda: EModalClient(sim.url).get_appointments(sid))
    first.start()
    sim.wait_for(lambda: any(c["end"] is None for c in sim.calls("/get_appointments")))
    with pytest.raises(UpstreamUnavailable) as caught:
        api.get_booking_number(sid, container_id="MSCU1234567")
    first.join(timeout=10)
    assert caught.value.status == 500
    assert sim.stats()["collisions"] == 1


def test_non_json_body_is_unavailable(client_api: EModalClient, sim: SimControl) -> None:
    sim.fault("/health", mode="non_json", status=502)
    with pytest.raises(UpstreamUnavailable, match="not JSON"):
        client_api.health()


def test_connection_closed_without_answer(client_api: EModalClient, sim: SimControl) -> None:
    sim.fault("/get_session", mode="close")
    with pytest.raises(UpstreamUnavailable) as caught:
        client_api.get_session(**CREDS)
    assert caught.value.retryable
    # A POST that may have reached the upstream is not repeated by the client.
    assert len(sim.calls("/get_session")) == 1


def test_get_requests_are_retried_after_a_dropped_connection(
    client_api: EModalClient, sim: SimControl
) -> None:
    sim.fault("/health", mode="close")
    assert client_api.health()["status"] == "healthy"


def test_read_timeout_is_indeterminate(
    sim: SimControl, session_id: str, sim_server: object
) -> None:
    number = containers_for("carrier-one", sim_server.config)[0]["Container #"]
    impatient = EModalClient(sim.url, timeouts={"get_booking_number": 0.2})
    sim.fault("/get_booking_number", mode="delay", delay=2_000)  # 2 s at the test scale
    with pytest.raises(UpstreamTimeout) as caught:
        impatient.get_booking_number(session_id, container_id=number)
    assert not caught.value.retryable


def test_unreachable_upstream_is_unavailable() -> None:
    api = EModalClient("http://127.0.0.1:9", connect_timeout=0.5)
    with pytest.raises(UpstreamUnavailable, match="Could not reach"):
        api.get_session(**CREDS)


def test_errors_never_quote_a_session_id(client_api: EModalClient, sim: SimControl) -> None:
    sid = client_api.get_session(**CREDS).session_id
    sim.fault("*", status=500, error=f"Automation failed for {sid}")
    with pytest.raises(UpstreamUnavailable) as caught:
        client_api.get_appointments(sid)
    assert sid not in str(caught.value)
