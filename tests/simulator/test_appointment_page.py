"""check_appointments against the simulator, as the real server behaves: late validation, the
dropdown and plate routines, held workflows, resumes and the poison sweep."""

from __future__ import annotations

import re
from typing import Any

import pytest

from emodal_sim import DEFAULT_TERMINALS, SESSION_GONE_ERROR, SimServer, texts
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
    phase_fields,
    pick,
    post_in_background,
    wait_for,
)

APPT_ID = r"appt_session_\d+_-?\d+_\d+"
SCREENSHOT = r"/files/\d{8}_\d{6}_\d{6}_TAG\.png"


def control(api: Api) -> SimControl:
    return SimControl(api.server.url)


@pytest.fixture(autouse=True)
def no_sweep_unless_asked(clean: None, api: Api) -> None:
    """Failed checks pile up here; at this time scale 600 s are 0.6 s, and a sweep would close
    the browser under a test that is not about poison. Those that are set their own delay."""
    api.post("/_sim/config", latencies={"poison_delay": 10**6})


def good_import(server: SimServer, username: str = "alice") -> str:
    return pick(server, "IMPORT", username=username, candidate=True, has_slots=True)


def import_check(api: Api, sid: str, **overrides: Any) -> Any:
    fields = {"container_type": "import", "container_id": good_import(api.server)}
    return api.check(sid, **{**fields, **phase_fields(), **overrides})


def held(api: Api) -> list[dict[str, Any]]:
    return [w for w in api.workflows() if not w["running"]]


# ---------------------------------------------------------------- up-front validation


def test_container_type_is_lowered_but_not_trimmed(api: Api) -> None:
    # Upper case passes the only up-front check (the session block answers next).
    upper = api.post("/check_appointments", session_id="gone", container_type="IMPORT")
    assert upper.status_code == 400 and upper.json()["error"] == SESSION_GONE_ERROR
    for body in ({"container_type": "import "}, {"container_type": "both"}, {}):
        refused = api.post("/check_appointments", session_id="gone", **body)
        assert refused.status_code == 400
        assert refused.json() == {"success": False, "error": texts.CONTAINER_TYPE}
    assert texts.CONTAINER_TYPE == "container_type must be 'import' or 'export'"
    null = api.post("/check_appointments", session_id="gone", container_type=None)
    assert null.status_code == 500
    assert null.json() == {
        "success": False,
        "error": "Unexpected error: 'NoneType' object has no attribute 'lower'",
        "current_phase": 0,
    }
    number = api.post("/check_appointments", container_type=1)
    assert number.json()["error"] == "Unexpected error: 'int' object has no attribute 'lower'"
    assert api.stats()["login_attempts"] == 0
    assert api.workflows() == []  # nothing was registered for any of them


def test_missing_phase1_fields_come_late_and_all_at_once(api: Api) -> None:
    # A silent login first, then the page (30 s) and Phase 1's 5 s, then every missing field.
    imported = api.post(
        "/check_appointments", session_id="gone", container_type="import", debug=False, **creds()
    )
    assert imported.status_code == 400
    body = imported.json()
    sid = body["session_id"]
    fields = "trucking_company, terminal, move_type, container_id"
    assert body == {
        "success": False,
        "error": f"Missing required fields for Phase 1: {fields}",
        "session_id": sid,
        "is_new_session": True,
        "appointment_session_id": body["appointment_session_id"],
        "current_phase": 1,
        "message": f"Please provide {fields} and retry with appointment_session_id",
    }
    assert re.fullmatch(APPT_ID, body["appointment_session_id"])
    assert body["appointment_session_id"].startswith(f"appt_{sid}_")
    call = api.calls("/check_appointments")[-1]
    assert call["login"] is True and duration(call) >= (30 + 4 + 35) * SCALE
    export = api.check(sid, container_type="export", terminal=TERMINAL_24H, truck_plate="X")
    assert export.json()["error"] == (
        "Missing required fields for Phase 1: trucking_company, move_type, booking_number"
    )


def test_a_missing_plate_is_answered_only_after_phase_1_went_through(api: Api) -> None:
    sid = api.login()
    no_plate = import_check(api, sid, truck_plate="")
    assert no_plate.status_code == 400
    assert no_plate.json() == {
        "success": False,
        "error": "Missing required field for Phase 2: truck_plate",
        "session_id": sid,
        "is_new_session": False,
        "appointment_session_id": no_plate.json()["appointment_session_id"],
        "current_phase": 2,
        "message": "Please provide truck_plate and retry with appointment_session_id",
    }
    # Phase 1 ran: its dropdowns were picked, and the wait went past Phase 1's Next.
    assert api.calls("/check_appointments")[-1]["selected"]["terminal"] == TERMINAL_24H
    assert duration(api.calls("/check_appointments")[-1]) >= 79 * SCALE


def test_a_check_takes_about_two_minutes_and_answers_missing_fields_a_third_in(api: Api) -> None:
    # Ten times the usual waits, so that the proportions stand out from the machine's noise.
    api.post(
        "/_sim/config",
        latencies={"check_appointments_import": 1160, "check_appointments_export": 1225},
    )
    sid = api.login()
    assert import_check(api, sid).status_code == 200
    missing = api.check(sid, container_type="import", debug=False)
    assert missing.status_code == 400
    full, early = api.calls("/check_appointments")
    assert duration(full) >= 1.15  # ~116 s at time scale 1 (production: 114-117 s)
    assert 0.35 <= duration(early) < duration(full) * 0.6  # ~35 s of 116
    from emodal_sim import DEFAULT_LATENCIES

    assert 114 <= DEFAULT_LATENCIES["check_appointments_import"] <= 117
    assert 114 <= DEFAULT_LATENCIES["check_appointments_export"] <= 125


# ---------------------------------------------------------------------- the dropdowns


def test_dropdowns_pick_exact_then_as_sent_then_the_first_option_containing_it(api: Api) -> None:
    sid = api.login()
    cases = [
        # (sent, what the page selects)
        ({"terminal": "Terminal 18 "}, {"terminal": "Terminal 18"}),  # trimmed
        # " - " is turned into "-" first; that misses, the text as sent then matches
        ({"terminal": "SSA Terminal - PierA / LB"}, {"terminal": "SSA Terminal - PierA / LB"}),
        ({"terminal": "ITS"}, {"terminal": "ITS Long Beach"}),  # silently partial
        ({"terminal": "Terminal"}, {"terminal": "Everport Terminal Services - Los Angeles"}),
        ({"trucking_company": "K & R"}, {"trucking_company": COMPANY}),
        # Nothing left after trimming: every option contains "", the first is taken.
        ({"trucking_company": " "}, {"trucking_company": COMPANY}),
        ({"move_type": "FULL"}, {"move_type": "PICK FULL"}),
    ]
    for sent, selected in cases:
        # (Everport's Los Angeles page has no container field: it takes Line and Equip Size.)
        answer = import_check(api, sid, **sent, line="MSCU", equip_size="40DH")
        assert answer.status_code == 200, (sent, answer.text)
        name, value = next(iter(sent.items()))
        # The answer echoes what was sent; the call history shows what the page selected.
        assert answer.json()["phase_data"][name] == value
        assert api.calls("/check_appointments")[-1]["selected"][name] == selected[name], sent


def test_a_value_no_option_contains_fails_with_the_first_ten_options(api: Api) -> None:
    sid = api.login()
    terminal = import_check(api, sid, terminal="terminal 18")  # case-sensitive
    assert terminal.status_code == 500
    body = terminal.json()
    assert body["error"] == (
        "Phase 1 failed - Terminal: Option 'terminal 18' not found in Terminal. Available "
        f"options: {', '.join(DEFAULT_TERMINALS[:10])}"
    )
    assert body["current_phase"] == 1 and body["session_id"] == sid
    assert body["is_new_session"] is False and re.fullmatch(APPT_ID, body["appointment_session_id"])
    move = import_check(api, sid, move_type="pick full")
    assert move.json()["error"] == (
        "Phase 1 failed - Move type: Option 'pick full' not found in Move. Available options: "
        "PICK FULL, DROP EMPTY, DROP FULL, PICK EMPTY"
    )
    company = import_check(api, sid, trucking_company="K&R TRANSPORTATION")
    assert company.json()["error"].startswith(
        "Phase 1 failed - Trucking company: Option 'K&R TRANSPORTATION' not found in Trucking. "
        "Available options: K & R TRANSPORTATION LLC, "
    )
    odd = import_check(api, sid, trucking_company=5)
    assert odd.json()["error"] == (
        "Phase 1 failed - Trucking company: 'int' object has no attribute 'replace'"
    )
    # The dropdowns' lists are configurable.
    api.post("/_sim/config", terminals=["Pier Z"])
    assert import_check(api, sid, terminal="Pier Z").status_code == 200


def test_a_quote_breaks_the_page_query_every_time(api: Api) -> None:
    sid = api.login()
    xpath = "//mat-option//span[normalize-space(text())='O'Neil Drayage']"
    expected = f"Phase 1 failed - Trucking company: {texts.invalid_selector(xpath)}"
    for _ in range(2):
        answer = import_check(api, sid, trucking_company="O'Neil Drayage")
        assert answer.status_code == 500 and answer.json()["error"] == expected
    assert expected.startswith(
        "Phase 1 failed - Trucking company: Message: invalid selector: Unable to locate an "
        f"element with the xpath expression {xpath} because of the following error:\n"
        f"SyntaxError: Failed to execute 'evaluate' on 'Document': The string '{xpath}' is not "
        "a valid XPath expression."
    )
    chip = import_check(api, sid, container_id="MSCU'1")
    assert chip.json()["error"] == (
        "Phase 1 failed - Container: "
        + texts.invalid_selector("//mat-chip//span[contains(text(),'MSCU'1')]")
    )


def test_a_container_the_page_does_not_take_fails_at_next_after_a_retry(api: Api) -> None:
    sid = api.login()
    imp = good_import(api.server)
    for container in (imp.lower(), "MSCU0000000", pick(api.server, "EXPORT")):
        refused = import_check(api, sid, container_id=container)
        assert refused.status_code == 500
        assert refused.json()["error"] == (
            "Phase 1 failed - Next button (after retry): Phase did not advance from 1"
        )
        assert refused.json()["current_phase"] == 1
    # The fields were filled again and Next clicked twice: longer than a whole Phase 1.
    assert duration(api.calls("/check_appointments")[-1]) >= (35 + 10 + 26 + 10 + 26) * SCALE


def test_a_page_without_container_field_needs_line_and_equip_size(api: Api) -> None:
    sid = api.login()
    assert {
        "TraPac LLC - Los Angeles",
        "Everport Terminal Services - Los Angeles",
    } == simdata.NO_CONTAINER_FIELD_TERMINALS
    terminal = "TraPac LLC - Los Angeles"
    for extra in ({}, {"line": "MSCU"}, {"equip_size": "40DH"}):
        refused = import_check(api, sid, terminal=terminal, **extra)
        assert refused.status_code == 400
        body = refused.json()
        assert body["error"] == (
            "Phase 1 failed - Container field not found. Please provide 'line' and 'equip_size' "
            "fields for this form type."
        )
        assert (
            body["message"]
            == "This form requires 'line' and 'equip_size' instead of 'container_id'"
        )
        assert body["current_phase"] == 1 and body["appointment_session_id"]
    assert import_check(api, sid, terminal=terminal, line="MSCU", equip_size="40DH").ok


def test_an_export_booking_with_no_open_transactions(api: Api) -> None:
    sid = api.login()
    refused = api.check(
        sid,
        container_type="export",
        booking_number="INVALID123",
        **phase_fields(move_type="DROP FULL"),
    )
    assert refused.status_code == 400
    body = refused.json()
    assert body == {
        "success": False,
        "error": "Booking number validation failed",
        "error_message": "No open transactions for this booking number",
        "session_id": sid,
        "is_new_session": False,
        "appointment_session_id": body["appointment_session_id"],
        "current_phase": 1,
        "screenshot_url": f"{api.server.url}/files/{sid}/booking_number_error.png",
    }
    assert api.get(f"/files/{sid}/booking_number_error.png").status_code == 404  # L7824
    # The workflow is held, and this 400 clears the browser's in-use flag (L7814).
    assert [w["appointment_session_id"] for w in held(api)] == [body["appointment_session_id"]]
    assert [s["in_use"] for s in api.sim_sessions()] == [False]


# --------------------------------------------------------------------- truck plates


def test_truck_plates_are_never_refused(api: Api) -> None:
    sid = api.login()
    plates = control(api).plates("alice")
    assert plates and all(re.fullmatch(r"\d[A-Z]{3}\d{3}", p) for p in plates)
    assert plates == simdata.truck_plates("alice", api.server.config)
    cases = [
        ("ABC123", plates[0], "any"),
        ("abc123", plates[0], "any"),
        ("   ", plates[0], "any"),
        ("7XYZ999", plates[0], "substituted"),  # not listed: the first plate, silently
        (plates[-1][1:5], plates[-1] if len(plates) == 1 else None, "match"),
        ("9O'K", plates[0], "substituted"),  # the quote breaks contains(): any plate
    ]
    for sent, selected, how in cases:
        answer = import_check(api, sid, truck_plate=sent)
        assert answer.status_code == 200, (sent, answer.text)
        assert answer.json()["phase_data"]["truck_plate"] == sent
        picked = api.calls("/check_appointments")[-1]["selected"]
        expected = selected or next(p for p in plates if sent in p)
        assert (picked["truck_plate"], picked["truck_plate_choice"]) == (expected, how), sent
    odd = import_check(api, sid, truck_plate=123)
    assert (
        odd.json()["error"] == "Phase 2 failed - Truck plate: 'int' object has no attribute 'upper'"
    )


def test_an_account_without_listed_plates_keeps_a_typed_plate_but_not_any_plate(api: Api) -> None:
    sid = api.login("fleetless+p0")
    assert control(api).plates("fleetless+p0") == []
    imp = good_import(api.server, "fleetless+p0")
    fields = {"container_type": "import", "container_id": imp}
    typed = api.check(sid, **fields, **phase_fields(truck_plate="7XYZ999"))
    assert typed.status_code == 200
    picked = api.calls("/check_appointments")[-1]["selected"]
    assert (picked["truck_plate"], picked["truck_plate_choice"]) == ("7XYZ999", "typed")
    anyone = api.check(sid, **fields, **phase_fields(truck_plate="ABC123"))
    assert anyone.status_code == 500
    assert anyone.json()["error"] == (
        "Phase 2 failed - Truck plate: No truck plates available in dropdown"
    )
    assert anyone.json()["current_phase"] == 2


# ------------------------------------------------------------------------- answers


def test_an_import_answer_echoes_the_request_and_links_the_dropdown_screenshot(api: Api) -> None:
    sid = api.login()
    imp = good_import(api.server)
    answer = import_check(api, sid, container_id=imp, pin_code="4321", own_chassis=False)
    body = answer.json()
    assert set(body) == {
        "success",
        "container_type",
        "session_id",
        "is_new_session",
        "appointment_session_id",
        "phase_data",
        "available_times",
        "count",
        "dropdown_screenshot_url",
    }  # no current_phase, no debug bundle
    assert body["phase_data"] == {
        "container_type": "import",
        "trucking_company": COMPANY,
        "terminal": TERMINAL_24H,
        "move_type": "PICK FULL",
        "container_id": imp,
        "truck_plate": "ABC123",
        "own_chassis": False,
        "pin_code": "4321",
    }
    assert body["count"] == len(body["available_times"]) >= 1
    url = body["dropdown_screenshot_url"]
    pattern = re.escape(api.server.url) + SCREENSHOT.replace("TAG", "appointment_dropdown_opened")
    assert re.fullmatch(pattern, url)
    assert api.http.get(url).content.startswith(b"\x89PNG")
    no_pin = import_check(api, sid, container_id=imp).json()["phase_data"]
    assert "pin_code" not in no_pin and no_pin["own_chassis"] is None


def test_an_export_answer_says_whether_the_calendar_was_found(api: Api) -> None:
    sid = api.login()
    fields = {"container_type": "EXPORT", "booking_number": "EBKG00000001"}
    found = api.check(sid, **fields, **phase_fields(move_type="DROP FULL", debug=True)).json()
    assert found["calendar_found"] is True and found["container_type"] == "export"
    pattern = re.escape(api.server.url) + SCREENSHOT.replace("TAG", "calendar_opened")
    assert re.fullmatch(pattern, found["calendar_screenshot_url"])
    assert found["phase_data"]["unit_number"] == "1" and found["phase_data"]["seal_value"] == "1"
    appointment_id = found["appointment_session_id"]
    bundle = re.escape(api.server.url) + rf"/files/{appointment_id}_{STAMP}_check_appointments\.zip"
    assert re.fullmatch(bundle, found["debug_bundle_url"])
    # The icon missed (a glitch): still a 200, with nothing to show.
    control(api).glitch("/check_appointments", "calendar_missed")
    missed = api.check(sid, **fields, **phase_fields(move_type="DROP FULL"))
    assert missed.status_code == 200
    assert (missed.json()["calendar_found"], missed.json()["calendar_screenshot_url"]) == (
        False,
        None,
    )
    assert held(api) == []  # a 200, so its workflow was dropped


# --------------------------------------------------------------- workflows and poison


def test_every_failed_check_holds_its_workflow_and_a_success_drops_it(api: Api) -> None:
    sid = api.login()
    sim = control(api)
    assert import_check(api, sid).status_code == 200
    assert api.workflows() == []
    failures = [
        api.check(sid, container_type="import", debug=False),  # 400, Phase 1 fields
        import_check(api, sid, truck_plate=None),  # 400, Phase 2 plate
        import_check(api, sid, terminal="Nowhere"),  # 500, a wrong value
    ]
    sim.glitch("/check_appointments", "navigation")
    failures.append(import_check(api, sid))  # 500 before Phase 1: registered before navigating
    ids = [f.json()["appointment_session_id"] for f in failures]
    assert len(set(ids)) == 4
    assert failures[-1].json()["error"].startswith("Navigation failed: Navigation error: Message:")
    assert failures[-1].json()["current_phase"] == 1
    assert sorted(w["appointment_session_id"] for w in held(api)) == sorted(ids)
    stats = api.stats()
    assert stats["held_workflows"] == 4 and stats["workflows_held"] == 4


def test_a_running_check_is_a_workflow_too(api: Api) -> None:
    sid = api.login()
    api.fault(endpoint="/check_appointments", mode="delay", delay=60_000)
    imp = good_import(api.server)
    thread, box = post_in_background(
        api,
        "/check_appointments",
        session_id=sid,
        container_type="import",
        container_id=imp,
        **phase_fields(),
    )
    wait_for(lambda: any(w["running"] for w in api.workflows()))
    assert api.stats()["workflows"] == 1 and api.stats()["held_workflows"] == 0
    api.http.delete(f"{api.server.url}/sessions/{sid}")
    thread.join(timeout=10)
    assert box["response"].status_code == 500
    assert box["response"].json()["error"] == (
        f"Navigation failed: Navigation failed: {texts.dead_driver(sid)}"
    )


def test_the_sweep_closes_a_browser_600_s_after_its_workflow_was_last_used(
    api: Api, server: SimServer
) -> None:
    api.post("/_sim/config", latencies={"poison_delay": 1000})  # 1 s real
    alice, bob = api.login("alice"), api.login("bob")
    failed = api.check(alice, container_type="import", debug=False)
    assert failed.status_code == 400
    # The clock ran from the check's start, not its answer.
    [workflow] = held(api)
    assert 35 <= workflow["age"] < 1000 and workflow["due_in"] == 1000 - workflow["age"]

    # Before it is due, checks leave alice's browser alone.
    bobs = good_import(server, "bob")
    assert api.check(bob, container_type="import", container_id=bobs, **phase_fields()).ok
    api.fault(endpoint="/get_containers", mode="delay", delay=60_000)
    thread, box = post_in_background(api, "/get_containers", session_id=alice, return_url=True)
    wait_for(lambda: api.is_busy(alice))
    wait_for(lambda: all(w["due_in"] < 0 for w in held(api)))
    assert api.is_busy(alice)  # still in flight: nothing sweeps without a check
    # Anyone's check sweeps first, even one then refused up front.
    trigger = api.post("/check_appointments", container_type="IMPORT ")
    assert trigger.status_code == 400
    thread.join(timeout=10)
    assert box["response"].status_code == 500
    assert box["response"].json()["error"] == (
        f"Navigation failed: Navigation error: {texts.dead_driver(alice)}"
    )
    assert api.calls("/get_containers")[-1]["outcome"] == "poisoned"
    stats = api.stats()
    assert (stats["poisoned_browsers"], stats["workflows_expired"], stats["dead_browsers"]) == (
        1,
        1,
        1,
    )
    assert api.get("/health").json()["active_sessions"] == 2  # the dead browser still counts
    broken = api.get("/sessions")
    assert broken.status_code == 500 and broken.headers["Content-Type"].startswith("text/html")
    # Its id is refused, and that use clears it from the map: the listing works again.
    gone = api.post("/get_containers", session_id=alice)
    assert gone.status_code == 400 and gone.json()["error"] == SESSION_GONE_ERROR
    listing = api.get("/sessions")
    assert listing.status_code == 200
    assert [s["session_id"] for s in listing.json()["sessions"]] == [bob]


def test_make_appointment_and_non_json_checks_sweep_too(api: Api) -> None:
    api.post("/_sim/config", latencies={"poison_delay": 0})
    for trigger in (
        lambda: api.post("/make_appointment"),  # a 400 before any login
        lambda: api.http.post(
            api.server.url + "/check_appointments", data="x", headers={"Content-Type": "text/plain"}
        ),
    ):
        sid = api.login()
        assert api.check(sid, container_type="import", debug=False).status_code == 400
        assert trigger().status_code == 400
        assert api.post("/get_containers", session_id=sid).json()["error"] == SESSION_GONE_ERROR
    assert api.stats()["poisoned_browsers"] == 2


def test_the_sweep_reads_only_the_seconds_part_of_the_age(api: Api, server: SimServer) -> None:
    """``(now - last_used).seconds``: a workflow a day and a minute old looks a minute old."""
    api.post("/_sim/config", latencies={"poison_delay": 600})
    sid = api.login()
    api.check(sid, container_type="import", debug=False)
    [workflow] = server.state._workflows.values()
    workflow.last_used -= (86_400 + 60) * SCALE
    api.post("/check_appointments", container_type="x")  # a sweep
    assert len(held(api)) == 1 and api.stats()["poisoned_browsers"] == 0
    workflow.last_used -= 600 * SCALE  # now a day and 11 minutes
    api.post("/check_appointments", container_type="x")
    assert held(api) == [] and api.stats()["poisoned_browsers"] == 1


# -------------------------------------------------------------------------- resumes


def test_a_resume_continues_from_the_failed_phase_without_a_session_block(api: Api) -> None:
    # Ten times the usual waits: the resume's shorter walk stands out from the machine's noise.
    # (Its workflow then lives over 600 s before the resume: the sweep must wait longer.)
    api.post("/_sim/config", latencies={"check_appointments_import": 1160, "poison_delay": 10**6})
    sid = api.login()
    imp = good_import(api.server)
    failed = import_check(api, sid, container_id=imp, truck_plate=None)
    assert failed.status_code == 400
    appointment_id = failed.json()["appointment_session_id"]
    # Phase 2 reads this request: only its fields are needed; no session block at all.
    resumed = api.post(
        "/check_appointments",
        container_type="import",
        appointment_session_id=appointment_id,
        truck_plate="ABC123",
        session_id="nonsense",
    )
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert (body["session_id"], body["is_new_session"]) == (sid, False)
    assert body["appointment_session_id"] == appointment_id
    # Phase 1's data came from the first call, Phase 2's from this one.
    assert (
        body["phase_data"]["container_id"] == imp and body["phase_data"]["truck_plate"] == "ABC123"
    )
    assert body["count"] >= 1
    call = api.calls("/check_appointments")[-1]
    assert call["resumed"] is True and "appointment_session_id" not in call["params"]
    # No page load, no Phase 1: well under a whole check.
    assert duration(call) < duration(api.calls("/check_appointments")[0])
    assert api.workflows() == [] and api.stats()["resumes"] == 1
    # Released, it is no longer held: the same id starts a new workflow through the block.
    again = api.check(sid, container_type="import", appointment_session_id=appointment_id)
    assert again.json()["appointment_session_id"] != appointment_id


def test_a_resume_fails_on_whatever_page_another_call_left(api: Api) -> None:
    sid = api.login()
    imp = good_import(api.server)
    sim = control(api)
    phase1 = api.check(sid, container_type="import", debug=False).json()["appointment_session_id"]
    assert api.post("/get_container_timeline", session_id=sid, container_id=imp).ok
    fields = {"container_type": "import", "container_id": imp, **phase_fields()}
    lost = api.post("/check_appointments", appointment_session_id=phase1, **fields)
    assert lost.status_code == 500
    assert (
        lost.json()["error"] == "Phase 1 failed - Trucking company: Dropdown 'Trucking' not found"
    )
    assert lost.json()["appointment_session_id"] == phase1
    # Still held, its clock restarted by the resume.
    assert [w["appointment_session_id"] for w in held(api)] == [phase1]

    phase2 = import_check(api, sid, truck_plate=None).json()["appointment_session_id"]
    assert api.post("/get_appointments", session_id=sid).ok
    checkbox = api.post("/check_appointments", appointment_session_id=phase2, **fields)
    assert checkbox.json()["error"] == "Phase 2 failed - Checkbox: Container checkbox not found"
    assert checkbox.json()["current_phase"] == 2

    sim.glitch("/check_appointments", "time_dropdown")
    phase3 = import_check(api, sid).json()
    assert phase3["error"] == (
        "Phase 3 failed: Appointment time dropdown not found after trying all strategies"
    )
    assert api.post("/get_containers", session_id=sid, return_url=True).ok
    times = api.post(
        "/check_appointments", appointment_session_id=phase3["appointment_session_id"], **fields
    )
    assert times.json()["error"] == phase3["error"] and times.json()["current_phase"] == 3

    # A navigation failure never reached the page: even untouched, a resume cannot work.
    sim.glitch("/check_appointments", "navigation")
    nav = import_check(api, sid).json()["appointment_session_id"]
    untouched = api.post("/check_appointments", appointment_session_id=nav, **fields)
    assert (
        untouched.json()["error"]
        == "Phase 1 failed - Trucking company: Dropdown 'Trucking' not found"
    )


def test_a_resume_on_a_closed_browser_fails_on_the_dead_driver(api: Api) -> None:
    for close in ("delete", "emergency_recovery"):
        sid = api.login()
        failed = import_check(api, sid, truck_plate=None).json()["appointment_session_id"]
        if close == "delete":
            assert api.http.delete(f"{api.server.url}/sessions/{sid}").ok
        else:
            assert api.post("/emergency_recovery").ok
        resumed = api.post(
            "/check_appointments",
            container_type="import",
            appointment_session_id=failed,
            truck_plate="ABC123",
        )
        assert resumed.status_code == 500
        assert resumed.json()["error"] == f"Phase 2 failed - Checkbox: {texts.dead_driver(sid)}"
        assert resumed.json()["session_id"] == sid
