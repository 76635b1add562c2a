"""Run the portal with production settings on one machine: `make serve`.

The README's "Running at scale" recipe as one command: DEBUG off (the settings then refuse to
start without SECRET_KEY, FIELD_ENCRYPTION_KEY and EMODAL_API_URL, or with the development
keys), `migrate`, `createcachetable`, `collectstatic`, then gunicorn (static files served by
WhiteNoise), SERVE_CLUSTERS `qcluster` processes and, with at least one, a delivery cluster
(webhooks and alert e-mails, on a queue of their own). Ctrl-C or SIGTERM, at any moment, stops
them all, as `make run` does: SIGTERM to each main process, SIGKILL to its group after a
deadline.

gunicorn's workers share their django-prometheus figures through PROMETHEUS_MULTIPROC_DIR (a
fresh directory per start), so that /metrics answers for all of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from run_portal import (  # noqa: E402
    PYTHON,
    ROOT,
    delivery_cluster,
    env,
    handle_stop_signals,
    manage,
    start,
    stop,
    stop_requested,
    supervise,
)


def main() -> int:
    handle_stop_signals()
    try:
        debug = env.bool("DEBUG", default=False)
        bind = env.str("SERVE_BIND", default="127.0.0.1:8000")
        web_workers = env.int("SERVE_WEB_WORKERS", default=3)
        clusters = env.int("SERVE_CLUSTERS", default=1)
    except ImproperlyConfigured as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if debug:
        print(
            "Error: make serve runs production settings: unset DEBUG (or set it to false).",
            file=sys.stderr,
        )
        return 1
    if web_workers < 1 or clusters < 0:
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
    for command in (
        ["migrate", "--verbosity", "1"],
        ["createcachetable"],
        ["collectstatic", "--noinput", "--verbosity", "1"],
    ):
        status = manage(*command, environment=production)
        if stop_requested():
            return 0
        if status:
            return status

    metrics_dir = Path(tempfile.mkdtemp(prefix="portal-prometheus-"))
    processes: list[tuple[str, subprocess.Popen]] = []
    try:
        for number in range(1, clusters + 1):
            if not stop_requested():
                processes.append(
                    start(f"task cluster {number}", [PYTHON, "manage.py", "qcluster"], production)
                )
        if clusters and not stop_requested():
            processes.append(start("delivery cluster", *delivery_cluster(production)))
        if not stop_requested():
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
                        bind,
                        "--workers",
                        str(web_workers),
                    ],
                    {**production, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                )
            )
        return supervise(processes, "serve")
    finally:
        stop(processes, "serve")
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
