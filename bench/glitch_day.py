"""A glitchy day on E-Modal: availability runs of a few accounts against the simulator with its
transient error rate (`glitch_rate`, seeded) at 10 %, the upstream's everyday glitches (a page
not rendered yet, a stale element, an export file not found after download) answered with the
real server's texts. Prints what the runs did, one figure a line.

    .venv/bin/python bench/glitch_day.py [--accounts 3] [--glitch-rate 0.10] [--seed 7] \\
        [--time-scale 0.002]

The portal runs in this process (its engine steps, no cluster) on a fresh SQLite file under a
temporary directory; the simulator runs in a thread. Upstream back-offs, and the age at which a
failed check's held workflow closes its browser (EMODAL_POISON_SECONDS, where the portal has
it), are scaled like the simulator's clock.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/glitch_day.py", description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, default=6, help="accounts, one run each (default 6)")
    p.add_argument("--containers", type=int, default=200, help="rows per sheet (default 200)")
    p.add_argument("--glitch-rate", type=float, default=0.10, help="default 0.10")
    p.add_argument("--seed", type=int, default=7, help="the simulator's glitch seed (default 7)")
    p.add_argument(
        "--time-scale", type=float, default=0.002, help="real seconds per upstream second"
    )
    p.add_argument("--deadline", type=float, default=600, help="seconds the runs may take")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="glitch-day-"))
    scale = args.time_scale
    os.environ.update(
        DJANGO_SETTINGS_MODULE="emodal_portal.settings",
        DEBUG="true",
        LOG_LEVEL="ERROR",
        DATABASE_URL=f"sqlite:///{scratch / 'db.sqlite3'}",
        MEDIA_ROOT=str(scratch / "media"),
        EMODAL_TIMEOUT_SCALE=str(max(2 * scale, 0.05)),
        EMODAL_POLL_SECONDS="0.02",
        QUERY_RETRY_BASE_SECONDS=str(30 * scale),
        EMODAL_RETRY_BASE_SECONDS=str(2 * scale),
        EMODAL_RETRY_MAX_SECONDS=str(10 * scale),
        EMODAL_BREAKER_RESET_SECONDS=str(60 * scale),
        EMODAL_POISON_SECONDS=str(420 * scale),
        EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR="0",
        EMODAL_CAPTCHA_BUDGET_PER_HOUR="0",
    )
    import django

    django.setup()
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test.utils import override_settings

    from emodal_sim import SimConfig, SimServer
    from queries_app.engine import run_queries, sweep_queries
    from queries_app.models import Query
    from queries_app.services import start_query
    from sessions_app.models import Account
    from tests.sim import SimControl

    call_command("migrate", verbosity=0, stdout=io.StringIO())
    call_command("createcachetable", verbosity=0, stdout=io.StringIO())
    config = SimConfig(time_scale=scale, seed=args.seed, glitch_rate=args.glitch_rate)
    with SimServer(config, host="127.0.0.1", port=0).start() as server:
        sim = SimControl(server.url)
        with override_settings(EMODAL_API_URL=server.url, EMODAL_API_URLS=[server.url]):
            accounts = []
            for n in range(1, args.accounts + 1):
                user = get_user_model().objects.create_user(username=f"day{n}")
                accounts.append(
                    Account.objects.create(
                        user=user,
                        emodal_username=f"glitch-day-{n}+c{args.containers}",
                        password="pw",  # noqa: S106 - the simulator's, no real account
                        captcha_api_key="key",
                        trucking_company="K & R TRANSPORTATION LLC",
                        truck_plate="ABC123",
                    )
                )
            ids = [start_query(account=a, kind="availability")[0].pk for a in accounts]
            started = time.monotonic()
            ends = started + args.deadline
            while Query.objects.filter(pk__in=ids, status__in=Query.LIVE_STATUSES).exists():
                if time.monotonic() > ends:
                    break
                run_queries(budget_seconds=5)
                sweep_queries()
            seconds = time.monotonic() - started
        report(args, sim, ids, seconds)
    return 0


def report(args: argparse.Namespace, sim: Any, ids: list[int], seconds: float) -> None:
    from queries_app.models import AppointmentCheck, Query
    from sessions_app.models import Account, SessionEvent

    calls = sim.calls("/check_appointments")
    per_container: Counter[str] = Counter()
    for call in calls:
        params = call.get("params") or {}
        per_container[str(params.get("container_id") or params.get("booking_number"))] += 1
    failed_calls = [c for c in calls if c["status"] != 200]
    resumed = [c for c in calls if c.get("resumed")]
    queries = list(Query.objects.filter(pk__in=ids))
    planned = sum(len((q.state or {}).get("checks", [])) for q in queries)
    checks = AppointmentCheck.objects.filter(query__in=ids)
    outcomes = Counter(checks.values_list("outcome", flat=True))
    stats = sim.stats()
    print(
        f"glitch day: {args.accounts} availability runs, glitch rate {args.glitch_rate:.0%}, "
        f"seed {args.seed}, time scale {args.time_scale}, {seconds:.0f} s"
    )
    print(
        f"runs: {Counter(q.status for q in queries)}; with a note: "
        f"{sum(1 for q in queries if q.notes)}"
    )
    for q in queries:
        if q.error:
            print(f"  run #{q.pk} failed: {q.error[:160]}")
    print(f"checks sent (check_appointments calls): {len(calls)}, of them resumes: {len(resumed)}")
    print(f"check calls failed: {len(failed_calls)}")
    print(
        f"containers to check: {planned}; accounted for: {checks.count()} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))})"
    )
    print(
        "accounts flagged: "
        f"{Account.objects.exclude(appointment_error='').count()} of {args.accounts}"
    )
    captchas = SessionEvent.objects.filter(captcha_spent=True).count()
    print(
        f"captchas: {captchas} (simulator: {stats.get('captchas', stats.get('logins'))}); "
        f"browsers closed by a held workflow: {stats.get('poisoned_browsers')}"
    )
    if per_container:
        counts = list(per_container.values())
        print(
            f"check calls per container: max {max(counts)}, "
            f"mean {sum(counts) / len(counts):.2f} over {len(counts)} containers"
        )


if __name__ == "__main__":
    sys.exit(main())
