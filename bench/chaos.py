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
import sys
from pathlib import Path

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
        help="seconds the queries may take to end before the run is checked (default 1800)",
    )
    stack.add_options(p, scratch="chaos")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 1 <= args.accounts <= 10:
        raise SystemExit("--accounts must be between 1 and 10 (one browser each)")

    stack.stop_on_signals()
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
