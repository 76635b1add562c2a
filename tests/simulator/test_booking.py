"""make_appointment (it books) and get_appointments (the sheet that shows bookings), as the
real server behaves."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from emodal_sim import SESSION_GONE_ERROR, SimServer, texts
from emodal_sim import data as simdata

from ..sim import SimControl
from .support import (
    COMPANY,
    SCALE,
    STAMP,
    TERMINAL_24H,
    Api,
    creds,
    duration,
    pick,
    slots,
    wait_for,
)

MAKE_FIELDS = (
    "trucking_company",
    "terminal",
    "move_type",
    "container_id",
    "truck_plate",
    "appointment_time",
)


def control(api: Api) -> SimControl:
    return SimControl(api.server.url)


def booking(server: SimServer, **overrides: Any) -> dict[str, Any]:
    """A booking the page can make: a container with slots, one of its slots verbatim."""
    container = pick(server, "IMPORT", candidate=True, has_slots=True)
    return {
        "trucking_company": COMPANY,
        "terminal": TERMINAL_24H,
        "move_type": "PICK FULL",
        "container_id": container,
        "truck_plate": "ABC123",
        "appointment_time": slots(server, container, TERMINAL_24H)[0],
        **overrides,
    }


def sheet_rows(api: Api, sid: str) -> list[dict[str, Any]]:
    listed = api.post("/get_appointments", session_id=sid).json()
    return simdata.read_xlsx(api.http.get(listed["file_url"]).content)


# ------------------------------------------------------------------ make_appointment


def test_the_six_fields_are_checked_before_any_login(api: Api) -> None:
    everything = api.post("/make_appointment", session_id="stale", **creds())
    assert everything.status_code == 400
    assert everything.json() == {
        "success": False,
        "error": "Missing required fields: trucking_company, terminal, move_type, container_id, "
        "truck_plate, appointment_time",
    }
    some = api.post("/make_appointment", terminal="T", appointment_time="", container_id="X")
    assert some.json()["error"] == (
        "Missing required fields: trucking_company, move_type, truck_plate, appointment_time"
    )
    assert api.stats()["login_attempts"] == 0
    assert api.stats()["make_appointment_calls"] == 2


def test_a_booking_answers_an_echo_and_shows_in_the_sheet_as_the_page_made_it(
    api: Api, server: SimServer
) -> None:
    sid = api.login()
    plates = control(api).plates("alice")
    fields = booking(server, truck_plate="7NOT000", terminal="Terminal 18 ", own_chassis=None)
    before = len(sheet_rows(api, sid))
    made = api.post("/make_appointment", session_id=sid, **fields)
    assert made.status_code == 200, made.text
    body = made.json()
    assert set(body) == {
        "success",
        "session_id",
        "is_new_session",
        "appointment_confirmed",
        "debug_bundle_url",
        "appointment_details",
    }  # no confirmation number, no current_phase
    assert (body["session_id"], body["is_new_session"]) == (sid, False)
    assert body["appointment_confirmed"] is True
    assert body["appointment_details"] == {
        name: fields.get(name) for name in (*MAKE_FIELDS[:5], "own_chassis", "appointment_time")
    }
    # A bundle is built on every call, debug or not, and linked absolutely.
    pattern = (
        re.escape(api.server.url) + rf"/files/appt_{sid}_\d+_{STAMP}_appointment_submitted\.zip"
    )
    assert re.fullmatch(pattern, body["debug_bundle_url"])
    assert api.http.get(body["debug_bundle_url"]).status_code == 200
    # The sheet has the visit as the page selected it: the listed plate, the trimmed name.
    rows = sheet_rows(api, sid)
    assert len(rows) == before + 1
    row = rows[-1]
    assert (row["Container #"], row["Time Slot"], row["Truck Plate"], row["Terminal"]) == (
        fields["container_id"],
        fields["appointment_time"],
        plates[0],
        TERMINAL_24H,
    )
    [made_booking] = control(api).bookings()
    assert made_booking["selected"]["truck_plate_choice"] == "substituted"
    stats = api.stats()
    assert (stats["appointments_booked"], stats["make_appointment_calls"]) == (1, 1)
    # The call history keeps the body, without the secrets.
    call = api.calls("/make_appointment")[-1]
    assert call["params"] == fields and call["selected"]["booked"] is True


def test_a_partial_slot_books_the_first_slot_containing_it(api: Api, server: SimServer) -> None:
    sid = api.login()
    fields = booking(server, terminal="ITS")
    day = re.search(r"\d\d/\d\d/\d{4}", fields["appointment_time"]).group(0)
    offered = slots(server, fields["container_id"], "ITS Long Beach")
    first_that_day = next(s for s in offered if day in s)
    made = api.post("/make_appointment", session_id=sid, **{**fields, "appointment_time": day})
    assert made.status_code == 200 and made.json()["appointment_details"]["appointment_time"] == day
    row = sheet_rows(api, sid)[-1]
    assert (row["Time Slot"], row["Terminal"]) == (first_that_day, "ITS Long Beach")


def test_a_slot_no_longer_offered_fails_in_phase_3_and_books_nothing(
    api: Api, server: SimServer
) -> None:
    sid = api.login()
    fields = booking(server)
    offered = slots(server, fields["container_id"], TERMINAL_24H)
    gone = api.post(
        "/make_appointment",
        session_id=sid,
        **{**fields, "appointment_time": "Monday 01/01/2024 09:00 - 10:00"},
    )
    assert gone.status_code == 500
    assert gone.json() == {
        "success": False,
        "error": "Phase 3 - Appointment time: Option 'Monday 01/01/2024 09:00 - 10:00' not found "
        f"in Appointment. Available options: {', '.join(offered[:10])}",
    }
    assert api.stats()["appointments_booked"] == 0


def test_the_placeholder_is_submitted_but_nothing_is_booked(api: Api, server: SimServer) -> None:
    sid = api.login()
    container = pick(server, "IMPORT", candidate=True, has_slots=False)
    placeholder = slots(server, container, TERMINAL_24H)[0]
    assert placeholder in (simdata.NO_SLOTS, simdata.NO_SLOTS_PLAIN)
    fields = booking(server, container_id=container, appointment_time=placeholder)
    made = api.post("/make_appointment", session_id=sid, **fields)
    assert made.status_code == 200 and made.json()["appointment_confirmed"] is True
    assert api.stats()["appointments_booked"] == 0  # E-Modal took no visit: nothing says so


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"terminal": "Nowhere"}, "Phase 1 - Terminal: Option 'Nowhere' not found in Terminal."),
        ({"trucking_company": "ACME"}, "Phase 1 - Trucking: Option 'ACME' not found in Trucking."),
        ({"move_type": "pick"}, "Phase 1 - Move type: Option 'pick' not found in Move."),
        ({"container_id": "MSCU0000000"}, "Phase 1 - Next: Phase did not advance from 1"),
        (
            {"terminal": "TraPac LLC - Los Angeles"},
            "Phase 1 - Container: FIELD_NOT_FOUND: Neither container number nor booking number "
            "input field found",
        ),
        ({"truck_plate": 7}, "Phase 2 - Truck plate: 'int' object has no attribute 'upper'"),
    ],
)
def test_page_failures_answer_500s_without_phase_or_session(
    api: Api, server: SimServer, overrides: dict[str, Any], error: str
) -> None:
    sid = api.login()
    failed = api.post("/make_appointment", session_id=sid, **booking(server, **overrides))
    assert failed.status_code == 500
    assert set(failed.json()) == {"success", "error"}
    assert failed.json()["error"].startswith(error)
    # Its workflow is never registered: nothing to resume, nothing to poison.
    assert control(api).workflows() == [] and api.stats()["appointments_booked"] == 0


def test_a_page_that_does_not_take_the_container_is_not_retried(
    api: Api, server: SimServer
) -> None:
    sid = api.login()
    fields = booking(server, container_id="MSCU0000000")
    api.post("/make_appointment", session_id=sid, **fields)
    # Page, Phase 1 and one Next: not the check's re-fill and second Next.
    took = duration(api.calls("/make_appointment")[-1])
    assert took >= (30 + 5 + 7.5 + 4 + 26) * SCALE


def test_a_stale_session_with_credentials_logs_in_silently_and_books(
    api: Api, server: SimServer
) -> None:
    made = api.post("/make_appointment", session_id="stale", **creds(), **booking(server))
    assert made.status_code == 200 and made.json()["is_new_session"] is True
    assert api.stats()["captcha_solves"] == 1 and api.stats()["appointments_booked"] == 1
    no_creds = api.post("/make_appointment", session_id="stale", **booking(server))
    assert no_creds.json()["error"] == SESSION_GONE_ERROR


def test_a_page_set_up_failure_is_a_mislabelled_401(api: Api, server: SimServer) -> None:
    sid = api.login()
    control(api).glitch("/make_appointment", "page_setup")
    failed = api.post("/make_appointment", session_id=sid, **booking(server))
    assert failed.status_code == 401
    body = failed.json()
    assert set(body) == {"success", "error"}  # no details: not a login failure
    assert body["error"].startswith("Authentication failed: Message: ")
    assert api.stats()["login_failures"] == 0 and api.stats()["appointments_booked"] == 0


def test_only_imports_are_booked_and_export_fields_are_ignored(api: Api, server: SimServer) -> None:
    sid = api.login()
    fields = booking(server, container_type="export", booking_number="EBKG1", pin_code="")
    made = api.post("/make_appointment", session_id=sid, own_chassis="ignore", **fields)
    assert made.status_code == 200
    assert control(api).bookings()[0]["row"]["Trade Type"] == "IMPORT"


def test_book_then_fail_books_and_answers_the_submit_500(api: Api, server: SimServer) -> None:
    sid = api.login()
    api.fault(endpoint="/make_appointment", mode="book_then_fail")
    fields = booking(server)
    failed = api.post("/make_appointment", session_id=sid, **fields)
    assert failed.status_code == 500
    assert failed.json() == {
        "success": False,
        "error": f"Phase 3 - Submit: {texts.RENDERER_TIMEOUT}",
    }
    assert api.stats()["appointments_booked"] == 1
    assert sheet_rows(api, sid)[-1]["Time Slot"] == fields["appointment_time"]
    bad = api.post("/_sim/faults", endpoint="/check_appointments", mode="book_then_fail")
    assert bad.status_code == 400


def test_a_client_that_hung_up_does_not_stop_the_booking(api: Api, server: SimServer) -> None:
    sid = api.login()
    api.fault(endpoint="/make_appointment", mode="delay", delay=3_000)  # 3 s real, after Submit
    with pytest.raises(requests.ReadTimeout):
        api.http.post(
            api.server.url + "/make_appointment",
            json={"session_id": sid, **booking(server)},
            timeout=1.0,
        )
    # Booked while the client was still waiting; the server finishes its answer regardless.
    assert api.stats()["appointments_booked"] == 1
    wait_for(lambda: api.calls("/make_appointment")[-1]["status"] == 200, timeout=10)


# ---------------------------------------------------------------- get_appointments


def test_the_appointments_export_is_moved_out_of_the_download_folder(api: Api) -> None:
    sid = api.login()
    listed = api.post("/get_appointments", session_id=sid).json()
    assert set(listed) == {"success", "session_id", "is_new_session", "selected_count", "file_url"}
    pattern = re.escape(api.server.url) + rf"/files/{sid}_{STAMP}_appointments\.xlsx"
    assert re.fullmatch(pattern, listed["file_url"])
    name = listed["file_url"].rsplit("/", 1)[-1]
    # Served by its bare name and by its folder path alike.
    assert api.get(f"/files/{name}").content == api.get(f"/files/{sid}/{name}").content
    rows = simdata.read_xlsx(api.http.get(listed["file_url"]).content)
    assert list(rows[0]) == simdata.APPOINTMENT_COLUMNS and len(rows) == listed["selected_count"]
    assert api.get("/files/../etc/passwd").status_code in (400, 404)
    traversal = api.get(f"/files/{sid}/..%2F..%2Fsecret")
    assert traversal.status_code == 400 and traversal.json()["error"] == "Invalid path"


def test_a_lost_download_hands_back_and_moves_the_newest_sheet_of_the_last_30_s(api: Api) -> None:
    api.post("/_sim/config", latencies={"download_window": 60_000})  # 60 s real
    sid = api.login()
    scraped = api.post("/get_containers", session_id=sid, return_url=True).json()
    assert api.get(scraped["file_url"].split(api.server.url)[1]).status_code == 200
    api.fault(endpoint="/get_appointments", mode="stale_sheet")
    stale = api.post("/get_appointments", session_id=sid).json()
    assert stale["success"] is True
    rows = simdata.read_xlsx(api.http.get(stale["file_url"]).content)
    assert list(rows[0]) == simdata.COLUMNS  # the containers sheet, renamed
    gone = api.http.get(scraped["file_url"])
    assert gone.status_code == 404 and gone.json() == {"success": False, "error": "File not found"}
    assert api.stats()["stale_sheets"] == 1


def test_a_lost_download_with_nothing_recent_is_excel_file_not_found(api: Api) -> None:
    api.post("/_sim/config", latencies={"download_window": 0})
    sid = api.login()
    api.post("/get_containers", session_id=sid)
    control(api).glitch("/get_appointments", "excel_missing")
    failed = api.post("/get_appointments", session_id=sid)
    assert failed.status_code == 500
    assert failed.json() == {
        "success": False,
        "error": "Excel file not found after download",
        "session_id": sid,
        "is_new_session": False,
    }


def test_get_appointments_failures_in_their_own_words(api: Api) -> None:
    sid = api.login()
    sim = control(api)
    sim.glitch("/get_appointments", "excel_button")
    button = api.post("/get_appointments", session_id=sid).json()
    assert button == {
        "success": False,
        "error": "Excel download failed: Excel download button not found after trying all "
        "selectors",
    }
    sim.glitch("/get_appointments", "checkbox")
    checkbox = api.post("/get_appointments", session_id=sid).json()
    assert checkbox["error"].startswith("Checkbox selection failed: Message: ")
    assert set(checkbox) == {"success", "error"}
