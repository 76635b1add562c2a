"""What the load and chaos runs share before Django is set up: the environment every process
of a run gets (a fresh database in `bench/var/<run>/`, or PostgreSQL and Redis when asked),
the stamp printed at the head of a run, and percentiles.

Nothing here imports Django: the environment must be in place before `django.setup()`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "bench" / "var"


def environment(
    name: str, *, database_url: str | None, redis_url: str | None, overrides: dict[str, str]
) -> tuple[Path, dict[str, str]]:
    """A fresh working folder `bench/var/<name>/` and the environment of every process of the
    run (also applied to this one): a new SQLite file there unless `database_url` is given
    (that database is dropped and created again), Redis as broker and cache when
    `redis_url` is given (its database is flushed)."""
    var = VAR / name
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "emodal_portal.settings",
        "DEBUG": "true",
        "DATABASE_URL": database_url or f"sqlite:///{var / 'db.sqlite3'}",
        "MEDIA_ROOT": str(var / "media"),
        "LOG_LEVEL": "WARNING",
        **overrides,
    }
    # Empty, not absent: settings would otherwise take one from a `.env` file.
    env["REDIS_URL"] = redis_url or ""
    if database_url:
        _recreate_postgres(database_url)
    if redis_url:
        _flush_redis(redis_url)
    os.environ.clear()
    os.environ.update(env)
    return var, env


def _recreate_postgres(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit(f"--database-url must be a PostgreSQL URL, got {parts.scheme!r}")
    name = parts.path.lstrip("/")
    if not name.startswith("emodal_portal_"):
        # This run drops the database: refuse anything that does not look like a scratch one.
        raise SystemExit(f"refusing to drop {name!r}: use a database named emodal_portal_<yours>")
    admin = parts._replace(path="/postgres").geturl()
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(["psql", admin, "-q", "-c", sql], check=True, capture_output=True)


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def add_options(p: argparse.ArgumentParser, *, scratch: str) -> None:
    """The options every run on this stack takes: time scale, databases, settings."""
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.02,
        help="real seconds per simulated upstream second (default 0.02)",
    )
    p.add_argument(
        "--database-url",
        help="a scratch PostgreSQL database (dropped and created again), e.g. "
        f"postgres://postgres@127.0.0.1:5432/emodal_portal_{scratch}; default: a new SQLite file",
    )
    p.add_argument("--redis-url", help="Redis as broker and cache (its database is flushed first)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a portal setting for every process of the run (repeatable)",
    )


def stop_on_signals() -> None:
    """SIGINT/SIGTERM unwind the run once, so that every process it started is stopped."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def stamp(command: str, extra: str = "") -> str:
    """'# <date> · <CPUs> CPUs · commit <hash> · <command>'."""
    from bench.main import revision

    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [now, f"{os.cpu_count()} CPUs (shared)", revision()]
    if extra:
        parts.append(extra)
    parts.append(command)
    return "# " + " · ".join(parts)


def command_line(script: str, argv: Sequence[str] | None) -> str:
    return f"{script} {shlex.join(argv if argv is not None else sys.argv[1:])}".strip()


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
