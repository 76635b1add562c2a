"""Operator routes and the session maps as the real server keeps them: /cleanup keeps
sessions, /emergency_recovery kills every browser, DELETE leaves the credentials entry and
held workflows, same-second logins of one user share one id, capacity is checked when a
login starts."""

from __future__ import annotations

import re
import time

from emodal_sim import SESSION_GONE_ERROR, WRONG_PASSWORD, SimServer, texts

from ..sim import SimControl
from .support import (
    Api,
    creds,
    phase_fields,
    pick,
    post_in_background,
    wait_for,
)


def control(api: Api) -> SimControl:
    return SimControl(api.server.url)


def test_cleanup_deletes_only_old_files_and_sessions_survive(api: Api, server: SimServer) -> None:
    sid = api.login()
    old = api.post("/get_containers", session_id=sid, return_url=True).json()["file_url"]
    # Make that file a day and a second old; a new one stays.
    name = old.split("/files/", 1)[1]
    server.state._files[name].stored_at -= server.config.file_ttl + 1
    new = api.post("/get_containers", session_id=sid, return_url=True).json()["file_url"]
    cleaned = api.post("/cleanup")
    assert cleaned.status_code == 200
    body = cleaned.json()
    assert set(body) == {
        "success",
        "message",
        "current_storage_mb",
        "downloads_mb",
        "screenshots_mb",
    }
    assert body["message"] == "Cleanup completed" and body["downloads_mb"] >= 0
    assert api.http.get(old).status_code == 404 and api.http.get(new).status_code == 200
    assert api.post("/get_containers", session_id=sid, return_url=True).status_code == 200
    assert api.stats()["active_sessions"] == 1 and api.stats()["cleanups"] == 1


def test_emergency_recovery_kills_every_browser_but_workflows_stay(api: Api) -> None:
    busy, idle = api.login("busy"), api.login("idle")
    failed = api.check(idle, container_type="import", debug=False).json()
    api.fault(endpoint="/get_containers", mode="delay", delay=60_000)
    thread, box = post_in_background(api, "/get_containers", session_id=busy)
    wait_for(lambda: api.is_busy(busy))
    answer = api.http.post(api.server.url + "/emergency_recovery", timeout=10)  # no body
    assert answer.status_code == 200
    assert answer.json() == {
        "success": True,
        "message": "Emergency recovery completed - killed 4 processes and cleared all sessions",
        "killed_count": 4,
        "warning": "All Chrome browsers have been closed",
        "active_sessions": 0,
    }
    thread.join(timeout=10)
    assert box["response"].status_code == 500
    assert (
        box["response"].json()["error"]
        == f"Navigation failed: Navigation error: {texts.dead_driver(busy)}"
    )
    for sid in (busy, idle):
        assert api.post("/get_containers", session_id=sid).json()["error"] == SESSION_GONE_ERROR
    health = api.get("/health").json()
    assert (health["active_sessions"], health["persistent_sessions"]) == (0, 0)
    # The held workflow survived, pointing at a dead browser.
    assert [w["appointment_session_id"] for w in control(api).poisons()] == [
        failed["appointment_session_id"]
    ]
    assert control(api).poisons()[0]["browser_closed"] is True


def test_delete_leaves_the_credentials_entry_and_held_workflows(api: Api) -> None:
    sid = api.login()
    failed = api.check(sid, container_type="import", debug=False).json()
    deleted = api.http.delete(f"{api.server.url}/sessions/{sid}")
    assert deleted.json() == {"success": True, "message": f"Session {sid} closed"}
    health = api.get("/health").json()
    assert (health["active_sessions"], health["persistent_sessions"]) == (0, 1)
    assert [w["appointment_session_id"] for w in control(api).poisons()] == [
        failed["appointment_session_id"]
    ]
    # The stale credentials entry finds nothing: the next login is a new one.
    again = api.post("/get_session", **creds()).json()
    assert again["is_new"] is True and again["session_id"] != sid
    assert again["message"] == "New persistent session created"
    reused = api.post("/get_session", **creds()).json()
    assert (reused["is_new"], reused["message"]) == (False, "Using existing persistent session")


def test_two_same_second_logins_of_a_user_share_one_id(api: Api) -> None:
    """The id is taken when each login starts; the last to finish overwrites the other,
    whose browser keeps running, listed and counted nowhere (L501, L6830)."""
    api.post("/_sim/config", latencies={"captcha": 300})  # 0.3 s: both start in one second
    # Align to the start of a second so that both logins begin within it.
    time.sleep(1 - time.time() % 1 + 0.01)
    first = post_in_background(api, "/get_session", **creds())
    second = post_in_background(api, "/get_session", **{**creds(), "password": "other"})
    for thread, _ in (first, second):
        thread.join(timeout=10)
    one, two = first[1]["response"].json(), second[1]["response"].json()
    assert one["is_new"] is True and two["is_new"] is True
    assert one["session_id"] == two["session_id"]
    stats = api.stats()
    assert (stats["captcha_solves"], stats["sessions_created"]) == (2, 2)
    assert (stats["active_sessions"], stats["orphaned_browsers"]) == (1, 1)
    assert stats["session_id_collisions"] == 1 and stats["persistent_sessions"] == 2
    assert api.get("/health").json()["session_capacity"] == "1/10"
    orphans = [s for s in api.sim_sessions() if s["orphan"]]
    assert len(orphans) == 1 and orphans[0]["session_id"] == one["session_id"]
    killed = api.post("/cleanup_orphaned_processes").json()
    assert killed == {
        "success": True,
        "message": "Cleaned up 1 orphaned processes",
        "killed_count": 1,
        "active_sessions": 1,
    }
    assert api.stats()["orphaned_browsers"] == 0
    # Logins one after another never share a second (a login takes 20-90 s for real).
    later = api.login("alice", "third")
    assert later != one["session_id"]


def test_capacity_is_checked_when_a_login_starts(api: Api) -> None:
    api.post("/_sim/config", capacity=2)
    first, second = api.login("a"), api.login("b")
    # A login that then fails has already evicted the least recently used browser.
    failed = api.post("/get_session", **{**creds("c"), "password": WRONG_PASSWORD})
    assert failed.status_code == 401
    assert api.post("/get_containers", session_id=first).json()["error"] == SESSION_GONE_ERROR
    assert api.post("/get_containers", session_id=second, return_url=True).status_code == 200
    evicted = api.get("/_sim/evictions").json()["evictions"]
    assert [(e["session_id"], e["cause"]) for e in evicted] == [(first, "capacity")]


def test_a_dead_browser_is_listed_until_its_id_is_next_used(api: Api, server: SimServer) -> None:
    api.post("/_sim/config", latencies={"poison_delay": 0})
    alice = api.login("alice")
    bob = api.login("bob")
    api.check(alice, container_type="import", debug=False)  # fails: held, due at once
    api.post("/check_appointments", container_type="none")  # any check sweeps
    assert api.get("/sessions").status_code == 500
    assert api.get("/health").json()["active_sessions"] == 2
    # Another account's calls do not clear it...
    imp = pick(server, "IMPORT", username="bob", candidate=True, has_slots=True)
    assert api.check(bob, container_type="import", container_id=imp, **phase_fields()).ok
    assert api.get("/sessions").status_code == 500
    # ...a login with its credentials does (it finds the dead browser and drops it).
    fresh = api.post("/get_session", **creds("alice")).json()
    assert fresh["is_new"] is True and fresh["session_id"] != alice
    listing = api.get("/sessions")
    assert listing.status_code == 200
    assert {s["session_id"] for s in listing.json()["sessions"]} == {bob, fresh["session_id"]}
    assert all(re.fullmatch(r"https://\S+", s["current_url"]) for s in listing.json()["sessions"])
