"""Tests of the stand-alone E-Modal automation API simulator (``emodal_sim``)."""

from __future__ import annotations

import datetime as dt
import io
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emodal_sim import (
    BAD_CAPTCHA_KEY,
    BULK_EMPTY_ERROR,
    BUSY_ERROR,
    CHAOS_ERROR,
    CHECK_SEARCH_FAILED_ERROR,
    CONTAINER_FIELD_ERROR,
    DASHBOARD_ERROR,
    DEFAULT_LATENCIES,
    DEFAULT_TERMINALS,
    DEFAULT_TRUCKING_COMPANIES,
    EXCEL_FAILED_ERROR,
    FLAKY_CAPTCHA_KEY,
    NO_BALANCE_CAPTCHA_KEY,
    NO_CONSOLE_ERROR,
    NO_CONTAINERS_ERROR,
    NOT_FOUND_CONTAINER,
    POISONED_ERROR,
    PREGATE_MISSING_ERROR,
    SEARCH_FAILED_ERROR,
    SESSION_GONE_ERROR,
    STALE_ELEMENT_ERROR,
    TERMINAL_NAMES,
    UNSOLVABLE_CAPTCHA_KEY,
    VERIFICATION_ERROR,
    WRONG_PASSWORD,
    SimConfig,
    SimServer,
)
from emodal_sim import data as simdata
from emodal_sim import endpoints as simendpoints

from ..sim import SimControl

SCALE = 0.001
EVICTED_ERROR = "Automation failed: browser session was closed (evicted)"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BAD_JSON_ERROR = (
    "Unexpected error: 400 Bad Request: The browser (or proxy) sent a request that this server "
    "could not understand."
)
NAIVE_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?"
STAMP = r"\d{8}_\d{6}"
TERMINAL_24H = "Terminal 18"  # a 24-hour page with a container field
TERMINAL_12H = "Total Terminals Intl LLC"
NO_SLOTS = ("No Appointments Available!", "No Appointments Available")


def default_config() -> dict[str, Any]:
    return {
        "time_scale": SCALE,
        "idle_timeout": None,
        "capacity": 10,
        "latencies": dict(DEFAULT_LATENCIES),
        "login_console": True,
        "trucking_companies": list(DEFAULT_TRUCKING_COMPANIES),
        "terminals": list(DEFAULT_TERMINALS),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(time_scale=SCALE), port=0) as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean(server: SimServer) -> Iterator[None]:
    server.state.reset()
    server.state.update_config(default_config())
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

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        calls = self.get("/_sim/calls").json()["calls"]
        return [c for c in calls if endpoint is None or c["endpoint"] == endpoint]

    def fault(self, **body: Any) -> None:
        assert self.post("/_sim/faults", **body).status_code == 200

    def sim_sessions(self) -> list[dict[str, Any]]:
        return self.get("/_sim/sessions").json()["sessions"]

    def is_busy(self, session_id: str) -> bool:
        return any(s["session_id"] == session_id and s["busy"] for s in self.sim_sessions())

    def check(self, session_id: str, **fields: Any) -> requests.Response:
        return self.post("/check_appointments", session_id=session_id, **fields)


@pytest.fixture
def api(server: SimServer, http: requests.Session) -> Api:
    return Api(server, http)


def creds(username: str = "alice") -> dict[str, str]:
    return {"username": username, "password": "pw", "captcha_api_key": "key"}


def phase_fields(terminal: str = TERMINAL_24H, **overrides: Any) -> dict[str, Any]:
    return {
        "trucking_company": DEFAULT_TRUCKING_COMPANIES[0],
        "terminal": terminal,
        "move_type": "PICK FULL",
        "truck_plate": "7ABC123",
        "debug": False,
        **overrides,
    }


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


def post_in_background(api: Api, path: str, **body: Any) -> tuple[threading.Thread, dict[str, Any]]:
    return in_background(lambda: requests.post(api.server.url + path, json=body, timeout=30))


def sheet(server: SimServer, username: str = "alice") -> simdata.Sheet:
    return server.state.sheet(username)


def containers(server: SimServer, username: str = "alice") -> list[dict[str, str]]:
    return simdata.containers_for(username, server.config, server.state.generation(username))


def details(server: SimServer, username: str = "alice") -> dict[str, dict[str, Any]]:
    return simdata.container_details(sheet(server, username), server.config)


def pick(server: SimServer, trade: str, username: str = "alice", **want: Any) -> str:
    """A container of ``username`` with that trade whose details match ``want``."""
    info = details(server, username)
    for row in containers(server, username):
        number = row["Container #"]
        if row["Trade Type"] == trade and all(info[number][k] == v for k, v in want.items()):
            return number
    raise AssertionError(f"no {trade} container with {want}")


def duration(call: dict[str, Any]) -> float:
    return call["end"] - call["start"]


# --------------------------------------------------------------------- basics


def test_health_and_html_pages_for_unknown_routes_and_methods(api: Api) -> None:
    health = api.get("/health")
    assert health.status_code == 200 and health.headers["Content-Type"] == "application/json"
    body = health.json()
    assert body["status"] == "healthy"
    assert body["session_capacity"] == "0/10" and body["max_sessions"] == 10
    assert {"service", "version", "persistent_sessions"} <= set(body)
    assert re.fullmatch(NAIVE_TIME, body["timestamp"])  # naive local time, no zone

    for method, path, status in (
        ("GET", "/nope", 404),
        ("POST", "/get_sessions", 404),
        ("GET", "/get_session", 405),
        ("POST", "/health", 405),
        ("PUT", "/sessions/abc", 405),
        ("POST", "/files/x.xlsx", 405),
        ("GET", "/cleanup", 405),
    ):
        answer = api.http.request(method, api.server.url + path, timeout=10)
        assert answer.status_code == status, (method, path)
        assert answer.headers["Content-Type"].startswith("text/html"), (method, path)
        assert answer.text.startswith("<!doctype html>")
        with pytest.raises(ValueError):
            answer.json()
    # The control surface stays JSON.
    control = api.get("/_sim/nope")
    assert control.status_code == 404 and control.json()["success"] is False


def test_request_bodies_are_read_like_flask(api: Api) -> None:
    url = api.server.url
    plain = {"Content-Type": "text/plain"}
    as_json = {"Content-Type": "application/json"}
    # Operation endpoints refuse a non-JSON content type with a 400.
    refused = api.http.post(url + "/get_containers", data='{"session_id": "x"}', headers=plain)
    assert refused.status_code == 400
    assert refused.json() == {"success": False, "error": "Request must be JSON"}
    # get_session answers it with a 500.
    login = api.http.post(url + "/get_session", data="username=a", headers=plain)
    assert login.status_code == 500 and login.json()["error"].startswith("Unexpected error: 415")
    # Malformed JSON under a JSON content type is a 500 on every POST endpoint.
    for path in (*simendpoints.OPERATION_ENDPOINTS, "/get_session"):
        bad = api.http.post(url + path, data="{not json", headers=as_json)
        assert bad.status_code == 500, path
        assert bad.json() == {"success": False, "error": BAD_JSON_ERROR}
    listed = api.http.post(url + "/get_containers", data="[1, 2]", headers=as_json)
    assert listed.status_code == 500
    assert listed.json()["error"] == "Unexpected error: 'list' object has no attribute 'get'"
    # The vendor +json types count as JSON.
    vendor = api.http.post(
        url + "/get_containers", data="{}", headers={"Content-Type": "application/x+json"}
    )
    assert vendor.status_code == 400 and vendor.json()["error"] == SESSION_GONE_ERROR
    assert api.stats()["sessions_created"] == 0


def test_a_crash_answers_an_html_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setitem(simendpoints.POST_ENDPOINTS, "/get_containers", boom)
    crashed = api.post("/get_containers", session_id="x")
    assert crashed.status_code == 500 and crashed.headers["Content-Type"].startswith("text/html")
    assert "Internal Server Error" in crashed.text
    assert api.calls("/get_containers")[-1]["error"] == "crash: RuntimeError: bug"


# ------------------------------------------------------------------- sessions


def test_session_ids_share_a_user_suffix_and_stay_unique(api: Api) -> None:
    first = api.login("alice", "pw1")
    second = api.login("alice", "pw2")  # same second, same user: still a new id
    other = api.login("bob")
    pattern = r"session_(\d+)_(-?\d+)"
    a1, a2, b = (re.fullmatch(pattern, s) for s in (first, second, other))
    assert a1 and a2 and b
    assert first != second and a1.group(2) == a2.group(2) != b.group(2)
    assert -(2**63) <= int(a1.group(2)) < 2**63
    assert abs(int(a1.group(1)) - time.time()) < 60


def test_get_session_reuse_naive_times_and_missing_fields(api: Api) -> None:
    first = api.post("/get_session", **creds()).json()
    assert first["is_new"] is True and first["expires_at"] is None
    assert first["username"] == "alice" and "message" in first
    assert re.fullmatch(NAIVE_TIME, first["created_at"])
    again = api.post("/get_session", **creds()).json()
    assert again["is_new"] is False and again["session_id"] == first["session_id"]
    other = api.post("/get_session", username="alice", password="other", captcha_api_key="k")
    assert other.json()["is_new"] is True

    stats = api.stats()
    assert stats["sessions_reused"] == 1 and stats["captcha_solves"] == 2
    assert stats["sessions_created"] == 2 and stats["logins"] == 2
    assert stats["login_attempts"] == 2

    for body in ({"username": "alice"}, {}, {**creds(), "captcha_api_key": ""}):
        missing = api.post("/get_session", **body)
        assert missing.status_code == 400
        assert missing.json()["error"] == (
            "Missing required fields: username, password, captcha_api_key"
        )


def test_session_block_rules(api: Api) -> None:
    sid = api.login()
    imp = pick(api.server, "IMPORT", has_pregate_milestone=True)
    valid = api.post("/get_container_timeline", session_id=sid, container_id=imp)
    assert valid.status_code == 200
    assert valid.json()["session_id"] == sid and valid.json()["is_new_session"] is False

    # An unknown id with credentials falls back to the live session of the same account.
    reused = api.post(
        "/get_container_timeline", session_id="session_1_1", container_id=imp, **creds()
    )
    assert reused.status_code == 200
    assert reused.json()["session_id"] == sid and reused.json()["is_new_session"] is False
    assert api.stats()["captcha_solves"] == 1

    # With no live session of that account, it logs in silently (a captcha spent).
    fresh = api.post(
        "/get_container_timeline",
        session_id="session_1_1",
        container_id=imp,
        **{**creds(), "password": "other"},
    )
    assert fresh.status_code == 200
    assert fresh.json()["is_new_session"] is True and fresh.json()["session_id"] != sid

    for block in ({"session_id": "session_1_1"}, {}, {"username": "alice", "password": "pw"}):
        gone = api.post("/get_containers", **block)
        assert gone.status_code == 400
        assert gone.json() == {"success": False, "error": SESSION_GONE_ERROR}
    stats = api.stats()
    assert stats["silent_relogins"] == 1 and stats["captcha_solves"] == 2
    assert stats["sessions_reused"] == 1


@pytest.mark.parametrize(
    ("overrides", "details", "solves", "captcha_failures"),
    [
        ({"password": WRONG_PASSWORD}, "LoginErrorType.INVALID_CREDENTIALS", 1, 0),
        ({"captcha_api_key": BAD_CAPTCHA_KEY}, "LoginErrorType.RECAPTCHA_FAILED", 0, 1),
        ({"captcha_api_key": NO_BALANCE_CAPTCHA_KEY}, "LoginErrorType.RECAPTCHA_FAILED", 0, 1),
        ({"captcha_api_key": UNSOLVABLE_CAPTCHA_KEY}, "LoginErrorType.RECAPTCHA_FAILED", 0, 1),
        ({"username": "vpn-bob"}, "LoginErrorType.VPN_REQUIRED", 0, 0),
        ({"username": "unknown-bob"}, "LoginErrorType.UNKNOWN_ERROR", 1, 0),
        ({"username": "nobutton-bob"}, "LoginErrorType.LOGIN_BUTTON_NOT_FOUND", 1, 0),
        ({"username": "pageload-bob"}, "LoginErrorType.PAGE_LOAD_ERROR", 0, 0),
        ({"username": "dashboard-bob"}, None, 1, 0),
        ({"username": "verify-bob"}, None, 1, 0),
    ],
)
def test_login_failures_wait_for_the_operator_then_answer_like_the_real_server(
    api: Api,
    overrides: dict[str, str],
    details: str | None,
    solves: int,
    captcha_failures: int,
) -> None:
    # Only the manual wait takes time here: 100 simulated s = 0.1 s real.
    zero = dict.fromkeys(DEFAULT_LATENCIES, 0.0)
    api.post("/_sim/config", latencies={**zero, "manual_login_wait": 100})
    response = api.post("/get_session", **{**creds(), **overrides})
    assert response.status_code == 401
    body = response.json()
    if details is None:
        expected = DASHBOARD_ERROR if "dashboard" in overrides["username"] else VERIFICATION_ERROR
        assert body == {"success": False, "error": expected}  # no details key at all
    else:
        assert body == {"success": False, "error": "Authentication failed", "details": details}
    assert duration(api.calls("/get_session")[-1]) >= 0.1  # the manual-login wait was spent
    stats = api.stats()
    assert stats["captcha_solves"] == solves and stats["captcha_failures"] == captcha_failures
    assert stats["login_failures"] == 1 and stats["login_attempts"] == 1
    assert stats["sessions_created"] == 0 and stats["logins"] == 0

    # The same credentials in a session block fail the same way.
    block = api.post("/get_containers", session_id="gone", **{**creds(), **overrides})
    assert block.status_code == 401 and block.json() == body
    assert api.stats()["login_attempts"] == 2


def test_without_a_console_failed_logins_answer_at_once_with_eof(api: Api) -> None:
    zero = dict.fromkeys(DEFAULT_LATENCIES, 0.0)
    api.post("/_sim/config", login_console=False, latencies={**zero, "manual_login_wait": 5000})
    for overrides in (
        {"password": WRONG_PASSWORD},
        {"username": "vpn-bob"},
        {"username": "dashboard-bob"},
        {"captcha_api_key": BAD_CAPTCHA_KEY},
    ):
        started = time.monotonic()
        response = api.post("/get_session", **{**creds(), **overrides})
        assert time.monotonic() - started < 2.5  # the 5 s manual wait was not spent
        assert response.status_code == 401
        assert response.json() == {"success": False, "error": NO_CONSOLE_ERROR}
    assert api.post("/get_session", **creds()).status_code == 200  # good logins still work
    stats = api.stats()
    assert stats["login_failures"] == 4 and stats["login_attempts"] == 5
    assert stats["captcha_solves"] == 3 and stats["captcha_failures"] == 1
    assert api.get("/_sim/config").json()["login_console"] is False


def test_flaky_captcha_alternates(api: Api) -> None:
    body = {**creds(), "captcha_api_key": FLAKY_CAPTCHA_KEY}
    first = api.post("/get_session", **body)
    assert first.status_code == 401
    assert first.json()["details"] == "LoginErrorType.NETWORK_ERROR"
    second = api.post("/get_session", **body)
    assert second.status_code == 200
    api.post("/_sim/sessions/delete", session_id=second.json()["session_id"])
    assert api.post("/get_session", **body).status_code == 401


def test_sessions_never_idle_out_by_default(api: Api, server: SimServer) -> None:
    sid = api.login()
    # Ten simulated hours (36 real seconds at this scale) without a call.
    server.state._sessions[sid].last_used_mono -= 36_000 * SCALE
    server.state._sessions[sid].driven_mono -= 36_000 * SCALE
    served = api.post("/get_containers", session_id=sid, debug=False)
    assert served.status_code == 200
    assert api.stats()["expired"] == 0 and api.stats()["active_sessions"] == 1
    assert api.get("/_sim/config").json()["idle_timeout"] is None


def test_idle_expiry_is_an_option(api: Api, server: SimServer) -> None:
    assert api.post("/_sim/config", idle_timeout=5).json()["idle_timeout"] == 5
    sid = api.login()
    server.state._sessions[sid].last_used_mono -= 6  # real seconds: past the timeout
    gone = api.post("/get_containers", session_id=sid)
    assert gone.status_code == 400 and gone.json()["error"] == SESSION_GONE_ERROR
    stats = api.stats()
    assert stats["expired"] == 1 and stats["active_sessions"] == 0
    assert api.post("/_sim/config", idle_timeout=0).json()["idle_timeout"] is None
    assert api.post("/_sim/config", idle_timeout=-1).status_code == 400


def test_keep_alive_moves_idle_browsers_and_the_next_call_pays_to_come_back(
    api: Api, server: SimServer
) -> None:
    api.post("/_sim/config", latencies={"page_return": 300})  # 0.3 s real
    sid = api.login()
    imp = pick(api.server, "IMPORT", has_pregate_milestone=True)
    quick = api.post("/get_container_timeline", session_id=sid, container_id=imp, debug=False)
    assert quick.status_code == 200
    server.state._sessions[sid].driven_mono -= 301 * SCALE  # idle past keep_alive_idle
    listed = api.get("/sessions").json()["sessions"][0]
    assert listed["current_url"].endswith("/dashboard")
    assert api.login() == sid  # handing the session back does not bring the page back
    slow = api.post("/get_container_timeline", session_id=sid, container_id=imp, debug=False)
    assert slow.status_code == 200
    first, second = api.calls("/get_container_timeline")
    assert first["page_return"] is False and second["page_return"] is True
    assert duration(second) >= 0.3 > duration(first)
    assert api.stats()["page_returns"] == 1
    assert api.get("/sessions").json()["sessions"][0]["current_url"].endswith("/containers")


def test_sessions_listing_shape_delete_and_control_expire(api: Api) -> None:
    a, b = api.login("a"), api.login("b")
    listing = api.get("/sessions").json()
    assert set(listing) == {"active_sessions", "sessions"}  # no "success" key
    assert listing["active_sessions"] == 2
    entry = next(s for s in listing["sessions"] if s["session_id"] == a)
    assert entry["username"] == "a" and entry["keep_alive"] is True
    assert re.fullmatch(NAIVE_TIME, entry["created_at"])
    assert re.fullmatch(NAIVE_TIME, entry["last_used"])
    assert "current_url" in entry

    deleted = api.http.delete(f"{api.server.url}/sessions/{a}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    again = api.http.delete(f"{api.server.url}/sessions/{a}")
    assert again.status_code == 404
    assert again.json() == {"success": False, "error": "Session not found"}

    assert api.post("/_sim/sessions/expire", username="b").json()["expired"] == 1
    assert api.post("/get_containers", session_id=b).status_code == 400
    assert api.post("/_sim/sessions/delete", session_id="unknown").status_code == 200
    assert api.stats()["expired"] == 1 and api.stats()["deleted"] == 1


def test_capacity_evicts_busy_lru_session(api: Api) -> None:
    victim = api.login("victim")
    api.fault(endpoint="/get_containers", mode="delay", delay=60_000)  # 60 s real at SCALE
    thread, box = post_in_background(api, "/get_containers", session_id=victim, return_url=True)
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
    outcomes = {c["outcome"] for c in api.calls()}
    assert {"evicted", "session_gone"} <= outcomes
    evicted = api.get("/_sim/evictions").json()["evictions"]
    assert [(e["session_id"], e["username"], e["busy"], e["cause"]) for e in evicted] == [
        (victim, "victim", True, "capacity")
    ]


def test_no_busy_guard_two_calls_on_one_browser_both_run_and_return_garbage(api: Api) -> None:
    sid = api.login()
    rows = containers(api.server)
    info = details(api.server)
    first_id, second_id = [
        r["Container #"]
        for r in rows
        if r["Trade Type"] == "IMPORT" and info[r["Container #"]]["has_pregate_milestone"]
    ][:2]

    # Same endpoint: the later call hands back the earlier call's answer (mixed-up data).
    api.fault(endpoint="/get_container_timeline", mode="delay", delay=400)
    thread, box = post_in_background(
        api, "/get_container_timeline", session_id=sid, container_id=first_id, debug=False
    )
    wait_for(lambda: api.is_busy(sid))
    later = api.post("/get_container_timeline", session_id=sid, container_id=second_id)
    thread.join(timeout=10)
    assert box["response"].status_code == 200
    assert later.status_code == 200 and later.json() == box["response"].json()
    assert later.json()["container_id"] == first_id  # not what was asked for

    # Different endpoints: the later call fails on a stale element.
    api.fault(endpoint="/get_container_timeline", mode="delay", delay=400)
    thread, box = post_in_background(
        api, "/get_container_timeline", session_id=sid, container_id=first_id
    )
    wait_for(lambda: api.is_busy(sid))
    stale = api.post("/get_booking_number", session_id=sid, container_id=second_id, debug=False)
    thread.join(timeout=10)
    assert box["response"].status_code == 200
    assert stale.status_code == 500
    assert stale.json() == {"success": False, "error": STALE_ELEMENT_ERROR, "session_id": sid}
    assert BUSY_ERROR == STALE_ELEMENT_ERROR

    stats = api.stats()
    assert stats["collisions"] == 2
    outcomes = [c["outcome"] for c in api.calls() if c["session_id"] == sid]
    assert outcomes.count("collision") == 2 and outcomes.count("ok") == 2


def test_deleting_busy_session_fails_its_call(api: Api) -> None:
    sid = api.login()
    api.fault(endpoint="/get_appointments", mode="delay", delay=60_000)
    thread, box = post_in_background(api, "/get_appointments", session_id=sid)
    wait_for(lambda: api.is_busy(sid))
    assert api.http.delete(f"{api.server.url}/sessions/{sid}").status_code == 200
    thread.join(timeout=10)
    assert box["response"].status_code == 500
    assert (
        box["response"].json()["error"].startswith("Automation failed: browser session was closed")
    )


@pytest.mark.parametrize("path", ["/cleanup", "/emergency_recovery"])
def test_operator_cleanup_drops_every_session_at_once(api: Api, path: str) -> None:
    busy, idle = api.login("busy"), api.login("idle")
    api.fault(endpoint="/get_containers", mode="delay", delay=60_000)
    thread, box = post_in_background(api, "/get_containers", session_id=busy)
    wait_for(lambda: api.is_busy(busy))
    answer = api.http.post(api.server.url + path, timeout=10)  # no body needed
    assert answer.status_code == 200
    assert answer.json()["success"] is True and answer.json()["sessions_closed"] == 2
    thread.join(timeout=10)
    assert box["response"].status_code == 500
    gone = api.post("/get_containers", session_id=idle)
    assert gone.status_code == 400 and gone.json()["error"] == SESSION_GONE_ERROR
    assert api.stats()["active_sessions"] == 0 and api.stats()["cleanups"] == 1


def test_calls_on_different_sessions_run_concurrently(api: Api) -> None:
    api.post("/_sim/config", latencies={"get_containers_full": 500})
    sids = [api.login(f"par{i}") for i in range(4)]
    since = api.calls()[-1]["id"]
    started = time.monotonic()
    threads = [post_in_background(api, "/get_containers", session_id=sid) for sid in sids]
    for thread, _ in threads:
        thread.join(timeout=10)
    assert all(box["response"].status_code == 200 for _, box in threads)
    assert time.monotonic() - started < 1.5  # 4 x 0.5 s sequentially would be 2 s
    calls = api.get(f"/_sim/calls?since={since}").json()["calls"]
    assert len(calls) == 4
    assert max(c["start"] for c in calls) < min(c["end"] for c in calls)
    assert api.stats()["collisions"] == 0


def test_debug_is_on_unless_false_and_costs_a_bundle(api: Api) -> None:
    api.post("/_sim/config", latencies={"debug_bundle": 150})  # 0.15 s real
    sid = api.login()
    exp = pick(api.server, "EXPORT")
    default = api.post("/get_booking_number", session_id=sid, container_id=exp)
    url = default.json()["debug_bundle_url"]
    assert re.fullmatch(re.escape(api.server.url) + rf"/files/{sid}/debug_bundle_{STAMP}\.zip", url)
    bundle = api.http.get(url)
    assert bundle.headers["Content-Type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    explicit = api.post("/get_booking_number", session_id=sid, container_id=exp, debug=True)
    assert "debug_bundle_url" in explicit.json()
    off = api.post("/get_booking_number", session_id=sid, container_id=exp, debug=False)
    assert "debug_bundle_url" not in off.json()
    # Failures carry the bundle too.
    failed = api.post("/get_booking_number", session_id=sid, container_id=NOT_FOUND_CONTAINER)
    assert failed.status_code == 500 and "debug_bundle_url" in failed.json()

    calls = api.calls("/get_booking_number")
    assert [c["debug"] for c in calls] == [True, True, False, True]
    assert duration(calls[0]) >= 0.15 > duration(calls[2])
    assert api.stats()["debug_bundles"] == 3
    assert api.calls("/get_session")[0]["debug"] is None  # not an operation


def test_call_history_keeps_params_without_secrets(api: Api) -> None:
    sid = api.login()
    api.check(
        sid,
        container_type="import",
        container_id="MSKU0000001",
        line="MAERSK",
        equip_size="40DH",
        own_chassis=False,
        **phase_fields(),
    )
    api.post("/get_info_bulk", session_id=sid, import_containers=["A", "B"], target_count=3)
    api.post("/get_containers", session_id="x", **creds())
    check, bulk, relogin = (
        api.calls(p)[-1] for p in ("/check_appointments", "/get_info_bulk", "/get_containers")
    )
    assert check["params"] == {
        "container_type": "import",
        "container_id": "MSKU0000001",
        "line": "MAERSK",
        "equip_size": "40DH",
        "own_chassis": False,
        **phase_fields(),
    }
    assert check["params"]["debug"] is False and check["debug"] is False
    assert bulk["params"] == {"import_containers": ["A", "B"], "target_count": 3}
    assert relogin["params"] == {}
    assert api.calls("/get_session")[0]["params"] == {}
    for call in api.calls():
        assert not {"password", "captcha_api_key", "session_id", "username"} & set(
            call["params"] or {}
        )


# ----------------------------------------------------------------- containers


def test_containers_xlsx_matches_containers_for_and_file_urls(api: Api) -> None:
    sid = api.login()
    expected = containers(api.server)
    assert len(expected) == 40 and list(expected[0]) == simdata.COLUMNS

    body = api.post("/get_containers", session_id=sid)
    assert body.status_code == 200 and body.headers["Content-Type"] == XLSX
    assert re.search(rf"containers_scraped_{STAMP}\.xlsx", body.headers["Content-Disposition"])
    assert simdata.read_xlsx(body.content) == expected

    meta = api.post("/get_containers", session_id=sid, return_url=True).json()
    assert meta["success"] is True and meta["is_new_session"] is False
    assert meta["total_containers"] == 40 and meta["scroll_cycles"] >= 1
    pattern = re.escape(api.server.url) + rf"/files/{sid}/containers_scraped_{STAMP}\.xlsx"
    assert re.fullmatch(pattern, meta["file_url"])
    assert meta["file_url"].endswith("/" + meta["file_name"])
    served = api.http.get(meta["file_url"])
    assert served.headers["Content-Type"] == XLSX and len(served.content) == meta["file_size"]
    assert simdata.read_xlsx(served.content) == expected

    # Two exports in the same second get different names; neither overwrites the other.
    again = api.post("/get_containers", session_id=sid, return_url=True, target_count=3).json()
    assert again["file_url"] != meta["file_url"] and re.fullmatch(pattern, again["file_url"])
    assert simdata.read_xlsx(api.http.get(meta["file_url"]).content) == expected
    assert simdata.read_xlsx(api.http.get(again["file_url"]).content) == expected[:3]

    first = api.post("/get_containers", session_id=sid, return_url=True, infinite_scrolling=False)
    assert first.json()["total_containers"] == "first_page_only"
    rows = simdata.read_xlsx(api.http.get(first.json()["file_url"]).content)
    assert rows == expected[:25]
    target = expected[12]["Container #"]
    upto = api.post("/get_containers", session_id=sid, target_container_id=target)
    assert simdata.read_xlsx(upto.content) == expected[:13]


def test_sheet_follows_the_real_conventions() -> None:
    rows = simdata.containers_for("real+c385", SimConfig())
    assert len(rows) == 385
    cells = [v for r in rows for v in r.values()]
    assert all(isinstance(v, str) and v.strip() for v in cells)  # text, never blank
    known = [r for r in rows if r["Trade Type"] != "N/A"]
    unknown = [r for r in rows if r["Trade Type"] == "N/A"]
    assert 1 <= len(unknown) <= 20  # ~2%: N/A in every column but the number
    for row in unknown:
        assert {v for k, v in row.items() if k != "Container #"} == {"N/A"}

    def values(column: str) -> set[str]:
        return {r[column] for r in known}

    masks = {"N/A *******", "**************"}
    assert values("Holds") == {"YES", "NO", "N/A"}
    assert values("Trade Type") == {"IMPORT", "EXPORT"}
    assert values("Status") == {"GATE OUT", "IN YARD", "ON VESSEL", "GATE IN", "N/A"}
    pregate = {"COMPLETED", "MISSED", "CONFIRMED", "CANCELED", "N/A"}
    assert pregate <= values("Emodal Pregate Status") <= pregate | masks
    assert masks & values("Emodal Pregate Status")
    gate = {"ACCEPTED", "CONFIRMED", "REJECTED", "N/A"}
    assert gate <= values("Gate Status") <= gate | masks and masks & values("Gate Status")
    tickets = values("Pregate Ticket#")
    assert {"N/A", "N/A *******", "**************"} <= tickets
    for ticket in tickets - masks - {"N/A"}:
        assert re.fullmatch(r"[A-Z0-9]+-\d{4}-\d{5} \d{6}", ticket), ticket
    codes = set(TERMINAL_NAMES) | set(simdata.UNNAMED_TERMINAL_CODES) | {"N/A"}
    for column in ("Origin", "Destination", "Current Loc"):
        assert values(column) <= codes and "N/A" in values(column)
    for lfd in values("LFD/GTD") - {"N/A"}:
        assert re.fullmatch(r"\d\d/\d\d/\d{4} - \d\d/\d\d/\d{4}", lfd)
    ranges = [r["LFD/GTD"].split(" - ") for r in known if r["LFD/GTD"] != "N/A"]
    differing = sum(1 for a, b in ranges if a != b)
    assert 0 < differing < len(ranges) * 0.3  # equal in most rows, different in a few
    assert values("Fees") == values("Tags") == {"N/A", "info"}
    assert {"40DH", "20GP", "45DH", "40RH"} <= values("Size Type")
    assert values("Size Type") & {"4310", "22G1", "45G1"}
    assert all(re.fullmatch(r"\d{7}", v) for v in values("Vessel Code"))
    assert {"MAERSK", "MSC", "CMA CGM"} <= values("Line")


def test_sheet_shares_candidates_na_destinations_and_unnamed_codes() -> None:
    config = SimConfig()
    for username in ("real+c385", "other+c385"):
        rows = simdata.containers_for(username, config)
        candidates = [r for r in rows if simdata.is_candidate(r)]
        assert 0.04 <= len(candidates) / len(rows) <= 0.11, username  # real sheet: 12 of 385
        imports = [r for r in rows if r["Trade Type"] == "IMPORT"]
        na_destination = sum(1 for r in imports if r["Destination"] == "N/A") / len(imports)
        assert 0.7 <= na_destination <= 0.9
        assert any(r["Current Loc"] == "N/A" for r in imports)
        cells = [
            r[c] for r in rows for c in ("Origin", "Destination", "Current Loc") if r[c] != "N/A"
        ]
        unnamed = sum(1 for c in cells if c not in TERMINAL_NAMES) / len(cells)
        assert 0.07 <= unnamed <= 0.17, unnamed
        lfd_na = sum(1 for r in rows if r["LFD/GTD"] == "N/A") / len(rows)
        assert 0.07 <= lfd_na <= 0.2
        # The rule accepts a masked "N/A *******" ticket too.
        assert {r["Pregate Ticket#"] for r in candidates} == {"N/A", "N/A *******"}


@pytest.mark.parametrize("username", ["alice", "bob", "demo", "carol@example.com"])
def test_default_accounts_have_mixed_candidates(username: str) -> None:
    config = SimConfig()
    sheet_ = simdata.sheet_for(username, config)
    info = simdata.container_details(sheet_, config)
    candidates = [r for r in sheet_.rows if simdata.is_candidate(r)]
    assert 4 <= len(candidates) <= 12
    assert {"IMPORT", "EXPORT"} <= {r["Trade Type"] for r in candidates}
    assert any(info[r["Container #"]]["terminal"] not in TERMINAL_NAMES for r in candidates)
    assert any(r["Destination"] == "N/A" for r in candidates if r["Trade Type"] == "IMPORT")
    assert any(info[r["Container #"]]["passed_pregate"] for r in candidates)  # a DROP EMPTY
    assert any(info[r["Container #"]]["has_slots"] is False for r in candidates)
    for row in candidates:
        if row["Trade Type"] == "EXPORT":
            assert info[row["Container #"]]["booking_number"]


def test_an_account_without_containers_fails_the_download(api: Api) -> None:
    sid = api.login("empty+c0")
    for body in ({}, {"return_url": True}, {"infinite_scrolling": False}):
        failed = api.post("/get_containers", session_id=sid, debug=False, **body)
        assert failed.status_code == 500
        assert failed.json() == {"success": False, "error": NO_CONTAINERS_ERROR, "session_id": sid}


def test_data_is_deterministic_and_big_sheets_are_fast(api: Api) -> None:
    config = SimConfig(seed=3)
    rows = simdata.containers_for("alice", config)
    assert rows == simdata.containers_for("alice", SimConfig(seed=3))
    assert rows != simdata.containers_for("alice", SimConfig(seed=4))
    assert rows != simdata.containers_for("bob", config)
    numbers = [r["Container #"] for r in rows]
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"[A-Z]{3}U\d{7}", n) for n in numbers)
    assert len(simdata.containers_for("bench+c120", config)) == 120

    started = time.monotonic()
    assert len(api.server.state.containers("bench+c10000")) == 10_000
    assert api.server.state.containers("bench+c10000") is api.server.state.containers(
        "bench+c10000"
    )  # cached
    assert time.monotonic() - started < 5


def test_generations_change_what_a_dispatcher_watches(api: Api) -> None:
    control = SimControl(api.server.url)
    sid = api.login()
    before = containers(api.server)
    info_before = details(api.server)
    changes = control.changes("alice")
    assert changes == simdata.changes_between("alice", api.server.config, 0)
    assert all(changes[kind] for kind in simdata.CHANGE_KINDS), changes

    # A container with no slots now gets one in the next generation.
    opened = changes["slots_opened"][0]
    fields = {"container_type": "import", "container_id": opened, **phase_fields()}
    now = api.check(sid, **fields).json()
    assert now["available_times"][0] in NO_SLOTS and now["count"] == 1

    control.advance("alice")
    after = containers(api.server)
    info_after = details(api.server)
    old = {r["Container #"]: r for r in before}
    new = {r["Container #"]: r for r in after}
    assert len(after) == len(before)
    assert set(changes["removed"]) == set(old) - set(new)
    assert set(changes["added"]) == set(new) - set(old)
    for number in changes["lfd"]:
        (a1, a2), (b1, b2) = (r[number]["LFD/GTD"].split(" - ") for r in (old, new))
        shift = {
            (dt.datetime.strptime(b, "%m/%d/%Y") - dt.datetime.strptime(a, "%m/%d/%Y")).days  # noqa: DTZ007
            for a, b in ((a1, b1), (a2, b2))
        }
        assert len(shift) == 1 and 1 <= shift.pop() <= 3  # the whole range moved
    for number in changes["holds_released"]:
        assert (old[number]["Holds"], new[number]["Holds"]) == ("YES", "NO")
    for number in changes["pregate_ticket_set"]:
        assert re.fullmatch(r"N/A( \*+)?", old[number]["Pregate Ticket#"])
        assert not re.fullmatch(r"N/A( \*+)?", new[number]["Pregate Ticket#"])
    for number in changes["status"]:
        assert info_after[number]["progress"] == info_before[number]["progress"] + 1
    untouched = set(old) - {n for kind in changes.values() for n in kind}
    assert all(old[n] == new[n] for n in untouched)

    later = api.check(sid, **fields).json()
    assert later["available_times"][0] not in NO_SLOTS and later["count"] >= 1

    served = simdata.read_xlsx(api.post("/get_containers", session_id=sid).content)
    assert served == after == simdata.containers_for("alice", api.server.config, 1)
    assert control.containers("alice", generation=0)["containers"] == before
    current = control.containers("alice")
    assert current["generation"] == 1 and current["containers"] == after
    assert current["details"][opened]["has_slots"] is True


# -------------------------------------------------------------- per container


def test_timeline_labels_pregate_and_detection(api: Api, server: SimServer) -> None:
    sid = api.login()
    info = details(server)
    seen_labels: set[str] = set()
    methods: set[str] = set()
    for row in containers(server):
        number = row["Container #"]
        if not info[number]["has_pregate_milestone"]:
            continue
        answer = api.post("/get_container_timeline", session_id=sid, container_id=number)
        body = answer.json()
        assert answer.status_code == 200 and body["container_id"] == number
        assert body["passed_pregate"] is info[number]["passed_pregate"]
        assert body["milestone_count"] == len(body["timeline"])
        names = [m["milestone"] for m in body["timeline"]]
        seen_labels.update(names)
        methods.add(body["detection_method"])
        assert "Pregate" in names
        pregate = next(m for m in body["timeline"] if m["milestone"] == "Pregate")
        assert body["passed_pregate"] is (pregate["status"] == "completed")
        statuses = [m["status"] for m in body["timeline"]]
        # Newest first: pending milestones lead, completed ones follow.
        assert statuses == sorted(statuses, key=lambda s: s == "completed")
        for m in body["timeline"]:
            assert m["status"] in ("completed", "pending")
            assert m["date"] == "N/A" or re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", m["date"])
            assert (m["date"] == "N/A") is (m["status"] == "pending")
        if row["Trade Type"] == "IMPORT":
            assert names[-1] in ("Container Manifested", "Manifested")
            done = {m["milestone"] for m in body["timeline"] if m["status"] == "completed"}
            status = row["Status"]
            assert (status == "ON VESSEL") is (done <= {"Container Manifested", "Manifested"})
            assert (status == "GATE OUT") is (
                "Departed Terminal" in done and "Empty Received" not in done
            )
            if status == "GATE IN":
                assert "Empty Received" in done
        if len(methods) == 2 and {"Manifested", "Container Manifested"} <= seen_labels:
            break
    assert {"Departed Terminal", "Empty Received", "Discharged", "Ready for pick up"} <= (
        seen_labels
    )
    assert {"Manifested", "Container Manifested"} <= seen_labels
    assert methods == {"dom_class_check", "image_processing"}


def test_a_page_without_pregate_milestone_fails_the_timeline(api: Api, server: SimServer) -> None:
    sid = api.login("nopregate+c200")
    info = details(server, "nopregate+c200")
    missing = next(n for n, d in info.items() if d["known"] and not d["has_pregate_milestone"])
    failed = api.post("/get_container_timeline", session_id=sid, container_id=missing, debug=False)
    assert failed.status_code == 500
    assert failed.json() == {"success": False, "error": PREGATE_MISSING_ERROR, "session_id": sid}


def test_container_search_is_case_sensitive_and_slow_to_fail(api: Api) -> None:
    api.post("/_sim/config", latencies={"timeline_not_found": 150})  # 0.1-0.2 s real
    sid = api.login()
    imp = pick(api.server, "IMPORT", has_pregate_milestone=True, candidate=True)
    exp = pick(api.server, "EXPORT")
    lower = imp.lower()
    for path, cid in (("/get_container_timeline", lower), ("/get_booking_number", exp.lower())):
        failed = api.post(path, session_id=sid, container_id=cid, debug=False)
        assert failed.status_code == 500 and failed.json()["error"] == SEARCH_FAILED_ERROR
    padded = api.post("/get_container_timeline", session_id=sid, container_id=f" {imp}")
    assert padded.status_code == 500  # no trimming either
    check = api.check(sid, container_type="import", container_id=lower, **phase_fields())
    assert check.status_code == 500
    assert check.json()["error"] == CHECK_SEARCH_FAILED_ERROR
    assert check.json()["current_phase"] == 1
    bulk = api.post(
        "/get_info_bulk", session_id=sid, import_containers=[imp, lower], debug=False
    ).json()
    assert [r["success"] for r in bulk["results"]["import_results"]] == [True, False]
    for call in api.calls():
        if call["endpoint"] in ("/get_container_timeline", "/get_booking_number"):
            assert duration(call) >= 0.1
    assert api.post("/get_container_timeline", session_id=sid, container_id=imp).status_code == 200


def test_booking_numbers(api: Api) -> None:
    sid = api.login()
    exp = pick(api.server, "EXPORT", candidate=True)
    imp = pick(api.server, "IMPORT")
    booking = api.post("/get_booking_number", session_id=sid, container_id=exp).json()
    assert booking["container_id"] == exp
    assert isinstance(booking["booking_number"], str) and booking["booking_number"]
    imported = api.post("/get_booking_number", session_id=sid, container_id=imp).json()
    assert imported["booking_number"] is None and imported["message"]
    missing = api.post("/get_booking_number", session_id=sid)
    assert missing.status_code == 400
    assert missing.json()["error"] == "Missing required field: container_id"


def test_info_bulk_shape(api: Api) -> None:
    sid = api.login()
    info = details(api.server)
    rows = containers(api.server)
    imports = [
        r["Container #"]
        for r in rows
        if r["Trade Type"] == "IMPORT" and info[r["Container #"]]["has_pregate_milestone"]
    ][:3]
    exports = [r["Container #"] for r in rows if r["Trade Type"] == "EXPORT"][:2]
    response = api.post(
        "/get_info_bulk",
        session_id=sid,
        import_containers=[*imports, NOT_FOUND_CONTAINER],
        export_containers=[*exports, "nope"],
        debug=False,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Bulk processing completed: 5 successful, 2 failed"
    results = body["results"]
    assert results["summary"] == {
        "total_import": 4,
        "total_export": 3,
        "import_success": 3,
        "import_failed": 1,
        "export_success": 2,
        "export_failed": 1,
    }
    failed = results["import_results"][-1]
    assert failed == {
        "container_id": NOT_FOUND_CONTAINER,
        "success": False,
        "pregate_status": None,
        "pregate_details": None,
        "error": SEARCH_FAILED_ERROR,
    }
    for good in results["import_results"][:3]:
        assert isinstance(good["pregate_status"], bool) and good["pregate_details"] is None
        assert good["milestone_count"] == len(good["timeline"]) > 0
    assert results["export_results"][-1]["success"] is False
    assert results["export_results"][-1]["booking_number"] is None

    for body in ({"import_containers": []}, {}, {"export_containers": None}):
        empty = api.post("/get_info_bulk", session_id=sid, **body)
        assert empty.status_code == 400
        assert empty.json() == {"success": False, "error": BULK_EMPTY_ERROR}


def test_info_bulk_takes_time_per_container(api: Api) -> None:
    sid = api.login()
    ids = [r["Container #"] for r in containers(api.server) if r["Trade Type"] == "EXPORT"][:4]
    api.post("/get_info_bulk", session_id=sid, export_containers=ids, debug=False)
    assert duration(api.calls("/get_info_bulk")[-1]) >= 4 * 7 * SCALE


# --------------------------------------------------------- check_appointments


def test_check_validates_only_the_container_type_up_front(api: Api) -> None:
    for value in ("IMPORT", "import ", "Export", "both", 1):
        bad = api.post("/check_appointments", container_type=value)
        assert bad.status_code == 400, value
        assert bad.json()["error"].startswith("Invalid container_type")
        assert bad.json()["current_phase"] == 1
    missing = api.post("/check_appointments", session_id="gone")
    assert missing.status_code == 400
    assert missing.json()["error"] == "Missing required field: container_type"
    # Nothing else is checked before the session is resolved.
    gone = api.post("/check_appointments", session_id="gone", container_type="import")
    assert gone.status_code == 400 and gone.json()["error"] == SESSION_GONE_ERROR
    assert api.stats()["login_attempts"] == 0


def test_check_reports_missing_phase1_fields_late_and_all_at_once(api: Api) -> None:
    # A silent login first, then ~35 s of page work, then every missing field at once.
    imported = api.post(
        "/check_appointments", session_id="gone", container_type="import", debug=False, **creds()
    )
    assert imported.status_code == 400
    body = imported.json()
    assert body["error"] == (
        "Missing required fields for Phase 1: trucking_company, terminal, move_type, container_id"
    )
    assert body["current_phase"] == 1
    assert body["session_id"].startswith("session_") and body["appointment_session_id"]
    call = api.calls("/check_appointments")[-1]
    assert call["login"] is True and duration(call) >= (30 + 4 + 35) * SCALE
    assert api.stats()["captcha_solves"] == 1

    sid = body["session_id"]
    export = api.check(
        sid, container_type="export", terminal=TERMINAL_24H, truck_plate="7ABC123", debug=False
    )
    assert export.json()["error"] == (
        "Missing required fields for Phase 1: trucking_company, move_type, booking_number"
    )
    no_plate = api.check(
        sid,
        container_type="import",
        container_id=pick(api.server, "IMPORT", candidate=True),
        **phase_fields(truck_plate=None),
    )
    assert no_plate.status_code == 400
    assert no_plate.json()["error"] == "Missing required field for Phase 2: truck_plate"
    assert no_plate.json()["current_phase"] == 2
    assert no_plate.json()["appointment_session_id"]


def test_check_picks_dropdowns_by_exact_visible_name(api: Api) -> None:
    api.post("/_sim/config", latencies={"poison_delay": 10**9})  # the failures below poison
    sid = api.login()
    imp = pick(api.server, "IMPORT", candidate=True, has_slots=True)
    base = {"container_type": "import", "container_id": imp}
    for terminal in ("TTI", "ITS", "Terminal 18 ", "terminal 18", "PNCT"):
        bad = api.check(sid, **base, **phase_fields(terminal=terminal))
        assert bad.status_code == 500
        assert (
            bad.json()["error"] == f"Phase 1 failed - Terminal: '{terminal}' not found in dropdown"
        )
        assert bad.json()["current_phase"] == 1
    company = api.check(sid, **base, **phase_fields(trucking_company="K & R TRANSPORTATION"))
    assert company.json()["error"] == (
        "Phase 1 failed - Trucking company: 'K & R TRANSPORTATION' not found in dropdown"
    )
    move = api.check(sid, **base, **phase_fields(move_type="pick full"))
    assert move.status_code == 500 and move.json()["error"].startswith("Phase 1 failed - Move")
    for plate in ("X", "7ABC 123", "ABCDEFGHIJK"):
        rejected = api.check(sid, **base, **phase_fields(truck_plate=plate))
        assert rejected.status_code == 500
        assert rejected.json()["error"] == f"Phase 2 failed - Truck plate: '{plate}' rejected"
        assert rejected.json()["current_phase"] == 2
    for terminal in DEFAULT_TERMINALS:
        if terminal in simdata.NO_CONTAINER_FIELD_TERMINALS:
            continue
        good = api.check(sid, **base, **phase_fields(terminal=terminal))
        assert good.status_code == 200, (terminal, good.text)
    # The dropdown lists are configurable.
    api.post("/_sim/config", trucking_companies=["ACME DRAYAGE"], terminals=["Pier Z"])
    assert api.check(sid, **base, **phase_fields(terminal="Pier Z")).status_code == 500
    ok = api.check(sid, **base, **phase_fields(terminal="Pier Z", trucking_company="ACME DRAYAGE"))
    assert ok.status_code == 200
    assert api.post("/_sim/config", terminals=[]).status_code == 400


def test_check_needs_line_and_equip_size_where_the_page_has_no_container_field(
    api: Api,
) -> None:
    api.post("/_sim/config", latencies={"poison_delay": 10**9})
    sid = api.login()
    imp = pick(api.server, "IMPORT", candidate=True, has_slots=True)
    assert len(simdata.NO_CONTAINER_FIELD_TERMINALS) == 3
    for terminal in sorted(simdata.NO_CONTAINER_FIELD_TERMINALS):
        fields = {"container_type": "import", "container_id": imp, **phase_fields(terminal)}
        for extra in ({}, {"line": "MAERSK"}, {"equip_size": "40DH"}):
            refused = api.check(sid, **fields, **extra)
            assert refused.status_code == 400
            assert refused.json()["error"] == CONTAINER_FIELD_ERROR
            assert refused.json()["current_phase"] == 1
        assert api.check(sid, **fields, line="MAERSK", equip_size="40DH").status_code == 200
    # An export check there does not need them.
    export = api.check(
        sid,
        container_type="export",
        booking_number="EBKG00000001",
        **phase_fields(sorted(simdata.NO_CONTAINER_FIELD_TERMINALS)[0], move_type="DROP FULL"),
    )
    assert export.status_code == 200


def _import_with(server: SimServer, terminal: str, want: Callable[[list[str]], bool]) -> str:
    """An import container (of alice) whose slots at ``terminal`` satisfy ``want``."""
    now = dt.datetime.now().astimezone()
    hidden = sheet(server).hidden
    for row in containers(server):
        number = row["Container #"]
        if row["Trade Type"] != "IMPORT" or not hidden[number].has_slots:
            continue
        times = simdata.available_times(
            number, terminal, server.config, now, version=hidden[number].slot_version
        )
        if want(times):
            return number
    raise AssertionError("no such container")


def test_check_slots_placeholder_midnight_and_12_hour_pages(api: Api, server: SimServer) -> None:
    sid = api.login()
    none = pick(server, "IMPORT", candidate=True, has_slots=False)
    empty = api.check(sid, container_type="import", container_id=none, **phase_fields()).json()
    assert empty["available_times"] in ([NO_SLOTS[0]], [NO_SLOTS[1]]) and empty["count"] == 1
    now = dt.datetime.now().astimezone()
    placeholders = {
        simdata.available_times(f"X{i}", TERMINAL_24H, server.config, now, has_slots=False)[0]
        for i in range(40)
    }
    assert placeholders == set(NO_SLOTS)  # with and without the "!"

    night = _import_with(server, TERMINAL_24H, lambda t: any("23:00 - 02:00" in s for s in t))
    full = api.check(sid, container_type="import", container_id=night, **phase_fields()).json()
    assert full["count"] == len(full["available_times"]) >= 1
    for slot in full["available_times"]:
        assert re.fullmatch(r"[A-Z][a-z]+day \d\d/\d\d/\d{4} \d\d:00 - \d\d:00", slot), slot
    assert any(slot.endswith("23:00 - 02:00") for slot in full["available_times"])
    weekday = full["available_times"][0].split()[0]
    day = dt.datetime.strptime(full["available_times"][0].split()[1], "%m/%d/%Y")  # noqa: DTZ007
    assert day.strftime("%A") == weekday

    pm = _import_with(server, TERMINAL_12H, lambda t: any(s.endswith("PM") for s in t))
    twelve = api.check(
        sid, container_type="import", container_id=pm, **phase_fields(TERMINAL_12H)
    ).json()
    for slot in twelve["available_times"]:
        assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:00 (AM|PM) - \d\d:00 (AM|PM)", slot), slot
    assert any("PM" in slot for slot in twelve["available_times"])
    assert re.fullmatch(
        re.escape(api.server.url) + rf"/files/{sid}/dropdown_{STAMP}\.png",
        twelve["dropdown_screenshot_url"],
    )
    png = api.http.get(twelve["dropdown_screenshot_url"])
    assert png.headers["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert twelve["phase_data"]["terminal"] == TERMINAL_12H
    assert twelve["current_phase"] == 3
    assert api.stats()["appointments_booked"] == 0


def test_check_takes_its_fixed_waits(api: Api) -> None:
    sid = api.login()
    imp = pick(api.server, "IMPORT", candidate=True, has_slots=True)
    api.check(sid, container_type="import", container_id=imp, **phase_fields())
    api.check(
        sid,
        container_type="export",
        booking_number="EBKG00000001",
        **phase_fields(move_type="DROP FULL"),
    )
    imported, exported = api.calls("/check_appointments")
    assert imported["outcome"] == exported["outcome"] == "ok"
    assert duration(imported) >= 45 * SCALE and duration(exported) >= 50 * SCALE
    assert "check_appointments" not in DEFAULT_LATENCIES
    assert DEFAULT_LATENCIES["check_appointments_import"] == 45
    assert DEFAULT_LATENCIES["check_appointments_export"] == 50


def test_export_check_calendar_and_invalid_booking(api: Api) -> None:
    sid = api.login()
    fields = phase_fields(move_type="DROP FULL")
    exp = api.check(sid, container_type="export", booking_number="EBKG12345678", **fields).json()
    assert exp["success"] is True and isinstance(exp["calendar_found"], bool)
    assert re.fullmatch(
        re.escape(api.server.url) + rf"/files/{sid}/calendar_{STAMP}\.png",
        exp["calendar_screenshot_url"],
    )
    assert api.http.get(exp["calendar_screenshot_url"]).status_code == 200
    invalid = api.check(sid, container_type="export", booking_number="INVALID123", **fields)
    assert invalid.status_code == 400
    body = invalid.json()
    assert body["error"] == "Booking number validation failed"
    assert body["error_message"] == "Booking number INVALID123 not found"
    assert body["current_phase"] == 1 and body["appointment_session_id"]


def test_a_failed_check_poisons_the_browser_mid_call_after_the_delay(
    api: Api, server: SimServer
) -> None:
    api.post("/_sim/config", latencies={"poison_delay": 200})  # 0.2 s real
    alice, bob = api.login("alice"), api.login("bob")
    failed = api.check(alice, container_type="import", **phase_fields(terminal="TTI"))
    assert failed.status_code == 400  # container_id missing: a failed workflow is held
    poisons = api.get("/_sim/sessions").json()["poisons"]
    assert [(p["session_id"], p["username"]) for p in poisons] == [(alice, "alice")]
    assert api.stats()["pending_poisons"] == 1

    # Before the delay, other checks leave alice's browser alone.
    bobs = pick(server, "IMPORT", username="bob", candidate=True, has_slots=True)
    assert api.check(bob, container_type="import", container_id=bobs, **phase_fields()).ok
    assert api.post("/get_containers", session_id=alice, debug=False).status_code == 200

    api.fault(endpoint="/get_containers", mode="delay", delay=60_000)
    thread, box = post_in_background(api, "/get_containers", session_id=alice)
    wait_for(lambda: api.is_busy(alice))
    control = SimControl(api.server.url)
    wait_for(lambda: all(p["due_in"] <= 0 for p in control.poisons()))
    assert api.is_busy(alice)  # still in flight: the poison waits for the next check
    trigger = api.post("/check_appointments", container_type="IMPORT")  # anyone's check
    assert trigger.status_code == 400
    thread.join(timeout=10)
    assert box["response"].status_code == 500
    assert box["response"].json() == {"success": False, "error": POISONED_ERROR}
    assert api.calls("/get_containers")[-1]["outcome"] == "poisoned"

    gone = api.post("/get_containers", session_id=alice)
    assert gone.status_code == 400 and gone.json()["error"] == SESSION_GONE_ERROR
    broken = api.get("/sessions")
    assert broken.status_code == 500 and broken.headers["Content-Type"].startswith("text/html")
    dead = [s for s in api.sim_sessions() if s["dead"]]
    assert [s["session_id"] for s in dead] == [alice]
    stats = api.stats()
    assert stats["poisoned_browsers"] == 1 and stats["dead_browsers"] == 1
    assert stats["pending_poisons"] == 0
    assert api.get("/health").json()["active_sessions"] == 2  # the dead browser still counts
    assert api.post("/get_containers", session_id=bob, debug=False).status_code == 200

    # A new login for alice clears the dead browser.
    fresh = api.post("/get_session", **creds("alice")).json()
    assert fresh["is_new"] is True and fresh["session_id"] != alice
    listing = api.get("/sessions")
    assert listing.status_code == 200 and alice not in {
        s["session_id"] for s in listing.json()["sessions"]
    }
    assert api.stats()["dead_browsers"] == 0


@pytest.mark.parametrize("clear", ["delete", "cleanup", "emergency_recovery", "restart", "reset"])
def test_a_dead_browser_is_cleared_by_operators(api: Api, clear: str) -> None:
    api.post("/_sim/config", latencies={"poison_delay": 0})
    alice = api.login("alice")
    api.check(alice, container_type="import", **phase_fields())  # fails: held, due at once
    api.post("/check_appointments", session_id="none")  # any check: closes alice's browser
    assert api.get("/sessions").status_code == 500
    if clear == "delete":
        assert api.http.delete(f"{api.server.url}/sessions/{alice}").status_code == 200
    elif clear == "restart":
        api.post("/_sim/restart")
    elif clear == "reset":
        api.post("/_sim/reset")
    else:
        api.post(f"/{clear}")
    listing = api.get("/sessions")
    assert listing.status_code == 200 and listing.json()["sessions"] == []


def test_a_failed_check_can_be_resumed_while_held(api: Api) -> None:
    api.post("/_sim/config", latencies={"poison_delay": 200})
    sid = api.login()
    imp = pick(api.server, "IMPORT", candidate=True, has_slots=True)
    failed = api.check(
        sid, container_type="import", container_id=imp, **phase_fields(truck_plate=None)
    )
    assert failed.status_code == 400
    held = failed.json()["appointment_session_id"]
    assert [p["appointment_session_id"] for p in SimControl(api.server.url).poisons()] == [held]

    resumed = api.check(
        sid,
        container_type="import",
        appointment_session_id=held,
        truck_plate="7ABC123",
        debug=False,
    )
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["appointment_session_id"] == held and body["count"] >= 1
    assert body["phase_data"]["container_id"] == imp  # from the held workflow
    assert api.stats()["pending_poisons"] == 0
    assert duration(api.calls("/check_appointments")[-1]) >= 45 * SCALE

    # Once released it is no longer held: its id starts a new workflow.
    control = SimControl(api.server.url)
    again = api.check(sid, container_type="import", appointment_session_id=held, debug=False)
    assert again.status_code == 400 and again.json()["appointment_session_id"] != held
    # ... and a failure on another browser's held workflow cannot be resumed from here.
    other = api.login("bob")
    foreign = api.check(other, container_type="import", appointment_session_id=held)
    assert foreign.json()["appointment_session_id"] != held
    assert len(control.poisons()) == 2
    api.post("/cleanup")
    assert control.poisons() == []


# --------------------------------------------------------------- appointments


def test_get_appointments_url_form_and_make_appointment(api: Api) -> None:
    sid = api.login()
    listed = api.post("/get_appointments", session_id=sid).json()
    assert listed["success"] is True and listed["selected_count"] >= 3
    assert "file_name" not in listed and "file_size" not in listed
    pattern = re.escape(api.server.url) + rf"/files/{sid}_{STAMP}_appointments\.xlsx"
    assert re.fullmatch(pattern, listed["file_url"])
    rows = simdata.read_xlsx(api.http.get(listed["file_url"]).content)
    assert len(rows) == listed["selected_count"]
    assert list(rows[0]) == simdata.APPOINTMENT_COLUMNS
    limited = api.post("/get_appointments", session_id=sid, target_count=2).json()
    assert limited["selected_count"] == 2 and limited["file_url"] != listed["file_url"]

    assert api.stats()["appointments_booked"] == 0
    booked = api.post("/make_appointment", session_id=sid, container_id=pick(api.server, "IMPORT"))
    assert booked.status_code == 200
    assert api.stats()["appointments_booked"] == 1
    after = api.post("/get_appointments", session_id=sid).json()
    assert after["selected_count"] == listed["selected_count"] + 1


def test_a_failed_appointments_export_hands_back_an_older_sheet(api: Api) -> None:
    api.post("/_sim/config", latencies={"download_window": 60_000})  # 60 s real
    sid = api.login()
    api.post("/get_containers", session_id=sid, debug=False)
    api.fault(endpoint="/get_appointments", mode="stale_sheet")
    stale = api.post("/get_appointments", session_id=sid, debug=False)
    assert stale.status_code == 200
    rows = simdata.read_xlsx(api.http.get(stale.json()["file_url"]).content)
    assert list(rows[0]) == simdata.COLUMNS  # the containers sheet, not the appointments
    assert api.stats()["stale_sheets"] == 1

    # Without a recent download the export simply fails.
    api.post("/_sim/config", latencies={"download_window": 0})
    other = api.login("bob")
    api.fault(endpoint="/get_appointments", mode="stale_sheet")
    failed = api.post("/get_appointments", session_id=other, debug=False)
    assert failed.status_code == 500 and failed.json()["error"] == EXCEL_FAILED_ERROR
    assert (
        api.post("/_sim/faults", endpoint="/get_containers", mode="stale_sheet").status_code == 400
    )


def test_unknown_file_is_404(api: Api) -> None:
    missing = api.get("/files/nope.xlsx")
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "error": "File not found"}


# ------------------------------------------------------------ control surface


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
    cid = pick(api.server, "EXPORT")
    started = time.monotonic()
    delayed = api.post("/get_booking_number", session_id=sid, container_id=cid)
    assert delayed.status_code == 200 and time.monotonic() - started >= 0.3

    api.fault(endpoint="/get_session", status=500, error="Failed to allocate session capacity")
    capacity = api.post("/get_session", **creds("carol"))
    assert capacity.status_code == 500
    assert capacity.json()["error"] == "Failed to allocate session capacity"

    api.fault(endpoint="/get_containers", count=5, mode="status")
    assert len(api.get("/_sim/faults").json()["faults"]) == 1
    assert api.http.delete(api.server.url + "/_sim/faults").status_code == 200
    assert api.post("/get_containers", session_id=sid).status_code == 200
    outcomes = [c["outcome"] for c in api.calls()]
    assert outcomes.count("fault") == 5

    bad = api.post("/_sim/faults", endpoint="*", mode="explode")
    assert bad.status_code == 400


def test_call_history_marks_logins_and_created_sessions(api: Api) -> None:
    api.login("alice")
    api.login("alice")  # reused: no login
    api.post("/get_session", username="bob", password=WRONG_PASSWORD, captcha_api_key="key")
    marks = [(c["username"], c["login"], c["session_created"]) for c in api.calls()]
    assert marks == [("alice", True, True), ("alice", False, False), ("bob", True, False)]


def test_chaos_errors_fail_calls_without_harming_the_session(api: Api) -> None:
    sid = api.login()
    cid = pick(api.server, "EXPORT")
    chaos = api.post("/_sim/chaos", error_rate=1.0, close_share=0.0).json()["chaos"]
    assert chaos["error_rate"] == 1.0 and chaos["endpoints"] == ["*"]
    for _ in range(3):
        failed = api.post("/get_booking_number", session_id=sid, container_id=cid)
        assert failed.status_code == 500
        assert failed.json() == {"success": False, "error": CHAOS_ERROR}
    assert api.get("/health").status_code == 200  # the health check is spared

    api.post("/_sim/chaos", error_rate=1.0, close_share=1.0)
    with pytest.raises(requests.ConnectionError):
        api.post("/get_booking_number", session_id=sid, container_id=cid)
    injected = api.get("/_sim/chaos").json()["chaos"]["injected"]
    assert injected == {"errors": 0, "closes": 1, "evictions": 0, "stale_sheets": 0}

    assert api.http.delete(api.server.url + "/_sim/chaos").json()["chaos"] is None
    ok = api.post("/get_booking_number", session_id=sid, container_id=cid)
    assert ok.status_code == 200 and ok.json()["session_id"] == sid  # the browser survived
    outcomes = [c["outcome"] for c in api.calls()]
    assert outcomes.count("fault") == 4 and api.stats()["evictions"] == 0


def test_chaos_can_hand_back_stale_sheets(api: Api) -> None:
    api.post("/_sim/config", latencies={"download_window": 60_000})
    sid = api.login()
    api.post("/get_containers", session_id=sid, debug=False)
    api.post("/_sim/chaos", stale_sheet_rate=1.0, seed=1)
    stale = api.post("/get_appointments", session_id=sid, debug=False).json()
    rows = simdata.read_xlsx(api.http.get(stale["file_url"]).content)
    assert list(rows[0]) == simdata.COLUMNS
    assert api.get("/_sim/chaos").json()["chaos"]["injected"]["stale_sheets"] == 1
    assert api.post("/_sim/chaos", stale_sheet_rate=2).status_code == 400


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
    cid = pick(api.server, "EXPORT")
    api.post("/_sim/chaos", error_rate=1.0, close_share=0.0, endpoints=["/get_booking_number"])
    timeline = api.post("/get_containers", session_id=sid)
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
    thread, box = post_in_background(api, "/get_appointments", session_id=victim)
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
    thread, box = post_in_background(api, "/get_containers", session_id=busy)
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
    assert api.calls() == []
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
        details="LoginErrorType.RECAPTCHA_FAILED",
    )
    failed = api.post("/get_session", **creds())
    assert failed.status_code == 401
    assert failed.json() == {
        "success": False,
        "error": "Authentication failed",
        "details": "LoginErrorType.RECAPTCHA_FAILED",
    }
    assert api.post("/get_session", **creds()).status_code == 200


def test_runtime_config(api: Api) -> None:
    updated = api.post(
        "/_sim/config",
        capacity=3,
        latencies={"captcha": 1.5},
        login_console=False,
        trucking_companies=["A B C"],
    ).json()
    assert updated["capacity"] == 3 and updated["latencies"]["captcha"] == 1.5
    assert updated["login_console"] is False and updated["trucking_companies"] == ["A B C"]
    assert updated["terminals"] == DEFAULT_TERMINALS
    assert api.get("/_sim/config").json()["capacity"] == 3
    assert api.get("/health").json()["max_sessions"] == 3
    for bad in (
        {"latencies": {"nope": 1}},
        {"capacity": 0},
        {"login_console": "no"},
        {"trucking_companies": "A B C"},
        {"trucking_companies": [""]},
        {"colour": "red"},
    ):
        assert api.post("/_sim/config", **bad).status_code == 400, bad
    for i in range(4):
        api.login(f"cap{i}")
    assert api.stats()["evictions"] == 1 and api.stats()["evictions_busy"] == 0


def test_sim_control_reset_restores_the_defaults(api: Api) -> None:
    control = SimControl(api.server.url)
    control.configure(
        idle_timeout=3,
        login_console=False,
        trucking_companies=["X"],
        terminals=["Y"],
        latencies={"captcha": 1},
        capacity=2,
    )
    api.login()
    control.reset(time_scale=SCALE)
    config = api.get("/_sim/config").json()
    assert {k: config[k] for k in default_config()} == default_config()
    assert control.stats()["sessions_created"] == 0
    control.reset(time_scale=SCALE, idle_timeout=30)
    assert api.get("/_sim/config").json()["idle_timeout"] == 30


def test_sim_config_defaults_and_validation() -> None:
    config = SimConfig()
    assert config.idle_timeout is None and config.login_console is True
    assert config.trucking_companies == DEFAULT_TRUCKING_COMPANIES
    assert config.terminals == list(TERMINAL_NAMES.values()) and len(config.terminals) == 18
    assert SimConfig(idle_timeout=0).idle_timeout is None
    assert SimConfig(idle_timeout=12).idle_timeout == 12
    assert SimConfig(login_console=False).to_dict()["login_console"] is False
    with pytest.raises(ValueError):
        SimConfig(latencies={"check_appointments": 1})
    with pytest.raises(ValueError):
        SimConfig(trucking_companies=[])


def test_command_line_entry_point() -> None:
    root = Path(__file__).resolve().parents[2]
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
            "--no-console",
            "--trucking-company",
            "ACME DRAYAGE",
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
        assert config["idle_timeout"] is None and config["login_console"] is False
        assert config["trucking_companies"] == ["ACME DRAYAGE"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
