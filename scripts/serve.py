"""Run the portal with production settings on one machine: `make serve`.

The README's "Running at scale" recipe as one command: DEBUG off (the settings then refuse to
start without SECRET_KEY and FIELD_ENCRYPTION_KEY), `migrate`, `createcachetable`,
`collectstatic`, then gunicorn (static files served by WhiteNoise), SERVE_CLUSTERS `qcluster`
processes and, with at least one, a delivery cluster (webhooks and alert e-mails, on a queue
of their own). Ctrl-C or SIGTERM stops them all, as `make run` does: SIGTERM to each main
process, SIGKILL to its group after a deadline.

gunicorn's workers share their django-prometheus figures through PROMETHEUS_MULTIPROC_DIR (a
fresh directory per start), so that /metrics answers for all of them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import environ

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_portal import _interrupt, delivery_cluster, start, stop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

env = environ.Env()
env.read_env(ROOT / ".env", overwrite=False)

BIND = env.str("SERVE_BIND", default="127.0.0.1:8000")
WEB_WORKERS = env.int("SERVE_WEB_WORKERS", default=3)
CLUSTERS = env.int("SERVE_CLUSTERS", default=1)


def manage(*args: str, environment: dict[str, str]) -> None:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=environment, check=False)  # noqa: S603
    if done.returncode:
        raise SystemExit(done.returncode)


def main() -> int:
    if env.bool("DEBUG", default=False):
        print(
            "Error: make serve runs production settings: unset DEBUG (or set it to false).",
            file=sys.stderr,
        )
        return 1
    if WEB_WORKERS < 1 or CLUSTERS < 0:
        print(
            "Error: SERVE_WEB_WORKERS must be 1 or more, SERVE_CLUSTERS 0 or more.", file=sys.stderr
        )
        return 1
    production = {
        **os.environ,
        "DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "emodal_portal.settings",
    }
    # Each stops with one line ("Error: SECRET_KEY must be set when DEBUG is off.") on a
    # configuration mistake, before anything is started.
    manage("migrate", "--verbosity", "1", environment=production)
    manage("createcachetable", environment=production)
    manage("collectstatic", "--noinput", "--verbosity", "1", environment=production)

    metrics_dir = Path(tempfile.mkdtemp(prefix="portal-prometheus-"))
    processes: list[tuple[str, subprocess.Popen]] = []
    # Explicitly: a shell that starts this in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for number in range(1, CLUSTERS + 1):
            processes.append(
                start(f"task cluster {number}", [PYTHON, "manage.py", "qcluster"], production)
            )
        if CLUSTERS:
            processes.append(start("delivery cluster", *delivery_cluster(production)))
        processes.append(
            start(
                "web server (gunicorn)",
                [
                    PYTHON,
                    "-m",
                    "gunicorn",
                    "emodal_portal.wsgi",
                    "--config",
                    str(ROOT / "scripts" / "gunicorn_conf.py"),
                    "--bind",
                    BIND,
                    "--workers",
                    str(WEB_WORKERS),
                ],
                {**production, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
            )
        )
        while True:
            for name, process in processes:
                if process.poll() is not None:
                    print(f"[serve] {name} exited with {process.returncode}", flush=True)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\n[serve] stopping", flush=True)
        return 0
    finally:
        stop(processes)
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
