"""Tests of the stand-alone E-Modal automation API simulator (``emodal_sim``): envelopes,
sessions, data, per-container pages, the control surface. The appointment page, bookings,
glitches and housekeeping have their own modules."""

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
from pathlib import Path
from typing import Any

import pytest
import requests

from emodal_sim import (
    BAD_CAPTCHA_KEY,
    BULK_EMPTY_ERROR,
    DASHBOARD_ERROR,
    DEFAULT_LATENCIES,
    DEFAULT_TERMINALS,
    DEFAULT_TRUCKING_COMPANIES,
    FLAKY_CAPTCHA_KEY,
    NO_BALANCE_CAPTCHA_KEY,
    NO_CONSOLE_ERROR,
    NO_CONTAINERS_ERROR,
    NOT_FOUND_CONTAINER,
    PREGATE_MISSING_ERROR,
    SESSION_GONE_ERROR,
    STALE_ELEMENT_ERROR,
    TERMINAL_NAMES,
    UNSOLVABLE_CAPTCHA_KEY,
    VERIFICATION_ERROR,
    WRONG_PASSWORD,
    SimConfig,
    SimServer,
    search_failed_error,
    texts,
)
from emodal_sim import data as simdata
from emodal_sim import endpoints as simendpoints

from ..sim import SimControl
from .support import (
    NAIVE_TIME,
    NO_SLOTS,
    SCALE,
    STAMP,
    XLSX,
    Api,
    containers,
    creds,
    default_config,
    details,
    duration,
    phase_fields,
    pick,
    post_in_background,
    wait_for,
)

BAD_JSON_ERROR = f"Unexpected error: {texts.BAD_REQUEST}"


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
    # get_session has no such check: get_json() raises and its bare text is answered.
    login = api.http.post(url + "/get_session", data="username=a", headers=plain)
    assert login.status_code == 500
    assert login.json() == {"success": False, "error": texts.UNSUPPORTED_MEDIA_TYPE}
    # Malformed JSON under a JSON content type is a 500 on every POST endpoint, in the words
    # of each handler: bare on get_session and get_info_bulk, with the check's phase 0.
    for path in (*simendpoints.OPERATION_ENDPOINTS, "/get_session"):
        bad = api.http.post(url + path, data="{not json", headers=as_json)
        assert bad.status_code == 500, path
        if path in ("/get_session", "/get_info_bulk"):
            expected: dict[str, Any] = {"success": False, "error": texts.BAD_REQUEST}
        elif path == "/check_appointments":
            expected = {"success": False, "error": BAD_JSON_ERROR, "current_phase": 0}
        else:
            expected = {"success": False, "error": BAD_JSON_ERROR}
        assert bad.json() == expected, path
    listed = api.http.post(url + "/get_containers", data="[1, 2]", headers=as_json)
    assert listed.status_code == 500
    assert listed.json()["error"] == "Unexpected error: 'list' object has no attribute 'get'"
    bulk = api.http.post(url + "/get_info_bulk", data="null", headers=as_json)
    assert bulk.json() == {"success": False, "error": "'NoneType' object has no attribute 'get'"}
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


def test_the_refresh_thread_moves_only_browsers_not_in_use_and_the_next_call_pays_to_return(
    api: Api, server: SimServer
) -> None:
    api.post("/_sim/config", latencies={"page_return": 300})  # 0.3 s real
    sid = api.login()
    imp = pick(api.server, "IMPORT", has_pregate_milestone=True)
    session = server.state._sessions[sid]
    # A browser fresh from get_session is not flagged in use: the refresh thread takes it.
    session.driven_mono -= 121 * SCALE
    assert api.get("/sessions").json()["sessions"][0]["current_url"] == (
        "https://termops.emodal.com/trucker/web/"
    )
    moved = api.post("/get_container_timeline", session_id=sid, container_id=imp)
    assert moved.status_code == 200
    # Every operation flags it in use, and only get_info_bulk clears the flag (L9583).
    session.driven_mono -= 10_000 * SCALE
    listed = api.get("/sessions").json()["sessions"][0]
    assert listed["current_url"] == "https://ecp2.emodal.com/containers"
    assert api.login() == sid  # handing the session back does not move it either
    stays = api.post("/get_container_timeline", session_id=sid, container_id=imp)
    assert stays.status_code == 200
    api.post("/get_info_bulk", session_id=sid, import_containers=[imp])
    session.driven_mono -= 121 * SCALE
    again = api.post("/get_container_timeline", session_id=sid, container_id=imp)
    assert again.status_code == 200
    first, second, third = api.calls("/get_container_timeline")
    assert (first["page_return"], second["page_return"], third["page_return"]) == (
        True,
        False,
        True,
    )
    assert duration(first) >= 0.3 > duration(second)
    assert api.stats()["page_returns"] == 2


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
    # Still on its way to the containers page: the driver is gone, its port refuses.
    assert response.json() == {
        "success": False,
        "error": f"Navigation failed: Navigation error: {texts.dead_driver(victim)}",
    }

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

    # Different endpoints: the later call fails on a stale element, in its own words.
    api.fault(endpoint="/get_container_timeline", mode="delay", delay=400)
    thread, box = post_in_background(
        api, "/get_container_timeline", session_id=sid, container_id=first_id
    )
    wait_for(lambda: api.is_busy(sid))
    stale = api.post("/get_booking_number", session_id=sid, container_id=second_id, debug=False)
    thread.join(timeout=10)
    assert box["response"].status_code == 200
    assert stale.status_code == 500
    assert stale.json() == {
        "success": False,
        "error": f"Search failed: Progressive search failed: {STALE_ELEMENT_ERROR}",
    }

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
    assert box["response"].json() == {
        "success": False,
        "error": f"Navigation failed: {texts.dead_driver(sid)}",
    }
    assert api.calls("/get_appointments")[-1]["outcome"] == "closed"


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


def test_debug_is_off_unless_asked_and_costs_a_bundle_in_each_routes_own_form(api: Api) -> None:
    api.post("/_sim/config", latencies={"debug_bundle": 150})  # 0.15 s real
    sid = api.login()
    exp = pick(api.server, "EXPORT", has_pregate_milestone=True)
    imp = pick(api.server, "IMPORT", has_pregate_milestone=True)
    default = api.post("/get_booking_number", session_id=sid, container_id=exp)
    assert "debug_bundle_url" not in default.json()
    booking = api.post("/get_booking_number", session_id=sid, container_id=exp, debug=True)
    # get_booking_number writes its link relative, get_container_timeline absolute.
    url = booking.json()["debug_bundle_url"]
    assert re.fullmatch(rf"/files/{sid}_{STAMP}_BOOKING\.zip", url)
    bundle = api.http.get(api.server.url + url)
    assert bundle.headers["Content-Type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    timeline = api.post("/get_container_timeline", session_id=sid, container_id=imp, debug=True)
    pattern = re.escape(api.server.url) + rf"/files/{sid}_{STAMP}_PREGATE\.zip"
    assert re.fullmatch(pattern, timeline.json()["debug_bundle_url"])
    # A failed search answers no bundle at all.
    failed = api.post(
        "/get_booking_number", session_id=sid, container_id=NOT_FOUND_CONTAINER, debug=True
    )
    assert failed.status_code == 500 and "debug_bundle_url" not in failed.json()
    calls = api.calls("/get_booking_number")
    assert [c["debug"] for c in calls] == [False, True, True]
    assert duration(calls[1]) >= 0.15 > duration(calls[0])
    assert api.stats()["debug_bundles"] == 2
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
    # Size types and lines as the real sheets write them: SCAC codes, MSCU in most rows.
    real_sizes = {"40DH", "20GP", "40GP", "45DH", "40HC", "40RH", "40VH", "4310", "4510"}
    assert {"40DH", "20GP", "40GP"} <= values("Size Type") <= real_sizes
    sizes = [r["Size Type"] for r in known]
    assert sizes.count("40DH") > len(sizes) / 2
    real_lines = {"MSCU", "ONEY", "HDMU", "CMDU", "YMJA", "GMSU", "OOLU", "EGLV", "N/A"}
    assert {"MSCU", "ONEY", "HDMU"} <= values("Line") <= real_lines
    lines = [r["Line"] for r in known]
    assert lines.count("MSCU") > len(lines) * 0.7
    codes = {v for v in values("Vessel Code") if v != "N/A"}
    assert codes and all(re.fullmatch(r"\d{7}", v) for v in codes)
    # Every export: Origin N/A, Destination = Current Loc = the terminal.
    exports = [r for r in known if r["Trade Type"] == "EXPORT"]
    assert exports
    for row in exports:
        assert row["Origin"] == "N/A"
        assert row["Destination"] == row["Current Loc"] != "N/A"


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
        answer = failed.json()
        assert answer["error"] == NO_CONTAINERS_ERROR and "session_id" not in answer
        # get_containers zips what it has on every failure and links it relatively.
        assert re.fullmatch(rf"/files/{sid}_{STAMP}_FAILED\.zip", answer["debug_bundle_url"])
        assert api.get(answer["debug_bundle_url"]).status_code == 200


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
        if "Last Free Day" in names:
            # Sits right after "Ready for pick up" (newest first: just before it), same state.
            lfd, ready = names.index("Last Free Day"), names.index("Ready for pick up")
            assert lfd == ready - 1
            assert body["timeline"][lfd]["status"] == body["timeline"][ready]["status"]
        wanted = {"Manifested", "Container Manifested", "Last Free Day"}
        if len(methods) == 2 and wanted <= seen_labels:
            break
    assert {"Departed Terminal", "Empty Received", "Discharged", "Ready for pick up"} <= (
        seen_labels
    )
    assert {"Manifested", "Container Manifested", "Last Free Day", "Pregate"} <= seen_labels
    assert methods == {"dom_class_check", "image_processing"}


def test_a_page_without_pregate_milestone_fails_the_timeline(api: Api, server: SimServer) -> None:
    sid = api.login("nopregate+c200")
    info = details(server, "nopregate+c200")
    missing = next(n for n, d in info.items() if d["known"] and not d["has_pregate_milestone"])
    failed = api.post("/get_container_timeline", session_id=sid, container_id=missing, debug=False)
    assert failed.status_code == 500
    # The timeline's 500s carry no session_id.
    assert failed.json() == {"success": False, "error": PREGATE_MISSING_ERROR}
    assert PREGATE_MISSING_ERROR == "Pregate status check failed: Pregate milestone not found"


def test_container_search_is_case_sensitive_and_slow_to_fail(api: Api) -> None:
    api.post("/_sim/config", latencies={"timeline_not_found": 150})  # 0.1-0.2 s real
    sid = api.login()
    imp = pick(api.server, "IMPORT", has_pregate_milestone=True, candidate=True)
    exp = pick(api.server, "EXPORT")
    lower = imp.lower()
    for path, cid in (("/get_container_timeline", lower), ("/get_booking_number", exp.lower())):
        failed = api.post(path, session_id=sid, container_id=cid, debug=False)
        assert failed.status_code == 500
        # The final "not there" text (L4830), which names what was searched.
        assert failed.json() == {"success": False, "error": search_failed_error(cid)}
        assert (
            search_failed_error(cid)
            == f"Search failed: Container '{cid}' not found after scrolling"
        )
    padded = api.post("/get_container_timeline", session_id=sid, container_id=f" {imp}")
    assert padded.status_code == 500  # no trimming either
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
    assert imported["booking_number"] is None
    assert imported["message"] == "Booking number field not found"
    info = details(api.server)
    bare = next(
        r["Container #"]
        for r in containers(api.server)
        if r["Trade Type"] == "EXPORT" and info[r["Container #"]]["booking_number"] is None
    )
    unavailable = api.post("/get_booking_number", session_id=sid, container_id=bare).json()
    assert unavailable["success"] is True and unavailable["booking_number"] is None
    assert unavailable["message"] == "Booking number not available"
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
    # A search that found nothing: no timeline keys, no pregate_details (L9391-9397).
    assert results["import_results"][-1] == {
        "container_id": NOT_FOUND_CONTAINER,
        "success": False,
        "error": (
            f"Container not found: Container '{NOT_FOUND_CONTAINER}' not found after scrolling"
        ),
        "pregate_status": None,
    }
    for good in results["import_results"][:3]:
        assert isinstance(good["pregate_status"], bool) and good["pregate_details"] is None
        assert good["milestone_count"] == len(good["timeline"]) > 0
    assert results["export_results"][-1] == {
        "container_id": "nope",
        "success": False,
        "error": "Container not found: Container 'nope' not found after scrolling",
        "booking_number": None,
    }

    for body in (
        {"import_containers": []},
        {},
        {"export_containers": None},
        {"import_containers": ""},
    ):
        empty = api.post("/get_info_bulk", session_id=sid, **body)
        assert empty.status_code == 400
        assert empty.json() == {"success": False, "error": BULK_EMPTY_ERROR}


def test_info_bulk_reads_what_it_is_given_unchecked(api: Api, server: SimServer) -> None:
    """A string is walked letter by letter; a page without a Pregate milestone fails its
    entry with the bare text and keeps the timeline; an export without a booking number is a
    success (L9440-9523)."""
    sid = api.login("bulk+c200")
    letters = api.post("/get_info_bulk", session_id=sid, import_containers="AB").json()
    assert [r["container_id"] for r in letters["results"]["import_results"]] == ["A", "B"]
    assert letters["results"]["summary"]["total_import"] == 2
    info = details(server, "bulk+c200")
    rows = containers(server, "bulk+c200")
    no_pregate = next(
        r["Container #"]
        for r in rows
        if r["Trade Type"] == "IMPORT" and not info[r["Container #"]]["has_pregate_milestone"]
    )
    no_booking = next(
        r["Container #"]
        for r in rows
        if r["Trade Type"] == "EXPORT" and info[r["Container #"]]["booking_number"] is None
    )
    body = api.post(
        "/get_info_bulk",
        session_id=sid,
        import_containers=[no_pregate],
        export_containers=[no_booking],
    ).json()
    entry = body["results"]["import_results"][0]
    assert entry["success"] is False and entry["error"] == "Pregate milestone not found"
    assert (
        entry["pregate_status"] is None and entry["milestone_count"] == len(entry["timeline"]) > 0
    )
    assert "pregate_details" not in entry
    assert body["results"]["export_results"] == [
        {"container_id": no_booking, "success": True, "booking_number": None}
    ]
    assert body["results"]["summary"]["export_success"] == 1
    # Anything else is not walked at all: the bare exception, a 500.
    number = api.post("/get_info_bulk", session_id=sid, import_containers=5)
    assert number.status_code == 500
    assert number.json() == {"success": False, "error": "object of type 'int' has no len()"}
    # With debug, a link to a route the server does not have (HTML 404).
    debug = api.post("/get_info_bulk", session_id=sid, export_containers=[no_booking], debug=True)
    link = debug.json()["debug_bundle_url"]
    assert link.startswith(f"{api.server.url}/debug_bundles/")
    missing = api.http.get(link)
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/html")


def test_a_browser_lost_mid_bulk_fails_the_remaining_entries_inside_a_200(api: Api) -> None:
    api.post("/_sim/config", latencies={"bulk_per_container": 0})  # the page step: at once
    sid = api.login()
    ids = [r["Container #"] for r in containers(api.server) if r["Trade Type"] == "EXPORT"][:3]
    api.fault(endpoint="/get_info_bulk", mode="delay", delay=60_000)  # the first container's
    thread, box = post_in_background(api, "/get_info_bulk", session_id=sid, export_containers=ids)
    wait_for(lambda: api.is_busy(sid))
    assert api.http.delete(f"{api.server.url}/sessions/{sid}").status_code == 200
    thread.join(timeout=10)
    answer = box["response"]
    assert answer.status_code == 200
    dead = f"Container not found: Progressive search failed: {texts.dead_driver(sid)}"
    assert answer.json()["results"]["export_results"] == [
        {"container_id": c, "success": False, "error": dead, "booking_number": None} for c in ids
    ]
    assert answer.json()["message"] == "Bulk processing completed: 0 successful, 3 failed"


def test_info_bulk_takes_time_per_container(api: Api) -> None:
    sid = api.login()
    ids = [r["Container #"] for r in containers(api.server) if r["Trade Type"] == "EXPORT"][:4]
    api.post("/get_info_bulk", session_id=sid, export_containers=ids, debug=False)
    assert duration(api.calls("/get_info_bulk")[-1]) >= 4 * 7 * SCALE


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
        # Before any browser is touched, the server crashes: Flask's HTML 500 page.
        failed = api.post("/get_booking_number", session_id=sid, container_id=cid)
        assert failed.status_code == 500
        assert failed.headers["Content-Type"].startswith("text/html")
        assert "Internal Server Error" in failed.text
    assert api.get("/health").status_code == 200  # the health check is spared

    api.post("/_sim/chaos", error_rate=1.0, close_share=1.0)
    with pytest.raises(requests.ConnectionError):
        api.post("/get_booking_number", session_id=sid, container_id=cid)
    injected = api.get("/_sim/chaos").json()["chaos"]["injected"]
    assert injected == {
        "errors": 0,
        "closes": 1,
        "evictions": 0,
        "stale_sheets": 0,
        "glitches": {},
    }

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
    assert booking.status_code == 500 and booking.headers["Content-Type"].startswith("text/html")
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
    assert box["response"].json() == {
        "success": False,
        "error": f"Navigation failed: {texts.dead_driver(victim)}",
    }
    assert api.calls("/get_appointments")[0]["outcome"] == "evicted"

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
            "--glitch-rate",
            "0.25",
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
        assert config["glitch_rate"] == 0.25
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
