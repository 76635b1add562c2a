"""The portal's web side as a real gunicorn process (for tests that scrape or browse it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from .processes import ROOT

LISTENING = re.compile(r"Listening at: (http://[\d.]+:\d+)")


def wait_for_url(
    log: Path,
    process: subprocess.Popen,
    *,
    pattern: re.Pattern[str] = LISTENING,
    timeout: float = 60.0,
) -> str:
    """The address a starting server prints in its log, once it answers there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        found = pattern.search(log.read_text(errors="replace"))
        if found:
            url = found.group(1)
            try:
                # Any answer means it serves; /healthz may take its upstream checks' time.
                requests.get(f"{url}/healthz", timeout=30)
            except requests.RequestException:  # not answering yet (or too busy starting)
                pass
            else:
                return url
        time.sleep(0.1)
    raise AssertionError(f"the server did not start in time:\n{log.read_text()}")


class Gunicorn:
    """`gunicorn emodal_portal.wsgi` on a free loopback port, in its own process group."""

    def __init__(self, env: dict[str, str], *, workers: int = 2) -> None:
        self.log = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "emodal_portal.wsgi",
                "--bind",
                "127.0.0.1:0",
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.url = wait_for_url(self.log, self.process)
        except BaseException:
            self.stop()  # never left running when it did not start in time
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.unlink(missing_ok=True)
