"""The processes a benchmark scenario starts — simulators and an instrumented `qcluster` —
and the simulator's control surface. Each process gets its own process group and is stopped
by its own id: SIGTERM to the main process, SIGKILL to its group after a deadline."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STOP_DEADLINE = 20.0


class ProcessError(RuntimeError):
    """A helper process did not start or answer as expected."""


def _stop(process: subprocess.Popen[bytes], deadline: float = STOP_DEADLINE) -> None:
    """SIGTERM the main process (never its group: qcluster can hang on a group signal),
    then SIGKILL whatever is left of its group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=deadline)
    # Workers the main process left behind, or the main process itself if it hung.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait_for_line(
    path: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        match = regex.search(text)
        if match:
            return match.group(0)
        if process.poll() is not None:
            raise ProcessError(f"{process.args!r} exited with {process.returncode}; see {path}")
        time.sleep(0.05)
    raise ProcessError(f"{process.args!r} did not print {pattern!r} in {timeout:.0f} s; see {path}")


class Simulator:
    """`python -m emodal_sim` on a free port, with a client for its control surface."""

    def __init__(self, log: Path, *, time_scale: float) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "emodal_sim", "--port", "0", "--time-scale", str(time_scale), "--quiet"],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            line = _wait_for_line(log, r"listening on (http://\S+)", self.process, 30)
        except ProcessError:
            self.stop()
            raise
        self.url = line.split()[-1].rstrip("/")
        self.http = requests.Session()

    def _get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"{self.url}/_sim/{path}", params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._get("stats")

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self._get("calls", since=since)["calls"]

    def last_call_id(self) -> int:
        calls = self.calls()
        return max((int(c["id"]) for c in calls), default=0)

    def live_usernames(self) -> set[str]:
        return {str(s["username"]) for s in self._get("sessions")["sessions"]}

    def containers(self, username: str) -> list[dict[str, str]]:
        """The sheet rows the simulator serves to `username` (keyed by column name)."""
        return self._get("data/containers", username=username)["containers"]

    def container_numbers(self, username: str) -> list[str]:
        return [str(row["Container #"]) for row in self.containers(username)]

    def advance(self, username: str) -> None:
        """The account's next data generation: some containers change, one goes, one comes."""
        response = self.http.post(
            f"{self.url}/_sim/data/advance", json={"username": username}, timeout=60
        )
        response.raise_for_status()

    def evictions(self) -> list[dict[str, Any]]:
        return self._get("evictions")["evictions"]

    def chaos(self, **settings: Any) -> dict[str, Any] | None:
        """Turn on probabilistic faults (`POST /_sim/chaos`) when given settings; the chaos
        in force and what it injected so far."""
        if settings:
            response = self.http.post(f"{self.url}/_sim/chaos", json=settings, timeout=60)
            response.raise_for_status()
        return self._get("chaos")["chaos"]

    def stop(self) -> None:
        _stop(self.process)
        self._log.close()


class Cluster:
    """A real `qcluster` (through `bench/qcluster.py`, which logs each task's run)."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [PYTHON, str(ROOT / "bench" / "qcluster.py")],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        try:
            _wait_for_line(self.log_path, r"Q Cluster \S+ .*running\.", self.process, timeout)
        except ProcessError:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.process)
        self._log.close()


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group (Linux `/proc`),
    including their children that have ended and been waited for."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # After "pid (name)": state, ppid, pgrp, ... utime, stime, cutime, cstime (fields 14-17).
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            total += sum(int(value) for value in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every process of every user."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / ticks, sum(values) / ticks


def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Web:
    """gunicorn serving the portal (`emodal_portal.wsgi`) on a free loopback port."""

    def __init__(self, log: Path, env: dict[str, str], *, workers: int) -> None:
        self.log_path = log
        self._log = log.open("wb")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "emodal_portal.wsgi"]
            + ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
            + ["--error-logfile", "-", "--log-level", "info"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_line(log, r"Listening at: http://\S+", self.process, 60)
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{self.url}/accounts/login/", timeout=10).ok:
                        break
                if time.monotonic() > deadline:
                    raise ProcessError(f"gunicorn does not answer on {self.url}; see {log}")
                time.sleep(0.2)
        except ProcessError:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.process)
        self._log.close()
