"""Run the whole portal on one machine: `make run`.

Prepares the database and demo logins, then starts the upstream simulator (unless
EMODAL_API_URL is configured), the django-q2 task cluster, the delivery cluster (webhooks and
alert e-mails, on a queue of their own: `delivery_cluster()`) and the web server. Ctrl-C stops
them all: each gets SIGTERM on its main process (signalling qcluster's whole process group
can hang it), then SIGKILL on its group after a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import environ

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STOP_DEADLINE = 15.0

env = environ.Env()
env.read_env(ROOT / ".env", overwrite=False)

HOST = env.str("PORTAL_HOST", default="127.0.0.1")
PORT = env.int("PORTAL_PORT", default=8000)
SIM_PORT = env.int("SIM_PORT", default=5010)
# At 0.1 a demo availability run over a dozen containers takes about a minute and a half.
SIM_TIME_SCALE = env.float("SIM_TIME_SCALE", default=0.1)


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)  # noqa: S603


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


def stop(processes: list[tuple[str, subprocess.Popen]]) -> None:
    for _, process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE
    for name, process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[run] {name} did not stop in time; killing it", flush=True)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    print("[run] stopped", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    manage("migrate", "--verbosity", "0")
    manage("createcachetable")
    manage("seed_demo", "--url", f"http://{HOST}:{PORT}/")

    extra_env: dict[str, str] = {}
    processes: list[tuple[str, subprocess.Popen]] = []
    if not env.str("EMODAL_API_URL", default=""):
        extra_env["EMODAL_API_URL"] = f"http://127.0.0.1:{SIM_PORT}"
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
                    str(SIM_PORT),
                    "--time-scale",
                    str(SIM_TIME_SCALE),
                ],
                extra_env,
            )
        )
    processes.append(start("task cluster", [PYTHON, "manage.py", "qcluster"], extra_env))
    processes.append(start("delivery cluster", *delivery_cluster(extra_env)))
    processes.append(
        start(
            "web server",
            [PYTHON, "manage.py", "runserver", "--noreload", f"{HOST}:{PORT}"],
            extra_env,
        )
    )

    # Explicitly: a shell that starts this in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            for name, process in processes:
                if process.poll() is not None:
                    print(f"[run] {name} exited with {process.returncode}", flush=True)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\n[run] stopping", flush=True)
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
