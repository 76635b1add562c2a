"""Command line of the benchmark (`bench/run.py`).

The parent process runs each scenario in a child process of its own: Django reads its
database from the environment once, and every scenario starts from a fresh SQLite file in
`bench/var/<scenario>/`. The child prints its line of figures on standard output (progress
goes to standard error); the parent collects the lines and prints them again at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "bench" / "var"
RESULT = "RESULT\t"

DEFAULT_TIME_SCALE = 0.02
DEFAULT_DEADLINE = 900.0

# The keys of `scenarios.SCENARIOS`, in the order they run (that module needs Django set up,
# which only the child processes do).
SCENARIO_NAMES = [
    "one-account-8-queries",
    "availability-25x-w8",
    "containers-25x-w16",
    "warm-repeat",
    "two-upstreams-40x-w16",
    "two-upstreams-40x-w20",
    "store-10k",
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Run the portal against the upstream simulator and print figures.",
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIO_NAMES,
        metavar="NAME",
        help=f"run only this scenario (repeatable); one of: {', '.join(SCENARIO_NAMES)}",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        help=f"real seconds per simulated upstream second (default {DEFAULT_TIME_SCALE})",
    )
    p.add_argument(
        "--timeout-scale",
        type=float,
        default=None,
        help="EMODAL_TIMEOUT_SCALE for the cluster (default max(2 x time scale, 0.05))",
    )
    p.add_argument("--quick", action="store_true", help="fewer accounts: a smoke run")
    p.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE,
        help=f"seconds a run may take before it is cut short (default {DEFAULT_DEADLINE:.0f})",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a portal setting for the cluster's environment, e.g. EMODAL_MAX_SESSIONS=8",
    )
    p.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    return p


def overrides(pairs: list[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set expects NAME=VALUE, got {pair!r}")
        result[name] = value
    return result


def child(args: argparse.Namespace) -> int:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Unwind once, so that every started process is stopped; a second signal must not
        # interrupt the stopping.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    import django

    django.setup()
    from .scenarios import Options, run

    options = Options(
        time_scale=args.time_scale,
        timeout_scale=args.timeout_scale or max(2 * args.time_scale, 0.05),
        quick=args.quick,
        deadline=args.deadline,
        var=VAR / args.child,
        overrides=overrides(args.set),
    )
    line = run(args.child, options)
    print(RESULT + line, flush=True)
    return 0


def run_scenario(name: str, args: argparse.Namespace) -> str:
    var = VAR / name
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "emodal_portal.settings",
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
        "MEDIA_ROOT": str(var / "media"),
        "LOG_LEVEL": "WARNING",
        **overrides(args.set),
    }
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--child", name]
    command += ["--time-scale", str(args.time_scale), "--deadline", str(args.deadline)]
    if args.timeout_scale is not None:
        command += ["--timeout-scale", str(args.timeout_scale)]
    if args.quick:
        command.append("--quick")
    for pair in args.set:
        command += ["--set", pair]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate()
    except KeyboardInterrupt:
        # The child stops what it started (it may have had the same SIGINT already).
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        raise
    lines = [line[len(RESULT) :] for line in out.splitlines() if line.startswith(RESULT)]
    if process.returncode != 0 or not lines:
        return f"{name:<22} FAILED (exit {process.returncode}); logs in {var.relative_to(ROOT)}/"
    return lines[-1]


def revision() -> str:
    """The commit measured, marked when the working tree differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            # Changes that cannot affect the figures do not count.
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
            + [":(exclude)bench", ":(exclude).gitignore", ":(exclude)*.md"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "commit unknown"
    return f"commit {commit or 'unknown'}{' + local changes' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.child:
        return child(args)
    names = args.scenario or SCENARIO_NAMES
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like on Ctrl-C
    command = "bench/run.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(
        f"# {now} · {os.cpu_count()} CPUs · {revision()} · time scale {args.time_scale} · "
        f"{command.strip()}",
        flush=True,
    )
    lines = []
    try:
        for name in names:
            line = run_scenario(name, args)
            print(line, flush=True)
            lines.append(line)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    if len(lines) > 1:
        print("\n" + "\n".join(lines))
    return 1 if any("FAILED" in line for line in lines) else 0
