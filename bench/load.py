"""Load run: simulated users (Locust, headless) on the results pages of the portal served by
gunicorn, while a real `qcluster` runs a batch against the time-scaled simulator. Prints the
response times per page, request and error counts, and the triggers' response times.

    .venv/bin/python -m pip install -r requirements-bench.txt   # Locust, once
    .venv/bin/python bench/load.py [--users 20] [--seconds 120] [--batch-accounts 8] \\
        [--web-workers 4] [--workers 4] [--time-scale 0.02] \\
        [--database-url postgres://...] [--redis-url redis://...] [--set NAME=VALUE]

See bench/README.md ("Load") for what it does and the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stack  # noqa: E402
from bench.main import overrides  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/load.py",
        description="Simulated users on the results pages while a batch runs; prints figures.",
    )
    p.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    p.add_argument("--seconds", type=int, default=120, help="length of the load (default 120)")
    p.add_argument(
        "--containers",
        type=int,
        default=250,
        help="containers per account (default 250: three pages of results)",
    )
    p.add_argument(
        "--batch-accounts",
        type=int,
        default=8,
        help="accounts in the availability batch running under the load (default 8)",
    )
    p.add_argument("--web-workers", type=int, default=4, help="gunicorn workers (default 4)")
    p.add_argument("--workers", type=int, default=4, help="qcluster workers (default 4)")
    stack.add_options(p, scratch="load")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if importlib.util.find_spec("locust") is None:
        print(
            "Locust is not installed: .venv/bin/python -m pip install -r requirements-bench.txt",
            file=sys.stderr,
        )
        return 2
    if args.batch_accounts > args.users:
        raise SystemExit("--batch-accounts cannot exceed --users (the batch runs their accounts)")

    stack.stop_on_signals()
    command = stack.command_line("bench/load.py", argv)
    var, env = stack.environment(
        "load",
        database_url=args.database_url,
        redis_url=args.redis_url,
        overrides=overrides(args.set),
    )
    import django

    django.setup()
    from bench.load_run import run

    return run(args, var=var, env=env, command=command)


if __name__ == "__main__":
    sys.exit(main())
