"""Board benchmark: the containers board of an account with 10 000 containers. Builds the board
from a 10 000-row availability run (the real `update_board`), merges a second run that changed
1 % of them, then times the board's pages through Django's full request path (middleware,
session, template) in this process: p50 / p95 / max and the SQL statements per request.

    .venv/bin/python bench/board.py [--database-url sqlite:///bench/var/board/db.sqlite3]
        [--containers 10000] [--requests 60]

The database named in the URL is dropped and created anew (PostgreSQL), or the SQLite file
replaced. See bench/README.md ("The board") for the figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.main import revision  # noqa: E402
from bench.prune import fresh_database  # noqa: E402

DEFAULT_URL = f"sqlite:///{ROOT / 'bench' / 'var' / 'board' / 'db.sqlite3'}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/board.py", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=DEFAULT_URL)
    p.add_argument("--containers", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=60, help="requests per page (default 60)")
    return p


def main() -> int:
    args = parser().parse_args()
    fresh_database(args.database_url)
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": args.database_url, "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "emodal_portal.settings"
    import django

    django.setup()
    return run(args)


def fill(count: int) -> tuple[object, list[tuple[float, int, int, int]]]:
    """An account whose first availability run listed `count` containers (5 % checked for
    slots), and a second run in which 1 % changed; the board built from both."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from containers_app.board import update_board
    from containers_app.models import Container, Watch
    from queries_app.models import AppointmentCheck, ContainerRow, Query
    from queries_app.results import insert_rows
    from sessions_app.models import Account

    user = get_user_model().objects.create_user("bench")
    account = Account.objects.create(user=user, emodal_username="bench+c10000")
    today = timezone.localdate()
    terminals = ["TTI", "PCT", "ITS", "LBCT", "YTI", "APM", "SSA"]
    timings = []
    queries = []
    for generation in range(2):
        now = timezone.now()
        query = Query.objects.create(
            account=account,
            kind="availability",
            status=Query.Status.SUCCEEDED,
            started_at=now - timedelta(minutes=30),
            finished_at=now,
        )
        queries.append(query.pk)
        rows = []
        for n in range(count):
            moved = generation == 1 and n % 100 == 7  # 1 % of the containers change
            rows.append(
                {
                    "query": query.pk,
                    "container_number": f"BNCH{n:07d}",
                    "trade_type": "EXPORT" if n % 5 == 0 else "IMPORT",
                    "status": ["IN YARD", "GATE OUT", "ON VESSEL", "GATE IN"][n % 4],
                    "holds": (n % 3 == 0) and not moved,
                    "pregate_ticket": "" if n % 11 else f"TTI-{n}",
                    "pregate_status": "",
                    "gate_status": "",
                    "origin": terminals[n % 7],
                    "destination": terminals[(n + 3) % 7],
                    "current_location": terminals[(n + 1) % 7],
                    "line": "MAERSK",
                    "vessel_name": "EVER GIVEN",
                    "vessel_code": "9811000",
                    "voyage": "001E",
                    "size_type": "40DH",
                    "fees": "",
                    "last_free_day": today + timedelta(days=n % 16 - 5 + (2 if moved else 0)),
                    "good_through": today + timedelta(days=n % 16 - 5),
                    "tags": "",
                    "raw": {},
                }
            )
        insert_rows(ContainerRow, rows)
        AppointmentCheck.objects.bulk_create(
            AppointmentCheck(
                query=query,
                container_number=f"BNCH{n:07d}",
                outcome="available" if (n + generation) % 2 else "none",
                slot_count=2 if (n + generation) % 2 else 0,
                earliest_slot=now + timedelta(days=1) if (n + generation) % 2 else None,
            )
            for n in range(0, count, 20)
        )
        started = time.perf_counter()
        done = update_board(query.pk)
        timings.append((time.perf_counter() - started, done))
    Watch.objects.bulk_create(
        Watch(user=user, container=c) for c in Container.objects.filter(account=account)[:200]
    )
    return user, [
        (seconds, done.changed, done.created, len(done.events)) for seconds, done in timings
    ]


class Portal:
    """Requests through Django's own WSGI handler, as gunicorn calls it (not the test client,
    whose instrumentation keeps every rendered template's context alive), as a logged-in user."""

    def __init__(self, user: object) -> None:
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import Client, RequestFactory

        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.factory = RequestFactory(
            HTTP_HOST="localhost", HTTP_COOKIE=f"{settings.SESSION_COOKIE_NAME}={cookie}"
        )
        self.handler = WSGIHandler()

    def get(self, url: str, params: dict) -> int:
        environ = self.factory.get(url, params).environ
        status: list[str] = []
        body = self.handler(environ, lambda line, headers, *exc: status.append(line))
        b"".join(body)  # a streamed export is produced while it is read
        body.close()
        return int(status[0].split()[0])


def measure(portal: Portal, url: str, params: dict, requests: int) -> tuple[list[float], int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    portal.get(url, params)  # warm: templates compiled, connection open
    times = []
    statements = 0
    for _ in range(requests):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            status = portal.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
        statements = max(statements, len(captured.captured_queries))
    return times, statements, status


def run(args: argparse.Namespace) -> int:
    from django.db import connection

    from containers_app.models import Container

    user, builds = fill(args.containers)
    # What the set-up left in memory is not a web server's heap: out of the collector's way.
    gc.collect()
    gc.freeze()
    portal = Portal(user)
    vendor = connection.vendor
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M %Z')} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · {vendor} · {revision()} · "
        f"bench/board.py --containers {args.containers}"
    )
    (first, _, created, events1), (second, changed, _, events2) = builds
    print(
        f"board built from the first run ({created} containers): {first * 1000:.0f} ms, "
        f"{events1} events (due dates)"
    )
    print(
        f"second run merged ({changed} containers changed): {second * 1000:.0f} ms, "
        f"{events2} events"
    )
    total = Container.objects.count()
    some = Container.objects.order_by("container_number")[total // 2].container_number
    pages = [
        ("board, default (by days left)", "/containers/", {}),
        ("board, due within 2 days", "/containers/", {"due_within": 2}),
        ("board, holds, by last change", "/containers/", {"holds": "yes", "sort": "changed"}),
        ("board, search a number", "/containers/", {"q": some[-5:]}),
        ("board, terminal + slot", "/containers/", {"terminal": "PCT", "slot": "yes"}),
        ("board, page 50", "/containers/", {"page": 50}),
        ("container page", f"/containers/{some}/", {}),
        ("CSV export, all rows", "/containers/export/containers.csv", {}),
    ]
    print(f"{'page':36} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'SQL':>4}")
    worst = 0.0
    for label, url, params in pages:
        n = args.requests if "export" not in label else max(5, args.requests // 10)
        times, statements, status = measure(portal, url, params, n)
        assert status == 200, (url, status)
        p95 = statistics.quantiles(times, n=20)[18] if len(times) >= 20 else max(times)
        if url == "/containers/":
            worst = max(worst, p95)
        print(
            f"{label:36} {n:>4} {statistics.median(times):>8.1f} {p95:>8.1f} {max(times):>8.1f}"
            f" {statements:>4}"
        )
    verdict = "PASS" if worst < 150 else "FAIL"
    print(f"{verdict}: the board's slowest p95 is {worst:.1f} ms (target: under 150 ms)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
