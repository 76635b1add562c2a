"""Test-side handle on a running simulator: its control surface under /_sim/."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from emodal_sim import DEFAULT_LATENCIES, DEFAULT_TERMINALS, DEFAULT_TRUCKING_COMPANIES

FAST_SCALE = 0.001


class SimControl:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def _post(self, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(f"{self.url}/_sim/{path}", json=json or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/_sim/{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._get("stats")

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        calls = self._get("calls")["calls"]
        return [c for c in calls if endpoint is None or c["endpoint"] == endpoint]

    def reset(self, *, time_scale: float = FAST_SCALE, idle_timeout: float | None = None) -> None:
        """Forget everything and go back to the defaults: no idle expiry (like the real
        server), a login console, the default dropdowns and latencies, no glitches."""
        self._post("reset")
        self.configure(
            time_scale=time_scale,
            idle_timeout=idle_timeout,
            capacity=10,
            latencies=dict(DEFAULT_LATENCIES),
            login_console=True,
            trucking_companies=list(DEFAULT_TRUCKING_COMPANIES),
            terminals=list(DEFAULT_TERMINALS),
            glitch_rate=0.0,
        )

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._post("config", changes)

    def fault(self, endpoint: str, *, count: int = 1, mode: str = "status", **kw: Any) -> None:
        self._post("faults", {"endpoint": endpoint, "count": count, "mode": mode, **kw})

    def glitch(self, endpoint: str, kind: str, *, count: int = 1, **where: str) -> None:
        """The next ``count`` calls of ``endpoint`` meet that real transient failure (``step``
        of the appointment page, ``container_id`` of a bulk entry; see emodal_sim.glitches)."""
        self.fault(endpoint, count=count, mode="glitch", kind=kind, **where)

    def answer(self, endpoint: str, fields: dict[str, Any], *, count: int = 1) -> None:
        """A test control, not real behaviour: the next successful answer of ``endpoint``
        carries ``fields`` (merged over its body) — for tests of fail-closed reading."""
        self.fault(endpoint, count=count, mode="answer", fields=fields)

    def chaos(self, **settings: Any) -> dict[str, Any] | None:
        """Random faults from now on (``error_rate``, ``evict_rate``, ``close_share``,
        ``stale_sheet_rate``, ``glitch_rate``, ``seed``, ``endpoints``); the chaos in force and
        what it injected."""
        if settings:
            self._post("chaos", settings)
        return self._get("chaos")["chaos"]

    def restart(self) -> None:
        self._post("restart")

    def expire(self, **who: str) -> None:
        self._post("sessions/expire", who)

    def delete(self, session_id: str) -> None:
        self._post("sessions/delete", {"session_id": session_id})

    def sessions(self) -> list[dict[str, Any]]:
        """Live sessions with simulator detail (``busy``, ``dead``, ``idle_seconds``...)."""
        return self._get("sessions")["sessions"]

    def poisons(self) -> list[dict[str, Any]]:
        """Held (failed) appointment workflows that will close their browser when due."""
        return self._get("sessions")["poisons"]

    def workflows(self) -> list[dict[str, Any]]:
        """Every appointment workflow the server keeps: running checks and held failures
        (``appointment_session_id``, ``session_id``, ``phase``, ``running``, ``due_in``...)."""
        return self._get("sessions")["workflows"]

    def bookings(self) -> list[dict[str, Any]]:
        """Appointments make_appointment really booked (what the page selected), in order."""
        return self._get("bookings")["bookings"]

    def plates(self, username: str) -> list[str]:
        """The truck plates the appointment page lists for ``username``."""
        return self.containers(username)["truck_plates"]

    def advance(self, username: str, steps: int = 1) -> None:
        self._post("data/advance", {"username": username, "steps": steps})

    def add_rows(self, username: str, numbers: list[str]) -> None:
        """Rows with these container numbers, written as given, in the account's sheet."""
        self._post("data/rows", {"username": username, "numbers": numbers})

    def containers(self, username: str, generation: int | None = None) -> dict[str, Any]:
        """``{"containers": rows, "details": {number: {...}}, "generation": n, ...}``."""
        params: dict[str, Any] = {"username": username}
        if generation is not None:
            params["generation"] = generation
        return self._get("data/containers", **params)

    def changes(self, username: str, generation: int | None = None) -> dict[str, list[str]]:
        """Container numbers changing from ``generation`` (default: the current one) to the
        next, by kind: slots_opened, slots_closed, holds_released, lfd, pregate_ticket_set,
        status, removed, added."""
        params: dict[str, Any] = {"username": username}
        if generation is not None:
            params["generation"] = generation
        return self._get("data/changes", **params)["changes"]

    def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Poll until `predicate()` holds, failing after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met before the deadline")
            time.sleep(0.01)
