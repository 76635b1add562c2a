"""Tests of the stand-alone E-Modal automation API simulator (``emodal_sim``)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emodal_sim import (
    BAD_CAPTCHA_KEY,
    BUSY_ERROR,
    CHAOS_ERROR,
    DEFAULT_LATENCIES,
    FLAKY_CAPTCHA_KEY,
    NO_BALANCE_CAPTCHA_KEY,
    NOT_FOUND_CONTAINER,
    SESSION_GONE_ERROR,
    UNSOLVABLE_CAPTCHA_KEY,
    WRONG_PASSWORD,
    SimConfig,
    SimServer,
)
from emodal_sim import data as simdata

SCALE = 0.001
IDLE = 2.0
EVICTED_ERROR = "Automation failed: browser session was closed (evicted)"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(time_scale=SCALE, idle_timeout=IDLE), port=0) as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean(server: SimServer) -> Iterator[None]:
    server.state.reset()
    server.state.update_config(
        {
            "time_scale": SCALE,
            "idle_timeout": IDLE,
            "capacity": 10,
            "latencies": dict(DEFAULT_LATENCIES),
        }
    )
    yield


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


class Api:
    def __init__(self, server: SimServer, http: requests.Session) -> None:
        self.server = server
        self.http = http

    def post(self, path: str, **body: Any) -> requests.Response:
        return self.http.post(self.server.url + path, json=body, timeout=30)

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.server.url + path, timeout=30)

    def login(self, username: str = "alice", pw: str = "pw") -> str:
        response = self.post("/get_session", username=username, password=pw, captcha_api_key="key")
        assert response.status_code == 200, response.text
        return response.json()["session_id"]

    def stats(self) -> dict[str, Any]:
        return self.get("/_sim/stats").json()

    def fault(self, **body: Any) -> None:
        assert self.post("/_sim/faults", **body).status_code == 200

    def is_busy(self, session_id: str) -> bool:
        sessions = self.get("/_sim/sessions").json()["sessions"]
        return any(s["session_id"] == session_id and s["busy"] for s in sessions)


@pytest.fixture
def api(server: SimServer, http: requests.Session) -> Api:
    return Api(server, http)


def creds(username: str = "alice") -> dict[str, str]:
    return {"username": username, "password": "pw", "captcha_api_key": "key"}


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.01)


def in_background(fn: Callable[[], requests.Response]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        box["response"] = fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def containers(server: SimServer, username: str = "alice") -> list[dict[str, str]]:
    return simdata.containers_for(username, server.config, server.state.generation(username))


def pick(rows: list[dict[str, str]], trade: str) -> str:
    return next(r["Container #"] for r in rows if r["Trade Type"] == trade)


# --------------------------------------------------------------------- basics


def test_health_unknown_path_and_non_json(api: Api) -> None:
    health = api.get("/health")
    assert health.status_code == 200
    assert health.headers["Content-Type"] == "application/json"
    body = health.json()
    assert body["status"] == "healthy"
    assert body["session_capacity"] == "0/10" and body["max_sessions"] == 10
    assert {"service", "version", "persistent_sessions", "timestamp"} <= set(body)

    missing = api.get("/nope")
    assert missing.status_code == 404 and missing.json()["success"] is False

    for raw in ("not json", "[1, 2]"):
        response = api.http.post(
            api.server.url + "/get_containers",
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json() == {"success": False, "error": "Request must be JSON"}


def test_session_block_rules(api: Api) -> None:
    sid = api.login()
    assert re.fullmatch(r"session_\d+_-?\d+", sid)

    valid = api.post(
        "/get_booking_number", session_id=sid, container_id=pick(containers(api.server), "EXPORT")
    )
    assert valid.status_code == 200
    assert valid.json()["session_id"] == sid and valid.json()["is_new_session"] is False

    relogin = api.post("/get_booking_number", session_id="session_1_1", container_id="X", **creds())
    assert relogin.status_code == 500  # logged in again, then the container was not found
    assert relogin.json()["session_id"] not in (sid, "session_1_1")

    ok = api.post(
        "/get_container_timeline",
        session_id="session_1_1",
        container_id=pick(containers(api.server), "IMPORT"),
        **creds(),
    )
    assert ok.status_code == 200
    assert ok.json()["is_new_session"] is True and ok.json()["session_id"] != sid

    for block in ({"session_id": "session_1_1"}, {}, {"username": "alice", "password": "pw"}):
        gone = api.post("/get_containers", **block)
        assert gone.status_code == 400
        assert gone.json() == {"success": False, "error": SESSION_GONE_ERROR}
    stats = api.stats()
    assert stats["silent_relogins"] == 2 and stats["captcha_solves"] == 3


def test_get_session_reuse_and_missing_fields(api: Api) -> None:
    first = api.post("/get_session", **creds()).json()
    assert first["is_new"] is True and first["expires_at"] is None
    assert first["username"] == "alice" and "created_at" in first and "message" in first
    again = api.post("/get_session", **creds()).json()
    assert again["is_new"] is False and again["session_id"] == first["session_id"]
    other = api.post("/get_session", username="alice", password="other", captcha_api_key="k")
    assert other.json()["is_new"] is True

    stats = api.stats()
    assert stats["sessions_reused"] == 1 and stats["captcha_solves"] == 2
    assert stats["sessions_created"] == 2 and stats["logins"] == 2

    missing = api.post("/get_session", username="alice")
    assert missing.status_code == 400
    assert missing.json()["error"] == "Missing required fields: password, captcha_api_key"


@pytest.mark.parametrize(
    ("overrides", "cause", "solves", "captcha_failures"),
    [
        ({"password": WRONG_PASSWORD}, "invalid_credentials", 1, 0),
        ({"captcha_api_key": BAD_CAPTCHA_KEY}, "recaptcha_failed", 0, 1),
        ({"captcha_api_key": NO_BALANCE_CAPTCHA_KEY}, "recaptcha_failed", 0, 1),
        ({"captcha_api_key": UNSOLVABLE_CAPTCHA_KEY}, "recaptcha_failed", 0, 1),
        ({"username": "vpn-bob"}, "vpn_required", 0, 0),
    ],
)
def test_test_credentials(
    api: Api, overrides: dict[str, str], cause: str, solves: int, captcha_failures: int
) -> None:
    response = api.post("/get_session", **{**creds(), **overrides})
    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False and body["error"] == "Authentication failed"
    assert body["details"].startswith(cause)
    if overrides.get("captcha_api_key") == NO_BALANCE_CAPTCHA_KEY:
        assert "ZERO_BALANCE" in body["details"]
    stats = api.stats()
    assert stats["captcha_solves"] == solves and stats["captcha_failures"] == captcha_failures
    assert stats["login_failures"] == 1 and stats["sessions_created"] == 0

    # The same credentials in a session block fail the same way.
    block = api.post("/get_containers", session_id="gone", **{**creds(), **overrides})
    assert block.status_code == 401 and block.json()["details"].startswith(cause)


def test_flaky_captcha_alternates(api: Api) -> None:
    body = {**creds(), "captcha_api_key": FLAKY_CAPTCHA_KEY}
    first = api.post("/get_session", **body)
    assert first.status_code == 401 and first.json()["details"].startswith("network_error")
    assert api.post("/get_session", **body).status_code == 200
    api.post("/_sim/sessions/delete", session_id=api.login())  # reuse -> same session, drop it
    assert api.post("/get_session", **body).status_code == 401


# -------------------------------------------------------------- session pool


def test_capacity_evicts_busy_lru_session(api: Api) -> None:
    victim = api.login("victim")
    api.fault(endpoint="/get_containers", mode="delay", delay=60_000)  # 60 s real at SCALE
    thread, box = in_background(
        lambda: requests.post(
            api.server.url + "/get_containers",
            json={"session_id": victim, "return_url": True},
            timeout=30,
        )
    )
    wait_for(lambda: api.is_busy(victim))
    started = time.monotonic()
    for i in range(10):  # 9 more fill the pool, the 10th evicts the least recently used
        api.login(f"user{i}")
    thread.join(timeout=10)
    assert time.monotonic() - started < 5  # the evicted call ended at once, not after 60 s
    response = box["response"]
    assert response.status_code == 500
    assert response.json() == {"success": False, "error": EVICTED_ERROR}

    stats = api.stats()
    assert stats["evictions"] == 1 and stats["evictions_busy"] == 1
    assert stats["active_sessions"] == 10 and stats["max_concurrent_sessions"] == 10
    later = api.post("/get_containers", session_id=victim)
    assert later.status_code == 400 and later.json()["error"] == SESSION_GONE_ERROR
    outcomes = {c["outcome"] for c in api.get("/_sim/calls").json()["calls"]}
    assert {"evicted", "session_gone"} <= outcomes
    evicted = api.get("/_sim/evictions").json()["evictions"]
    assert [(e["session_id"], e["username"], e["busy"], e["cause"]) for e in evicted] == [
        (victim, "victim", True, "capacity")
    ]


def test_collision_on_busy_session(api: Api) -> None:
    sid = api.login()
    cid = pick(containers(api.server), "IMPORT")
    api.fault(endpoint="/get_container_timeline", mode="delay", delay=400)
    thread, box = in_background(
        lambda: requests.post(
            api.server.url + "/get_container_timeline",
            json={"session_id": sid, "container_id": cid},
            timeout=30,
        )
    )
    wait_for(lambda: api.is_busy(sid))
    second = api.post("/get_container_timeline", session_id=sid, container_id=cid)
    assert second.status_code == 500
    assert second.json() == {"success": False, "error": BUSY_ERROR}
    thread.join(timeout=10)
    assert box["response"].status_code == 200  # the first call proceeds
    assert api.stats()["collisions"] == 1

    calls = [c for c in api.get("/_sim/calls").json()["calls"] if c["session_id"] == sid]
    served = [c for c in calls if c["outcome"] == "ok"]
    for a in served:
        for b in served:
            assert a is b or a["end"] <= b["start"] or b["end"] <= a["start"]
    assert [c["outcome"] for c in calls].count("collision") == 1


def test_idle_expiry(api: Api) -> None:
    api.post("/_sim/config", idle_timeout=0.2)
    sid = api.login()
    time.sleep(0.3)  # let real time pass beyond the idle timeout
    gone = api.post("/get_containers", session_id=sid)
    assert gone.status_code == 400 and gone.json()["error"] == SESSION_GONE_ERROR
    stats = api.stats()
    assert stats["expired"] == 1 and stats["active_sessions"] == 0
    assert api.post("/get_session", **creds()).json()["is_new"] is True


def test_sessions_list_delete_and_control_expire(api: Api) -> None:
    a, b = api.login("a"), api.login("b")
    listing = api.get("/sessions").json()
    assert listing["success"] is True and listing["active_sessions"] == 2
    entry = next(s for s in listing["sessions"] if s["session_id"] == a)
    assert entry["username"] == "a" and entry["keep_alive"] is False
    assert {"created_at", "last_used", "current_url"} <= set(entry)

    deleted = api.http.delete(f"{api.server.url}/sessions/{a}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    again = api.http.delete(f"{api.server.url}/sessions/{a}")
    assert again.status_code == 404
    assert again.json() == {"success": False, "error": "Session not found"}

    assert api.post("/_sim/sessions/expire", username="b").json()["expired"] == 1
    assert api.post("/get_containers", session_id=b).status_code == 400
    assert api.post("/_sim/sessions/delete", session_id="unknown").status_code == 200
    assert api.stats()["expired"] == 1 and api.stats()["deleted"] == 1


def test_deleting_busy_session_fails_its_call(api: Api) -> None:
    sid = api.login()
    api.fault(endpoint="/get_appointments", mode="delay", delay=60_000)
    thread, box = in_background(
        lambda: requests.post(
            api.server.url + "/get_appointments", json={"session_id": sid}, timeout=30
        )
    )
    wait_for(lambda: api.is_busy(sid))
    assert api.http.delete(f"{api.server.url}/sessions/{sid}").status_code == 200
    thread.join(timeout=10)
    assert box["response"].status_code == 500
    assert (
        box["response"].json()["error"].startswith("Automation failed: browser session was closed")
    )


def test_calls_on_different_sessions_run_concurrently(api: Api) -> None:
    api.post("/_sim/config", latencies={"get_containers_full": 500})
    sids = [api.login(f"par{i}") for i in range(4)]
    since = api.get("/_sim/calls").json()["calls"][-1]["id"]
    started = time.monotonic()
    threads = [
        in_background(
            lambda sid=sid: requests.post(
                api.server.url + "/get_containers", json={"session_id": sid}, timeout=30
            )
        )
        for sid in sids
    ]
    for thread, _ in threads:
        thread.join(timeout=10)
    assert all(box["response"].status_code == 200 for _, box in threads)
    assert time.monotonic() - started < 1.5  # 4 x 0.5 s sequentially would be 2 s
    calls = api.get(f"/_sim/calls?since={since}").json()["calls"]
    assert len(calls) == 4
    assert max(c["start"] for c in calls) < min(c["end"] for c in calls)


# ---------------------------------------------------------------- containers


def test_containers_xlsx_matches_containers_for(api: Api) -> None:
    sid = api.login()
    expected = containers(api.server)
    assert len(expected) == 40 and list(expected[0]) == simdata.COLUMNS

    body = api.post("/get_containers", session_id=sid)
    assert body.status_code == 200 and body.headers["Content-Type"] == XLSX
    assert simdata.read_xlsx(body.content) == expected

    meta = api.post("/get_containers", session_id=sid, return_url=True).json()
    assert meta["success"] is True and meta["is_new_session"] is False
    assert meta["total_containers"] == 40 and meta["scroll_cycles"] >= 1
    assert meta["file_url"].startswith(api.server.url + "/files/")
    served = api.http.get(meta["file_url"])
    assert served.headers["Content-Type"] == XLSX and len(served.content) == meta["file_size"]
    assert simdata.read_xlsx(served.content) == expected

    first = api.post("/get_containers", session_id=sid, return_url=True, infinite_scrolling=False)
    assert first.json()["total_containers"] == "first_page_only"
    rows = simdata.read_xlsx(api.http.get(first.json()["file_url"]).content)
    assert rows == expected[:25]

    limited = api.post("/get_containers", session_id=sid, target_count=7)
    assert simdata.read_xlsx(limited.content) == expected[:7]
    target = expected[12]["Container #"]
    upto = api.post("/get_containers", session_id=sid, target_container_id=target)
    assert simdata.read_xlsx(upto.content) == expected[:13]


def test_data_is_deterministic_and_realistic() -> None:
    config = SimConfig(seed=3)
    rows = simdata.containers_for("alice", config)
    assert rows == simdata.containers_for("alice", SimConfig(seed=3))
    assert rows != simdata.containers_for("alice", SimConfig(seed=4))
    assert rows != simdata.containers_for("bob", config)
    numbers = [r["Container #"] for r in rows]
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"[A-Z]{3}U\d{7}", n) for n in numbers)
    assert all(all(isinstance(v, str) for v in r.values()) for r in rows)
    workable = [r for r in rows if r["Holds"] == "NO" and not r["Pregate Ticket#"]]
    assert len(workable) >= 3 and {"IMPORT", "EXPORT"} <= {r["Trade Type"] for r in workable}
    assert len(simdata.containers_for("bench+c120", config)) == 120


def test_data_advance_changes_served_sheet(api: Api) -> None:
    sid = api.login()
    before = containers(api.server)
    assert api.post("/_sim/data/advance", username="alice", steps=1).json()["generation"] == 1
    after = containers(api.server)
    assert after != before and len(after) == len(before)
    assert {r["Container #"] for r in after} != {r["Container #"] for r in before}
    served = simdata.read_xlsx(api.post("/get_containers", session_id=sid).content)
    assert served == after == simdata.containers_for("alice", api.server.config, 1)


# ------------------------------------------------------------ per-container


def test_timeline_and_booking_number(api: Api) -> None:
    sid = api.login()
    rows = containers(api.server)
    imp, exp = pick(rows, "IMPORT"), pick(rows, "EXPORT")

    timeline = api.post("/get_container_timeline", session_id=sid, container_id=imp).json()
    assert timeline["container_id"] == imp and isinstance(timeline["passed_pregate"], bool)
    assert timeline["milestone_count"] == len(timeline["timeline"])
    names = [m["milestone"] for m in timeline["timeline"]]
    assert {"Manifested", "Departed Terminal", "Empty Received"} <= set(names)
    assert names[-1] == "Manifested"  # newest first
    for m in timeline["timeline"]:
        assert m["status"] in ("completed", "pending")
        assert m["date"] == "N/A" or re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", m["date"])
    assert "detection_method" in timeline

    for path in ("/get_container_timeline", "/get_booking_number"):
        missing = api.post(path, session_id=sid)
        assert missing.status_code == 400
        assert missing.json()["error"] == "Missing required field: container_id"
        for unknown in (NOT_FOUND_CONTAINER, "ABCU0000001"):
            nf = api.post(path, session_id=sid, container_id=unknown)
            assert nf.status_code == 500
            assert nf.json()["error"] == "Search failed: container not found"

    booking = api.post("/get_booking_number", session_id=sid, container_id=exp).json()
    assert re.fullmatch(r"BKG\d{8}", booking["booking_number"])
    imported = api.post("/get_booking_number", session_id=sid, container_id=imp).json()
    assert imported["booking_number"] is None and imported["message"]


def test_info_bulk(api: Api) -> None:
    sid = api.login()
    rows = containers(api.server)
    imports = [r["Container #"] for r in rows if r["Trade Type"] == "IMPORT"][:3]
    exports = [r["Container #"] for r in rows if r["Trade Type"] == "EXPORT"][:2]
    response = api.post(
        "/get_info_bulk",
        session_id=sid,
        import_containers=[*imports, NOT_FOUND_CONTAINER],
        export_containers=exports,
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results["summary"] == {
        "total_import": 4,
        "total_export": 2,
        "import_success": 3,
        "import_failed": 1,
        "export_success": 2,
        "export_failed": 0,
    }
    failed = results["import_results"][-1]
    assert failed["success"] is False and failed["error"] == "Container not found"
    good = results["import_results"][0]
    assert isinstance(good["pregate_status"], bool) and good["milestone_count"] > 0
    assert all(r["booking_number"].startswith("BKG") for r in results["export_results"])

    empty = api.post("/get_info_bulk", session_id=sid, import_containers=[])
    assert empty.status_code == 400
    assert empty.json()["error"] == (
        "At least one of import_containers or export_containers must be non-empty"
    )


def test_check_appointments(api: Api) -> None:
    sid = api.login()
    rows = containers(api.server)
    phase2 = {
        "trucking_company": "K & R",
        "terminal": "LBCT",
        "move_type": "PICK FULL",
        "truck_plate": "7ABC123",
    }
    no_type = api.post("/check_appointments", session_id=sid, **phase2)
    assert no_type.status_code == 400
    no_id = api.post("/check_appointments", session_id=sid, container_type="import", **phase2)
    assert no_id.json() == {
        "success": False,
        "error": "Missing required field: container_id",
        "current_phase": 1,
    }
    no_booking = api.post("/check_appointments", session_id=sid, container_type="export", **phase2)
    assert no_booking.json()["error"] == "Missing required field: booking_number"
    partial = {k: v for k, v in phase2.items() if k != "truck_plate"}
    no_plate = api.post(
        "/check_appointments", session_id=sid, container_type="import", container_id="X", **partial
    )
    assert no_plate.status_code == 400
    assert no_plate.json()["error"] == "Missing required field for Phase 2: truck_plate"
    assert no_plate.json()["current_phase"] == 2

    invalid = api.post(
        "/check_appointments",
        session_id=sid,
        container_type="export",
        booking_number="INVALID123",
        **phase2,
    )
    assert invalid.status_code == 400
    assert invalid.json()["error"] == "Booking number validation failed"
    assert invalid.json()["error_message"] == "Booking number INVALID123 not found"
    assert invalid.json()["current_phase"] == 1
    unknown = api.post(
        "/check_appointments",
        session_id=sid,
        container_type="import",
        container_id=NOT_FOUND_CONTAINER,
        **phase2,
    )
    assert unknown.status_code == 500
    assert unknown.json()["error"] == "Phase 1 failed - container not found"
    assert unknown.json()["current_phase"] == 1

    imp = pick(rows, "IMPORT")
    ok = api.post(
        "/check_appointments", session_id=sid, container_type="import", container_id=imp, **phase2
    ).json()
    assert ok["success"] is True and ok["container_type"] == "import"
    assert ok["appointment_session_id"] and isinstance(ok["phase_data"], dict)
    assert ok["count"] == len(ok["available_times"]) <= 6
    for slot in ok["available_times"]:
        assert re.fullmatch(r"[A-Z][a-z]+day \d\d/\d\d/\d{4} \d\d:00 - \d\d:00", slot)
    png = api.http.get(ok["dropdown_screenshot_url"])
    assert png.headers["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    again = api.post(
        "/check_appointments", session_id=sid, container_type="import", container_id=imp, **phase2
    ).json()
    assert again["available_times"] == ok["available_times"]

    exp = api.post(
        "/check_appointments",
        session_id=sid,
        container_type="export",
        booking_number="BKG12345678",
        **phase2,
    ).json()
    assert isinstance(exp["calendar_found"], bool)
    assert api.http.get(exp["calendar_screenshot_url"]).status_code == 200
    assert api.stats()["appointments_booked"] == 0


def test_get_and_make_appointments(api: Api) -> None:
    sid = api.login()
    listed = api.post("/get_appointments", session_id=sid).json()
    assert listed["success"] is True and listed["selected_count"] >= 3
    rows = simdata.read_xlsx(api.http.get(listed["file_url"]).content)
    assert len(rows) == listed["selected_count"]
    assert list(rows[0]) == simdata.APPOINTMENT_COLUMNS
    limited = api.post("/get_appointments", session_id=sid, target_count=2).json()
    assert limited["selected_count"] == 2

    assert api.stats()["appointments_booked"] == 0
    booked = api.post(
        "/make_appointment", session_id=sid, container_id=pick(containers(api.server), "IMPORT")
    )
    assert booked.status_code == 200
    assert api.stats()["appointments_booked"] == 1
    after = api.post("/get_appointments", session_id=sid).json()
    assert after["selected_count"] == listed["selected_count"] + 1


def test_unknown_file_is_404(api: Api) -> None:
    missing = api.get("/files/nope.xlsx")
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "error": "File not found"}


# ----------------------------------------------------------- control surface


def test_faults(api: Api) -> None:
    sid = api.login()
    api.fault(
        endpoint="/get_containers", count=2, mode="status", status=500, error="Navigation failed: x"
    )
    for _ in range(2):
        failed = api.post("/get_containers", session_id=sid)
        assert failed.status_code == 500
        assert failed.json() == {"success": False, "error": "Navigation failed: x"}
    assert api.post("/get_containers", session_id=sid).status_code == 200  # session survived

    api.fault(endpoint="/get_containers", mode="close")
    with pytest.raises(requests.ConnectionError):
        api.post("/get_containers", session_id=sid)
    assert api.post("/get_containers", session_id=sid).status_code == 200

    api.fault(endpoint="*", mode="non_json")
    html = api.get("/health")
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        html.json()

    api.fault(endpoint="/get_booking_number", mode="delay", delay=300)
    cid = pick(containers(api.server), "EXPORT")
    started = time.monotonic()
    delayed = api.post("/get_booking_number", session_id=sid, container_id=cid)
    assert delayed.status_code == 200 and time.monotonic() - started >= 0.3

    api.fault(endpoint="/get_containers", count=5, mode="status")
    assert len(api.get("/_sim/faults").json()["faults"]) == 1
    assert api.http.delete(api.server.url + "/_sim/faults").status_code == 200
    assert api.post("/get_containers", session_id=sid).status_code == 200
    outcomes = [c["outcome"] for c in api.get("/_sim/calls").json()["calls"]]
    assert outcomes.count("fault") == 4

    bad = api.post("/_sim/faults", endpoint="*", mode="explode")
    assert bad.status_code == 400


def test_call_history_marks_logins_and_created_sessions(api: Api) -> None:
    api.login("alice")
    api.login("alice")  # reused: no login
    api.post("/get_session", username="bob", password=WRONG_PASSWORD, captcha_api_key="key")
    marks = [
        (c["username"], c["login"], c["session_created"])
        for c in api.get("/_sim/calls").json()["calls"]
    ]
    assert marks == [("alice", True, True), ("alice", False, False), ("bob", True, False)]


def test_chaos_errors_fail_calls_without_harming_the_session(api: Api) -> None:
    sid = api.login()
    cid = pick(containers(api.server), "IMPORT")
    chaos = api.post("/_sim/chaos", error_rate=1.0, close_share=0.0).json()["chaos"]
    assert chaos["error_rate"] == 1.0 and chaos["endpoints"] == ["*"]
    for _ in range(3):
        failed = api.post("/get_container_timeline", session_id=sid, container_id=cid)
        assert failed.status_code == 500
        assert failed.json() == {"success": False, "error": CHAOS_ERROR}
    assert api.get("/health").status_code == 200  # the health check is spared

    api.post("/_sim/chaos", error_rate=1.0, close_share=1.0)
    with pytest.raises(requests.ConnectionError):
        api.post("/get_container_timeline", session_id=sid, container_id=cid)
    injected = api.get("/_sim/chaos").json()["chaos"]["injected"]
    assert injected == {"errors": 0, "closes": 1, "evictions": 0}  # counters start afresh

    assert api.http.delete(api.server.url + "/_sim/chaos").json()["chaos"] is None
    ok = api.post("/get_container_timeline", session_id=sid, container_id=cid)
    assert ok.status_code == 200 and ok.json()["session_id"] == sid  # the browser survived
    outcomes = [c["outcome"] for c in api.get("/_sim/calls").json()["calls"]]
    assert outcomes.count("fault") == 4 and api.stats()["evictions"] == 0


def test_chaos_is_random_at_its_rate_and_repeatable_by_seed(api: Api) -> None:
    def outcomes() -> list[int]:
        api.post("/_sim/chaos", error_rate=0.3, close_share=0.0, seed=7)
        return [api.get("/sessions").status_code for _ in range(200)]

    first = outcomes()
    failed = first.count(500)
    # Binomial(200, 0.3): mean 60, sd 6.5; these bounds are more than 4 sd away.
    assert 30 <= failed <= 90 and set(first) == {200, 500}
    assert outcomes() == first  # the same seed, the same decisions
    api.post("/_sim/chaos", error_rate=0.3, close_share=0.0, seed=8)
    assert [api.get("/sessions").status_code for _ in range(200)] != first


def test_chaos_limited_to_named_endpoints(api: Api) -> None:
    sid = api.login()
    cid = pick(containers(api.server), "EXPORT")
    api.post("/_sim/chaos", error_rate=1.0, close_share=0.0, endpoints=["/get_booking_number"])
    timeline = api.post("/get_container_timeline", session_id=sid, container_id=cid)
    assert timeline.status_code == 200
    booking = api.post("/get_booking_number", session_id=sid, container_id=cid)
    assert booking.status_code == 500 and booking.json()["error"] == CHAOS_ERROR
    for bad in (
        {"error_rate": 1.5},
        {"evict_rate": -0.1},
        {"close_share": 2},
        {"endpoints": ["/nope"]},
        {"endpoints": "/get_containers"},
        {"error_rate": "often"},
    ):
        assert api.post("/_sim/chaos", **bad).status_code == 400, bad
    # A rejected change leaves the chaos in force as it was.
    assert api.get("/_sim/chaos").json()["chaos"]["endpoints"] == ["/get_booking_number"]


def test_chaos_eviction_drops_a_busy_session_mid_call(api: Api) -> None:
    victim = api.login("victim")
    # A counted fault keeps the victim's own call out of the chaos roll: it sleeps 60 s.
    api.fault(endpoint="/get_appointments", mode="delay", delay=60_000)
    thread, box = in_background(
        lambda: requests.post(
            api.server.url + "/get_appointments", json={"session_id": victim}, timeout=30
        )
    )
    wait_for(lambda: api.is_busy(victim))
    api.post("/_sim/chaos", evict_rate=1.0)
    started = time.monotonic()
    assert api.get("/sessions").status_code == 200  # this call's roll evicts the only session
    thread.join(timeout=10)
    assert time.monotonic() - started < 5
    assert box["response"].status_code == 500
    assert box["response"].json() == {"success": False, "error": EVICTED_ERROR}

    gone = api.post("/get_appointments", session_id=victim)
    assert gone.status_code == 400 and gone.json()["error"] == SESSION_GONE_ERROR
    stats = api.stats()
    assert stats["evictions"] == 1 and stats["evictions_busy"] == 1
    assert stats["active_sessions"] == 0
    evicted = api.get("/_sim/evictions").json()["evictions"]
    assert [(e["session_id"], e["username"], e["busy"], e["cause"]) for e in evicted] == [
        (victim, "victim", True, "chaos")
    ]
    assert api.get("/_sim/chaos").json()["chaos"]["injected"]["evictions"] == 1
    # With no live session left, a roll that comes up "evict" has nothing to drop.
    api.login("other")  # this login's roll finds no session; the new one is created after it
    assert api.stats()["active_sessions"] == 1


def test_restart_and_reset(api: Api) -> None:
    busy, idle = api.login("busy"), api.login("idle")
    api.fault(endpoint="/get_containers", mode="delay", delay=60_000)
    thread, box = in_background(
        lambda: requests.post(
            api.server.url + "/get_containers", json={"session_id": busy}, timeout=30
        )
    )
    wait_for(lambda: api.is_busy(busy))
    assert api.post("/_sim/restart").status_code == 200
    thread.join(timeout=10)
    assert box["response"].status_code == 500
    assert api.post("/get_containers", session_id=idle).json()["error"] == SESSION_GONE_ERROR
    stats = api.stats()
    assert stats["restarts"] == 1 and stats["active_sessions"] == 0

    api.post("/_sim/config", capacity=1)
    api.login("a")
    api.login("b")  # evicts a
    assert len(api.get("/_sim/evictions").json()["evictions"]) == 1
    api.post("/_sim/data/advance", username="alice")
    api.fault(endpoint="*", count=3)
    api.post("/_sim/chaos", error_rate=0.5)
    assert api.post("/_sim/reset").status_code == 200
    assert api.get("/_sim/chaos").json()["chaos"] is None
    assert api.get("/_sim/evictions").json()["evictions"] == []
    stats = api.stats()
    assert stats["restarts"] == 0 and stats["captcha_solves"] == 0 and stats["calls"] == {}
    assert api.get("/_sim/calls").json()["calls"] == []
    assert api.get("/_sim/faults").json()["faults"] == []
    assert api.server.state.generation("alice") == 0
    assert api.server.state.stats() == api.stats()


def test_stopped_server_refuses_and_hangs_up_then_restarts_on_the_same_port_without_sessions(
    http: requests.Session,
) -> None:
    server = SimServer(SimConfig(time_scale=SCALE), port=0).start()
    try:
        url, api = server.url, Api(server, http)
        kept, busy = api.login("kept"), api.login("busy")
        assert api.post("/get_appointments", session_id=kept).status_code == 200  # kept alive
        api.fault(endpoint="/get_containers", mode="delay", delay=60_000)
        box: dict[str, Any] = {}

        def in_flight() -> None:
            try:
                requests.post(url + "/get_containers", json={"session_id": busy}, timeout=30)
            except requests.ConnectionError as exc:
                box["error"] = exc

        thread = threading.Thread(target=in_flight, daemon=True)
        thread.start()
        wait_for(lambda: api.is_busy(busy))

        server.stop()
        thread.join(timeout=10)
        # The call in flight gets no answer, and nothing more is served on any connection.
        assert "closed connection without response" in str(box["error"])
        for call in (
            lambda: requests.get(url + "/health", timeout=5),
            lambda: http.post(url + "/get_appointments", json={"session_id": kept}, timeout=5),
        ):
            with pytest.raises(requests.ConnectionError):
                call()
        server.stop()  # stopping twice is harmless

        server.start()
        assert server.url == url
        assert api.get("/health").json()["active_sessions"] == 0
        gone = api.post("/get_appointments", session_id=kept)
        assert gone.json()["error"] == SESSION_GONE_ERROR
        assert api.login("kept") not in (kept, busy)
        stats = api.stats()
        assert stats["restarts"] == 1 and stats["active_sessions"] == 1
        assert stats["calls"]["/get_session"] == 3  # the history outlives the restart
    finally:
        server.stop()


def test_a_status_fault_can_carry_details(api: Api) -> None:
    api.fault(
        endpoint="/get_session",
        status=401,
        error="Authentication failed",
        details="recaptcha_failed: ERROR_CAPTCHA_UNSOLVABLE",
    )
    failed = api.post("/get_session", **creds())
    assert failed.status_code == 401
    assert failed.json() == {
        "success": False,
        "error": "Authentication failed",
        "details": "recaptcha_failed: ERROR_CAPTCHA_UNSOLVABLE",
    }
    assert api.post("/get_session", **creds()).status_code == 200


def test_runtime_config(api: Api) -> None:
    updated = api.post("/_sim/config", capacity=3, latencies={"captcha": 1.5}).json()
    assert updated["capacity"] == 3 and updated["latencies"]["captcha"] == 1.5
    assert api.get("/_sim/config").json()["capacity"] == 3
    assert api.get("/health").json()["max_sessions"] == 3
    assert api.post("/_sim/config", latencies={"nope": 1}).status_code == 400
    assert api.post("/_sim/config", capacity=0).status_code == 400
    for i in range(4):
        api.login(f"cap{i}")
    assert api.stats()["evictions"] == 1 and api.stats()["evictions_busy"] == 0


def test_command_line_entry_point() -> None:
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emodal_sim",
            "--port",
            "0",
            "--quiet",
            "--time-scale",
            "0.001",
            "--latency",
            "captcha=2",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = re.search(r"http://\S+", process.stdout.readline())
        assert url is not None
        config = requests.get(url.group(0) + "/_sim/config", timeout=5).json()
        assert config["latencies"]["captcha"] == 2 and config["time_scale"] == 0.001
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
