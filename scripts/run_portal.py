"""Run the whole portal on one machine: `make run`.

Prepares the database and demo logins, then starts the upstream simulator (unless the
upstream is another server), the django-q2 task cluster, the delivery cluster (webhooks and
alert e-mails, on a queue of their own: `delivery_cluster()`) and the web server. Ctrl-C or
SIGTERM, at any moment, stops them all: each gets SIGTERM on its main process (signalling
qcluster's whole process group can hang it), then SIGKILL on its group after a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from emodal_portal.environment import portal_env  # noqa: E402

PYTHON = sys.executable
STOP_DEADLINE = 15.0

env = portal_env(ROOT)

# The signals that asked to stop, in order. A handler that only takes note (rather than raising
# in whatever line is running) never loses a process between its start and its being recorded.
STOP_SIGNALS: list[int] = []


def _take_note(signum: int, frame: object) -> None:
    STOP_SIGNALS.append(signum)


def handle_stop_signals() -> None:
    # Explicitly: a shell that starts this in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _take_note)
    signal.signal(signal.SIGTERM, _take_note)


def stop_requested() -> bool:
    return bool(STOP_SIGNALS)


def manage(*args: str, environment: dict[str, str] | None = None) -> int:
    """A manage.py command's exit status; a stop asked for meanwhile stops it too."""
    process = subprocess.Popen(  # noqa: S603
        [PYTHON, "manage.py", *args], cwd=ROOT, env=environment
    )
    while True:
        try:
            return process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if stop_requested():
                process.terminate()
                return process.wait()


def start(name: str, argv: list[str], extra_env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    print(f"[run] starting {name}", flush=True)
    process = subprocess.Popen(  # noqa: S603
        argv, cwd=ROOT, env={**os.environ, **extra_env}, start_new_session=True
    )
    return name, process


# The delivery cluster's name (settings.DELIVERY_CLUSTER): django-q2 reads it from the
# environment when it starts, and takes that cluster's queue and settings (Q_CLUSTER's
# ALT_CLUSTERS).
DELIVERY_CLUSTER = "deliveries"


def delivery_cluster(environment: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a qcluster that sends webhooks and alert e-mails."""
    return [PYTHON, "manage.py", "qcluster"], {**environment, "Q_CLUSTER_NAME": DELIVERY_CLUSTER}


def supervise(processes: list[tuple[str, subprocess.Popen]], label: str) -> int:
    """Until a stop is asked for (0) or one of the processes exits (1)."""
    while not stop_requested():
        for name, process in processes:
            if process.poll() is not None:
                print(f"[{label}] {name} exited with {process.returncode}", flush=True)
                return 1
        time.sleep(0.2)
    print(f"\n[{label}] stopping", flush=True)
    return 0


def stop(processes: list[tuple[str, subprocess.Popen]], label: str = "run") -> None:
    for _, process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE
    for name, process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[{label}] {name} did not stop in time; killing it", flush=True)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    print(f"[{label}] stopped", flush=True)


def main() -> int:
    handle_stop_signals()
    try:
        host = env.str("PORTAL_HOST", default="127.0.0.1")
        port = env.int("PORTAL_PORT", default=8000)
        sim_port = env.int("SIM_PORT", default=5010)
        # At 0.1 a demo availability run over a dozen containers takes about a minute and a half.
        sim_time_scale = env.float("SIM_TIME_SCALE", default=0.1)
        # The share of upstream calls that meet an everyday glitch (0: none).
        sim_glitch_rate = env.float("SIM_GLITCH_RATE", default=0.0)
        upstream = env.list("EMODAL_API_URLS", default=[]) or [
            env.str("EMODAL_API_URL", default="")
        ]
    except ImproperlyConfigured as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    sim_url = f"http://127.0.0.1:{sim_port}"
    (ROOT / "var").mkdir(exist_ok=True)
    for command in (
        ["migrate", "--verbosity", "0"],
        ["createcachetable"],
        ["seed_demo", "--url", f"http://{host}:{port}/"],
    ):
        status = manage(*command)
        if stop_requested():
            return 0
        if status:
            return status

    extra_env: dict[str, str] = {}
    processes: list[tuple[str, subprocess.Popen]] = []
    try:
        # The simulator, unless the upstream is another server (`.env.example` names the
        # simulator's own address, for `make serve` on a trial).
        if [url.rstrip("/") for url in upstream if url] in ([], [sim_url]):
            extra_env["EMODAL_API_URL"] = sim_url
            processes.append(
                start(
                    "upstream simulator",
                    [
                        PYTHON,
                        "-m",
                        "emodal_sim",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(sim_port),
                        "--time-scale",
                        str(sim_time_scale),
                        "--glitch-rate",
                        str(sim_glitch_rate),
                    ],
                    extra_env,
                )
            )
        if not stop_requested():
            processes.append(start("task cluster", [PYTHON, "manage.py", "qcluster"], extra_env))
        if not stop_requested():
            processes.append(start("delivery cluster", *delivery_cluster(extra_env)))
        if not stop_requested():
            processes.append(
                start(
                    "web server",
                    [PYTHON, "manage.py", "runserver", "--noreload", f"{host}:{port}"],
                    extra_env,
                )
            )
        return supervise(processes, "run")
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
