"""Glitches: each endpoint's own real transient failures (the contract's table), injected by a
counted fault or at a seeded rate; and the ``answer`` control for tests of fail-closed reading."""

from __future__ import annotations

import re
from typing import Any

import pytest

from emodal_sim import SimServer, glitches
from emodal_sim import data as simdata

from ..sim import SimControl
from .support import Api, phase_fields, pick, slots

EXCEPTION = r"Message: [^\n]+\n  \(Session info: chrome=[\d.]+\)[^\n]*\nStacktrace:\n.*"


def control(api: Api) -> SimControl:
    return SimControl(api.server.url)


def request_for(api: Api, endpoint: str, sid: str) -> dict[str, Any]:
    server = api.server
    imp = pick(server, "IMPORT", has_pregate_milestone=True, candidate=True, has_slots=True)
    exp = pick(server, "EXPORT", has_pregate_milestone=True)
    bodies: dict[str, dict[str, Any]] = {
        "/get_containers": {"return_url": True},
        "/get_container_timeline": {"container_id": imp},
        "/get_booking_number": {"container_id": exp},
        "/get_info_bulk": {"import_containers": [imp], "export_containers": [exp]},
        "/check_appointments": {"container_type": "import", "container_id": imp, **phase_fields()},
        "/get_appointments": {},
        "/make_appointment": {
            **{k: v for k, v in phase_fields().items() if k != "debug"},
            "container_id": imp,
            "appointment_time": slots(server, imp, "Terminal 18")[0],
        },
    }
    return {"session_id": sid, **bodies[endpoint]}


# (endpoint, kind, step) -> (status, error pattern, the extra keys the answer carries)
CHECK_IDS = {"session_id", "is_new_session", "appointment_session_id", "current_phase"}
BULK_IDS = {"session_id", "is_new_session"}
NAV = rf"Navigation failed: Navigation error: {EXCEPTION}"
SEARCH = rf"Search failed: Progressive search failed: {EXCEPTION}"
EXPAND = r"Expand failed: Container row not found for '\w+'"
OPERATION = rf"Operation failed: {EXCEPTION}"
UNEXPECTED = rf"Unexpected error: {EXCEPTION}"
BUNDLE = {"debug_bundle_url"}
C, M = "/check_appointments", "/make_appointment"
CASES: list[tuple[str, str, str, int, str, set[str]]] = [
    ("/get_containers", "navigation", "", 500, NAV, set()),
    (
        "/get_containers",
        "download",
        "",
        500,
        rf"Download failed: Scraping failed: {EXCEPTION}",
        BUNDLE,
    ),
    ("/get_containers", "operation", "", 500, OPERATION, BUNDLE),
    ("/get_containers", "unexpected", "", 500, UNEXPECTED, set()),
    ("/get_container_timeline", "navigation", "", 500, NAV, set()),
    ("/get_container_timeline", "search", "", 500, SEARCH, set()),
    ("/get_container_timeline", "expand", "", 500, EXPAND, set()),
    (
        "/get_container_timeline",
        "timeline",
        "",
        500,
        r"Timeline extraction failed: Timeline container not found",
        set(),
    ),
    (
        "/get_container_timeline",
        "pregate",
        "",
        500,
        rf"Pregate status check failed: {EXCEPTION}",
        set(),
    ),
    ("/get_booking_number", "search", "", 500, SEARCH, set()),
    ("/get_booking_number", "expand", "", 500, EXPAND, set()),
    (
        "/get_booking_number",
        "booking",
        "",
        500,
        rf"Booking number extraction failed: {EXCEPTION}",
        set(),
    ),
    ("/get_booking_number", "operation", "", 500, OPERATION, set()),
    (
        "/get_info_bulk",
        "navigation",
        "",
        500,
        rf"Failed to navigate to containers page: Navigation error: {EXCEPTION}",
        BULK_IDS,
    ),
    ("/get_info_bulk", "exception", "", 500, EXCEPTION, set()),
    (C, "navigation", "", 500, NAV, CHECK_IDS),
    (
        C,
        "dropdown_missing",
        "trucking",
        500,
        r"Phase 1 failed - Trucking company: Dropdown 'Trucking' not found",
        CHECK_IDS,
    ),
    (
        C,
        "dropdown_missing",
        "terminal",
        500,
        r"Phase 1 failed - Terminal: Dropdown 'Terminal' not found",
        CHECK_IDS,
    ),
    (
        C,
        "dropdown_missing",
        "move",
        500,
        r"Phase 1 failed - Move type: Dropdown 'Move' not found",
        CHECK_IDS,
    ),
    (
        C,
        "options_empty",
        "terminal",
        500,
        r"Phase 1 failed - Terminal: Option 'Terminal 18' not found in Terminal\. "
        r"Available options: ",
        CHECK_IDS,
    ),
    (C, "stale", "checkbox", 500, rf"Phase 2 failed - Checkbox: {EXCEPTION}", CHECK_IDS),
    (C, "stale", "next1", 500, rf"Phase 1 failed - Next button: {EXCEPTION}", CHECK_IDS),
    (
        C,
        "plate_field",
        "",
        500,
        r"Phase 2 failed - Truck plate: Truck plate field not found",
        CHECK_IDS,
    ),
    (
        C,
        "time_dropdown",
        "",
        500,
        r"Phase 3 failed: Appointment time dropdown not found after trying all strategies",
        CHECK_IDS,
    ),
    (
        C,
        "unexpected",
        "",
        500,
        UNEXPECTED,
        {"session_id", "appointment_session_id", "current_phase"},
    ),
    ("/get_appointments", "navigation", "", 500, rf"Navigation failed: {EXCEPTION}", set()),
    ("/get_appointments", "checkbox", "", 500, rf"Checkbox selection failed: {EXCEPTION}", set()),
    (
        "/get_appointments",
        "excel_button",
        "",
        500,
        r"Excel download failed: Excel download button not found after trying all selectors",
        set(),
    ),
    (M, "navigation", "", 500, NAV, set()),
    (M, "page_setup", "", 401, rf"Authentication failed: {EXCEPTION}", set()),
    (
        M,
        "dropdown_missing",
        "terminal",
        500,
        r"Phase 1 - Terminal: Dropdown 'Terminal' not found",
        set(),
    ),
    (
        M,
        "dropdown_missing",
        "appointment",
        500,
        r"Phase 3 - Appointment time: Dropdown 'Appointment' not found",
        set(),
    ),
    (M, "plate_field", "", 500, r"Phase 2 - Truck plate: Truck plate field not found", set()),
    (M, "unexpected", "", 500, UNEXPECTED, {"session_id", "is_new_session"}),
]


@pytest.mark.parametrize(
    ("endpoint", "kind", "step", "status", "pattern", "extra"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES],
)
def test_each_endpoint_glitches_with_its_own_real_text(
    api: Api, endpoint: str, kind: str, step: str, status: int, pattern: str, extra: set[str]
) -> None:
    sid = api.login()
    control(api).glitch(endpoint, kind, **({"step": step} if step else {}))
    answer = api.http.post(
        api.server.url + endpoint, json=request_for(api, endpoint, sid), timeout=30
    )
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert re.fullmatch(pattern, body["error"], re.DOTALL), body["error"]
    assert set(body) - {"success", "error"} == extra
    if "session_id" in extra:
        assert body["session_id"] == sid
    glitch = api.calls(endpoint)[-1]["glitch"]
    assert glitch["kind"] == kind
    assert api.get("/_sim/glitches").json()["glitches"] == {f"{endpoint} {kind}": 1}
    if endpoint == "/check_appointments":
        # A glitch is a failed check like any other: its workflow stays held.
        assert [w["appointment_session_id"] for w in control(api).poisons()] == [
            body["appointment_session_id"]
        ]
    # The browser survived: the same call goes through next time.
    if endpoint != "/make_appointment":
        again = api.http.post(
            api.server.url + endpoint, json=request_for(api, endpoint, sid), timeout=30
        )
        assert again.status_code == 200, again.text


def test_every_operation_can_crash_into_flasks_html_500(api: Api) -> None:
    sid = api.login()
    for endpoint in glitches.CALL_KINDS:
        control(api).glitch(endpoint, "html500")
        answer = api.http.post(
            api.server.url + endpoint, json=request_for(api, endpoint, sid), timeout=30
        )
        assert answer.status_code == 500 and answer.headers["Content-Type"].startswith("text/html")
    assert api.stats()["glitches"] == len(glitches.CALL_KINDS)


def test_a_submit_glitch_books_and_answers_the_submit_500(api: Api) -> None:
    sid = api.login()
    control(api).glitch("/make_appointment", "submit")
    failed = api.post("/make_appointment", **request_for(api, "/make_appointment", sid))
    assert failed.status_code == 500
    assert re.fullmatch(rf"Phase 3 - Submit: {EXCEPTION}", failed.json()["error"], re.DOTALL)
    assert api.stats()["appointments_booked"] == 1


def test_bulk_entries_glitch_one_at_a_time_in_their_real_shapes(
    api: Api, server: SimServer
) -> None:
    sid = api.login()
    info = simdata.container_details(server.state.sheet("alice"), server.config)
    rows = [r for r in server.state.containers("alice") if r["Trade Type"] == "IMPORT"]
    imports = [r["Container #"] for r in rows if info[r["Container #"]]["has_pregate_milestone"]][
        :5
    ]
    exp = pick(server, "EXPORT")
    sim = control(api)
    plan = ["entry_search", "entry_expand", "entry_exception", "entry_timeline", "entry_pregate"]
    entries = []
    for kind, container in zip(plan, imports, strict=True):
        sim.glitch("/get_info_bulk", kind, container_id=container)
        body = api.post(
            "/get_info_bulk", session_id=sid, import_containers=imports, export_containers=[exp]
        ).json()
        results = body["results"]["import_results"]
        # Only the entry aimed at fails; the call and the other entries go on.
        assert [r["container_id"] for r in results if r["container_id"] != container] == [
            c for c in imports if c != container
        ]
        assert all(r["success"] for r in results if r["container_id"] != container)
        entries.append(next(r for r in results if r["container_id"] == container))
    search, expand, exception, timeline, pregate = entries
    assert search["success"] is False and set(search) == {
        "container_id",
        "success",
        "error",
        "pregate_status",
    }
    assert re.fullmatch(
        rf"Container not found: Progressive search failed: {EXCEPTION}", search["error"], re.DOTALL
    )
    assert expand["error"] == f"Failed to expand: Container row not found for '{imports[1]}'"
    assert (expand["timeline"], expand["milestone_count"], expand["pregate_status"]) == (
        [],
        0,
        None,
    )
    assert re.fullmatch(EXCEPTION, exception["error"], re.DOTALL)
    assert (exception["timeline"], exception["milestone_count"]) == ([], 0)
    # A timeline that failed to extract: still a success, with nothing in it.
    assert timeline["success"] is True and (timeline["timeline"], timeline["milestone_count"]) == (
        [],
        0,
    )
    assert isinstance(timeline["pregate_status"], bool)
    assert pregate["success"] is False and pregate["error"] == "Timeline container not found"
    assert (
        pregate["pregate_status"] is None
        and pregate["milestone_count"] == len(pregate["timeline"]) > 0
    )
    sim.glitch("/get_info_bulk", "entry_booking")
    booked = api.post("/get_info_bulk", session_id=sid, export_containers=[exp]).json()
    [entry] = booked["results"]["export_results"]
    assert entry["success"] is False and entry["booking_number"] is None
    assert re.fullmatch(EXCEPTION, entry["error"], re.DOTALL)


def test_the_glitch_rate_is_seeded_repeatable_and_counted(api: Api) -> None:
    sid = api.login()
    imp = pick(api.server, "IMPORT", has_pregate_milestone=True)

    def run(seed: int) -> list[str]:
        api.post("/_sim/chaos", glitch_rate=0.5, seed=seed)
        outcomes = []
        for _ in range(40):
            answer = api.post("/get_container_timeline", session_id=sid, container_id=imp)
            is_json = answer.headers["Content-Type"] == "application/json"
            outcomes.append(answer.json().get("error", "ok") if is_json else "HTML 500")
        return [re.sub(r"Message: [^\n]+", "Message", o, flags=re.DOTALL)[:60] for o in outcomes]

    first = run(7)
    failed = [o for o in first if o != "ok"]
    assert 8 <= len(failed) <= 32  # Binomial(40, 0.5): far inside 4 sd
    kinds = {
        api.calls("/get_container_timeline")[i]["glitch"]["kind"]
        for i in range(40)
        if first[i] != "ok"
    }
    assert len(kinds) >= 3  # several of the endpoint's own kinds, not one text
    injected = api.get("/_sim/chaos").json()["chaos"]["injected"]["glitches"]
    assert sum(injected.values()) == len(failed) == api.stats()["glitches"]
    assert run(7) == first  # the same seed, the same glitches
    assert run(8) != first
    # A config knob as well; a reset of the test control turns it off.
    api.http.delete(api.server.url + "/_sim/chaos")
    assert api.post("/_sim/config", glitch_rate=1.0).json()["glitch_rate"] == 1.0
    assert api.post("/get_container_timeline", session_id=sid, container_id=imp).status_code == 500
    control(api).reset(time_scale=0.001)
    assert api.get("/_sim/config").json()["glitch_rate"] == 0.0
    assert api.post("/_sim/config", glitch_rate=2).status_code == 400


def test_glitch_faults_are_validated(api: Api) -> None:
    for bad in (
        {"endpoint": "/get_session", "mode": "glitch", "kind": "navigation"},
        {"endpoint": "/get_containers", "mode": "glitch", "kind": "dropdown_missing"},
        {"endpoint": "/get_containers", "mode": "glitch", "kind": "download", "step": "plate"},
        {"endpoint": "/check_appointments", "mode": "glitch", "kind": "stale", "step": "nowhere"},
        {"endpoint": "/check_appointments", "mode": "answer"},
    ):
        assert api.post("/_sim/faults", **bad).status_code == 400, bad


# ---------------------------------------------------------------------- test control


def test_the_answer_control_merges_fields_into_the_next_success(
    api: Api, server: SimServer
) -> None:
    """A test control, not real behaviour: it lets tests of fail-closed reading see texts and
    values the page might write."""
    sid = api.login()
    sim = control(api)
    imp = pick(server, "IMPORT", has_pregate_milestone=True, candidate=True, has_slots=True)
    odd = ["Tuesday 10/07/2025 9 to 10ish"]
    sim.answer("/check_appointments", {"available_times": odd, "count": 1})
    checked = api.check(sid, container_type="import", container_id=imp, **phase_fields()).json()
    assert checked["available_times"] == odd and checked["success"] is True
    sim.answer("/check_appointments", {"calendar_found": False})
    export = api.check(
        sid, container_type="export", booking_number="EBKG1", **phase_fields()
    ).json()
    assert export["calendar_found"] is False
    unknown = [{"milestone": "Gated Out Sideways", "date": "N/A", "status": "pending"}]
    sim.answer("/get_container_timeline", {"timeline": unknown, "passed_pregate": None})
    timeline = api.post("/get_container_timeline", session_id=sid, container_id=imp).json()
    assert (timeline["timeline"], timeline["passed_pregate"]) == (unknown, None)
    # Used once; a failure does not use it up.
    normal = api.post("/get_container_timeline", session_id=sid, container_id=imp).json()
    assert normal["timeline"] != unknown
    sim.answer("/get_booking_number", {"booking_number": None})
    failed = api.post("/get_booking_number", session_id=sid, container_id="NOPE")
    assert failed.status_code == 500 and "booking_number" not in failed.json()
