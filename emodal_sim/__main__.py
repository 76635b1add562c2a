"""``python -m emodal_sim``: run the simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .config import DEFAULT_LATENCIES, SimConfig
from .server import SimServer


def _latency(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or name not in DEFAULT_LATENCIES:
        raise argparse.ArgumentTypeError(
            f"expected NAME=SECONDS with NAME one of: {', '.join(DEFAULT_LATENCIES)}"
        )
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emodal_sim", description="Simulator of the E-Modal automation API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5010)
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="real seconds per simulated second"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="expire sessions idle this many real seconds (default: never, like the real server)",
    )
    parser.add_argument(
        "--no-console",
        action="store_true",
        help="run without a login console: failed logins answer at once with the EOF error",
    )
    parser.add_argument(
        "--trucking-company",
        action="append",
        default=[],
        metavar="NAME",
        help="a trucking company of the appointment page's dropdown (repeatable; replaces the "
        "default list)",
    )
    parser.add_argument(
        "--glitch-rate",
        type=float,
        default=0.0,
        help="share of operation calls that meet one of their endpoint's real transient "
        "failures (0-1, seeded by --seed; default 0)",
    )
    parser.add_argument("--capacity", type=int, default=10, help="maximum live sessions")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--containers", type=int, default=40, help="containers per account")
    parser.add_argument(
        "--latency",
        type=_latency,
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="override one step's simulated latency (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = SimConfig(
            time_scale=args.time_scale,
            idle_timeout=args.idle_timeout,
            capacity=args.capacity,
            seed=args.seed,
            containers=args.containers,
            latencies=dict(args.latency),
            login_console=not args.no_console,
            glitch_rate=args.glitch_rate,
            **({"trucking_companies": args.trucking_company} if args.trucking_company else {}),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = SimServer(config, host=args.host, port=args.port, quiet=args.quiet)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    print(f"E-Modal simulator listening on {server.url}", flush=True)
    # A timed wait keeps the main thread responsive to signals.
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
