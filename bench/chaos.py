"""Chaos run: a real `qcluster` runs a mixed batch of queries for several accounts against
the simulator with random transient errors and random evictions (`/_sim/chaos`), then the
run is checked from the simulator's call history and the database. One line per check,
PASS or FAIL with its figures; the exit status is 1 when a check fails.

    .venv/bin/python bench/chaos.py [--accounts 5] [--queries 40] [--workers 4] \\
        [--time-scale 0.02] [--error-rate 0.2] [--evict-rate 0.03] [--seed N] \\
        [--database-url postgres://...] [--redis-url redis://...] [--set NAME=VALUE]

See bench/README.md ("Chaos run") for what each check means.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stack  # noqa: E402
from bench.main import overrides  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/chaos.py",
        description="Run a mixed batch against an unreliable simulator and check the outcome.",
    )
    p.add_argument("--accounts", type=int, default=5, help="accounts (portal users), default 5")
    p.add_argument("--queries", type=int, default=40, help="queries in all, default 40")
    p.add_argument("--workers", type=int, default=4, help="qcluster workers, default 4")
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.02,
        help="real seconds per simulated upstream second (default 0.02)",
    )
    p.add_argument(
        "--error-rate", type=float, default=0.2, help="share of calls that fail (default 0.2)"
    )
    p.add_argument(
        "--close-share",
        type=float,
        default=0.5,
        help="share of those failures that hang up instead of answering 500 (default 0.5)",
    )
    p.add_argument(
        "--evict-rate",
        type=float,
        default=0.03,
        help="chance per call that a random live session is evicted (default 0.03)",
    )
    p.add_argument("--seed", type=int, default=None, help="the chaos seed (default: random)")
    p.add_argument(
        "--deadline",
        type=float,
        default=1800,
        # A step that failed waits for the sweep (once a minute, in real time) to run again.
        help="seconds the queries may take to end before the run is checked (default 1800)",
    )
    p.add_argument(
        "--database-url",
        help="a scratch PostgreSQL database (dropped and created again), e.g. "
        "postgres://postgres@127.0.0.1:5432/emodal_portal_chaos; default: a new SQLite file",
    )
    p.add_argument("--redis-url", help="Redis as broker and cache (its database is flushed first)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a portal setting for every process of the run (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 1 <= args.accounts <= 10:
        raise SystemExit("--accounts must be between 1 and 10 (one browser each)")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Unwind once, so that every started process is stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    command = stack.command_line("bench/chaos.py", argv)
    var, env = stack.environment(
        "chaos",
        database_url=args.database_url,
        redis_url=args.redis_url,
        overrides=overrides(args.set),
    )
    import django

    django.setup()
    from bench.chaos_run import run

    return run(args, var=var, command=command)


if __name__ == "__main__":
    sys.exit(main())
