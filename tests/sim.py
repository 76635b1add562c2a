"""Test-side handle on a running simulator: its control surface under /_sim/."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from emodal_sim import DEFAULT_LATENCIES

FAST_SCALE = 0.001


class SimControl:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def _post(self, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(f"{self.url}/_sim/{path}", json=json or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self.http.get(f"{self.url}/_sim/stats", timeout=10).json()

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        calls = self.http.get(f"{self.url}/_sim/calls", timeout=10).json()["calls"]
        return [c for c in calls if endpoint is None or c["endpoint"] == endpoint]

    def reset(self, *, time_scale: float = FAST_SCALE, idle_timeout: float = 600.0) -> None:
        self._post("reset")
        self.configure(
            time_scale=time_scale,
            idle_timeout=idle_timeout,
            capacity=10,
            latencies=dict(DEFAULT_LATENCIES),
        )

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._post("config", changes)

    def fault(self, endpoint: str, *, count: int = 1, mode: str = "status", **kw: Any) -> None:
        self._post("faults", {"endpoint": endpoint, "count": count, "mode": mode, **kw})

    def restart(self) -> None:
        self._post("restart")

    def expire(self, **who: str) -> None:
        self._post("sessions/expire", who)

    def delete(self, session_id: str) -> None:
        self._post("sessions/delete", {"session_id": session_id})

    def advance(self, username: str, steps: int = 1) -> None:
        self._post("data/advance", {"username": username, "steps": steps})

    def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Poll until `predicate()` holds, failing after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met before the deadline")
            time.sleep(0.01)
