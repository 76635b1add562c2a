"""Helpers of the simulator's own tests: a thin HTTP client, request bodies and data lookups."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from emodal_sim import DEFAULT_LATENCIES, DEFAULT_TERMINALS, DEFAULT_TRUCKING_COMPANIES, SimServer
from emodal_sim import data as simdata

SCALE = 0.001
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NAIVE_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?"
STAMP = r"\d{8}_\d{6}"
TERMINAL_24H = "Terminal 18"  # a 24-hour page with a container field
TERMINAL_12H = "Pacific Container Terminal"
NO_SLOTS = ("No Appointments Available!", "No Appointments Available")
COMPANY = DEFAULT_TRUCKING_COMPANIES[0]


def default_config() -> dict[str, Any]:
    return {
        "time_scale": SCALE,
        "idle_timeout": None,
        "capacity": 10,
        "latencies": dict(DEFAULT_LATENCIES),
        "login_console": True,
        "trucking_companies": list(DEFAULT_TRUCKING_COMPANIES),
        "terminals": list(DEFAULT_TERMINALS),
        "glitch_rate": 0.0,
    }


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
        answer = self.post("/_sim/faults", **body)
        assert answer.status_code == 200, answer.text

    def sim_sessions(self) -> list[dict[str, Any]]:
        return self.get("/_sim/sessions").json()["sessions"]

    def workflows(self) -> list[dict[str, Any]]:
        return self.get("/_sim/sessions").json()["workflows"]

    def is_busy(self, session_id: str) -> bool:
        return any(s["session_id"] == session_id and s["busy"] for s in self.sim_sessions())

    def check(self, session_id: str, **fields: Any) -> requests.Response:
        return self.post("/check_appointments", session_id=session_id, **fields)


def creds(username: str = "alice") -> dict[str, str]:
    return {"username": username, "password": "pw", "captcha_api_key": "key"}


def phase_fields(terminal: str = TERMINAL_24H, **overrides: Any) -> dict[str, Any]:
    return {
        "trucking_company": COMPANY,
        "terminal": terminal,
        "move_type": "PICK FULL",
        "truck_plate": "ABC123",
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
        try:
            box["response"] = fn()
        except requests.RequestException as exc:
            box["error"] = exc

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


def slots(
    server: SimServer, container_id: str, terminal: str, username: str = "alice"
) -> list[str]:
    """The slots the page offers ``container_id`` at ``terminal`` now."""
    hidden = sheet(server, username).hidden[container_id]
    return simdata.available_times(
        container_id,
        terminal,
        server.config,
        dt.datetime.now().astimezone(),
        has_slots=hidden.has_slots,
        version=hidden.slot_version,
    )


def duration(call: dict[str, Any]) -> float:
    return call["end"] - call["start"]
