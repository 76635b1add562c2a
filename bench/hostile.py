"""Hostile peers against the portal's outbound calls: how long each holds the calling worker,
how much memory it costs, and which webhook addresses get through.

    .venv/bin/python bench/hostile.py [--interval 0.5] [--cap 30] [--huge-mb 300] [--bomb-mb 500]

- webhooks (N1): a receiver that sends its status line, then one header byte every
  `--interval` seconds; one that sends its headers, then a body byte every `--interval`
  seconds; one that sends a body forever. WEBHOOK_TIMEOUT_SECONDS is 2 s.
- upstream (N2): a proxy in front of the simulator answers the timeline call with a huge JSON
  (with a Content-Length, and without one), a gzip bomb, or its headers and then one body byte
  every `--interval` seconds; the call's timeout is 3 s, EMODAL_MAX_JSON_BYTES its default.
  Memory is the process's peak RSS (VmHWM) growth during the call.
- SSRF (N9): IPv6 forms that embed a loopback, private or metadata IPv4 address, as a
  registered URL and as an address a name resolves to.

A call still running after `--cap` seconds is stopped by stopping its peer (reported as held
"≥ cap"). Figures go to standard output, one line each.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emodal_portal.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from emodal_sim import SimConfig, SimServer  # noqa: E402
from emodal_sim.data import containers_for  # noqa: E402
from tests.hostile import Hostile, peak_rss_mb, reset_peak_rss  # noqa: E402

MB = 1024 * 1024
# The simulator's login for this bench (no real account).
LOGIN = {"username": "bench-hostile", "password": "pw", "captcha_api_key": "key"}


def capped(call: Any, peer: Hostile, cap: float) -> tuple[float, Any, bool]:
    """(seconds, result or exception, whether the cap stopped it)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as exc:  # noqa: BLE001 - reported
            outcome["result"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(cap)
    stopped = thread.is_alive()
    if stopped:
        peer.stop()
        thread.join(30)
    return time.monotonic() - started, outcome.get("result"), stopped


def describe(result: Any) -> str:
    if isinstance(result, Exception):
        text = getattr(result, "readable", lambda: str(result))()
        return f"{type(result).__name__}: {text}"[:140]
    if hasattr(result, "error"):
        return f"status {result.status}, error {result.error!r}"[:140]
    return f"ok ({type(result).__name__})"


def held(seconds: float, stopped: bool) -> str:
    return f"≥ {seconds:.1f} s (stopped by the bench)" if stopped else f"{seconds:.1f} s"


def webhooks(args: argparse.Namespace) -> None:
    from notifications.channels import webhook_transport as transport

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    for mode in ("drip_headers", "drip_body", "endless"):
        peer = Hostile(mode, interval=args.interval)
        reset_peak_rss()
        before = peak_rss_mb()
        seconds, result, stopped = capped(
            lambda peer=peer: transport.post(f"{peer.url}/hook", b"{}", {}), peer, args.cap
        )
        grew = peak_rss_mb() - before
        peer.stop()
        print(
            f"N1 webhook {mode:13} timeout 2 s: worker held {held(seconds, stopped)}, "
            f"RSS +{max(grew, 0):.0f} MB; {describe(result)}",
            flush=True,
        )


def upstream(args: argparse.Namespace) -> None:
    from sessions_app.upstream import EModalClient

    config = SimConfig(time_scale=0.001)
    with SimServer(config, host="127.0.0.1", port=0).start() as sim:
        number = containers_for("bench-hostile", config)[0]["Container #"]
        for mode, size in (
            ("huge_json", args.huge_mb * MB),
            ("huge_json_unsized", args.huge_mb * MB),
            ("gzip_bomb", args.bomb_mb * MB),
            ("drip_body", 0),
        ):
            peer = Hostile(
                mode,
                interval=args.interval,
                size=size,
                upstream=sim.url,
                target="/get_container_timeline",
            )
            api = EModalClient(peer.url, timeouts={"get_container_timeline": 3})
            sid = api.get_session(**LOGIN).session_id
            if mode == "gzip_bomb":
                from tests.hostile import gzip_bomb

                gzip_bomb(size)  # built before the measurement
            reset_peak_rss()
            before = peak_rss_mb()
            seconds, result, stopped = capped(
                lambda api=api, sid=sid: api.get_container_timeline(sid, container_id=number),
                peer,
                args.cap,
            )
            grew = peak_rss_mb() - before
            peer.stop()
            api.close()
            print(
                f"N2 upstream {mode:17} ({size // MB} MB) read timeout 3 s: worker held "
                f"{held(seconds, stopped)}, peak RSS +{max(grew, 0):.0f} MB; {describe(result)}",
                flush=True,
            )


FORMS = [
    "::127.0.0.1",
    "::ffff:127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
]


def ssrf() -> None:
    from django.core.exceptions import ValidationError

    from notifications.channels import webhook_transport as transport
    from notifications.endpoints import clean_url

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    registered = resolved = 0
    for form in FORMS:
        try:
            clean_url(f"http://[{form}]/hook")
        except ValidationError:
            pass
        else:
            registered += 1
        if transport.address_allowed(form):
            resolved += 1
    print(
        f"N9 ssrf: {registered} of {len(FORMS)} IPv6 forms accepted as a URL, {resolved} of "
        f"{len(FORMS)} accepted as a resolved address ({', '.join(FORMS)})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--cap", type=float, default=30.0)
    parser.add_argument("--huge-mb", type=int, default=300)
    parser.add_argument("--bomb-mb", type=int, default=500)
    args = parser.parse_args()
    webhooks(args)
    upstream(args)
    ssrf()


if __name__ == "__main__":
    main()
