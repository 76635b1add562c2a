"""API benchmark: the query-results endpoint and the container board on a 10 000-container
query (its board made by the runs' ends, as in production). Prints, per request shape, p50 and
p95 response times and the SQL statements one request makes.

    .venv/bin/python bench/api.py [--database-url sqlite:///…|postgres://…] [--containers 10000]
        [--requests 40] [--http]

The database named in the URL is dropped and created anew (PostgreSQL), or the SQLite file
replaced (default: bench/var/api/db.sqlite3). Requests go through the whole stack — bearer
token, rate limit (off here, as for a TMS's own token it would be one upsert), the view,
filters, pagination, serialization — in this process with Django's test client (timing and
SQL counts), and with --http also over HTTP to a gunicorn worker (timing only). See
bench/README.md ("The API").
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import percentile  # noqa: E402
from bench.prune import fresh_database  # noqa: E402

DEFAULT_URL = f"sqlite:///{ROOT / 'bench' / 'var' / 'api' / 'db.sqlite3'}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/api.py", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=DEFAULT_URL)
    p.add_argument("--containers", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=40, help="timed requests per shape")
    p.add_argument("--http", action="store_true", help="also time over HTTP (gunicorn)")
    return p


def main() -> int:
    args = parser().parse_args()
    fresh_database(args.database_url)
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": args.database_url,
        "LOG_LEVEL": "WARNING",
        "API_RATE_LIMIT": "0",
        "API_USER_RATE_LIMIT": "0",
    }
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "emodal_portal.settings"
    import django

    django.setup()
    query_id, token = fill(args.containers)
    from django.db import connection

    with connection.cursor() as cursor:
        # Statistics as autovacuum (PostgreSQL) keeps them; without them PostgreSQL's planner
        # looks a slot check up by the query's index alone (see bench/README.md).
        cursor.execute("ANALYZE")
    shapes = request_shapes(query_id)
    print(f"{args.containers} containers, query #{query_id}, {args.requests} requests per shape")
    print(f"database: {args.database_url.split('://')[0]}")
    in_process(shapes, token, args.requests)
    if args.http:
        over_http(shapes, token, args.requests, env)
    return 0


def fill(count: int) -> tuple[int, str]:
    """A user's account with a succeeded availability run over `count` containers: a quarter
    of them checked for slots, one in twenty changed since the run before."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from api_app.tokens import create_token
    from queries_app.models import AppointmentCheck, ContainerRow, Query
    from sessions_app.models import Account

    rng = random.Random(7)
    user = get_user_model().objects.create(username="tms")
    account = Account.objects.create(
        user=user,
        emodal_username="bench",
        password="p",  # noqa: S106 - nothing logs in
        captcha_api_key="k",
    )
    now = timezone.now()
    previous = Query.objects.create(
        account=account, kind="availability", status="succeeded", finished_at=now
    )
    query = Query.objects.create(
        account=account, kind="availability", status="succeeded", finished_at=now
    )
    today = timezone.localdate()
    lines = ["MSCU", "MEDU", "CMAU", "HLXU", "OOLU"]
    rows, checks = [], []
    moved: set[str] = set()
    for index in range(count):
        number = f"{lines[index % 5]}{index:07d}"
        trade = "IMPORT" if rng.random() < 0.7 else "EXPORT"
        lfd = today + timedelta(days=rng.randint(-5, 20)) if rng.random() < 0.8 else None
        rows.append(
            ContainerRow(
                query=query,
                container_number=number,
                trade_type=trade,
                status=rng.choice(["In Yard", "On Vessel", "Delivered", "Out Gate"]),
                holds=rng.random() < 0.3,
                last_free_day=lfd,
                good_through=lfd + timedelta(days=2) if lfd else None,
                origin="TTI",
                destination="YTI",
                current_location=rng.choice(["TTI", "YTI", "PCT", "LBCT"]),
                line=lines[index % 5],
                vessel_name="EVER GIVEN",
                voyage=f"{index % 90:03d}E",
                size_type="40HC",
                raw={"Container #": number},
            )
        )
        if trade == "IMPORT" and rng.random() < 0.35:
            slots = rng.randint(0, 6)
            checks.append(
                AppointmentCheck(
                    query=query,
                    container_number=number,
                    trade_type=trade,
                    move_type="PICK FULL",
                    terminal_code="TTI",
                    terminal="Total Terminals Intl LLC",
                    outcome="available" if slots else "none",
                    slot_count=slots,
                    earliest_slot=now + timedelta(hours=rng.randint(2, 72)) if slots else None,
                )
            )
        if rng.random() < 0.05:
            moved.add(number)
    # The run before listed the same containers, the changed ones due today.
    ContainerRow.objects.bulk_create(
        [
            ContainerRow(
                **{
                    **{
                        f.attname: getattr(row, f.attname)
                        for f in ContainerRow._meta.concrete_fields
                    },
                    "id": None,
                    "query_id": previous.pk,
                    "last_free_day": today if row.container_number in moved else row.last_free_day,
                }
            )
            for row in rows
        ],
        batch_size=2000,
    )
    ContainerRow.objects.bulk_create(rows, batch_size=2000)
    AppointmentCheck.objects.bulk_create(checks, batch_size=2000)
    # The board, as the runs' ends make it: the first run sets it, the second moves some LFDs
    # (the run's changes are the history entries its merge records).
    from containers_app.board import update_board

    for run in (previous, query):
        started = perf_counter()
        update_board(run.pk)
        print(f"board updated from run #{run.pk} in {perf_counter() - started:.2f} s")
    return query.pk, create_token(user=user, name="bench")[1]


def request_shapes(query_id: int) -> list[tuple[str, str]]:
    from history.models import HistoryEntry

    first_changed = (
        HistoryEntry.objects.filter(query_id=query_id)
        .order_by("container_number")
        .values_list("container_number", flat=True)
        .first()
    )
    base = f"/api/v1/queries/{query_id}/containers/"
    return [
        ("first page (100 rows)", base),
        ("page 50 of 100", f"{base}?page=50"),
        ("page 100 of 100 (the last)", f"{base}?page=100"),
        ("holds=no, lfd within 3 d, by LFD", f"{base}?holds=no&lfd_within=3&sort=last_free_day"),
        ("slot=yes, by earliest slot", f"{base}?slot=yes&sort=earliest_slot"),
        ("changed=yes", f"{base}?changed=yes"),
        ("sort by -change", f"{base}?sort=-change"),
        ("page_size=1000", f"{base}?page_size=1000"),
        ("query detail", f"/api/v1/queries/{query_id}/"),
        ("board: first page", "/api/v1/containers/"),
        ("board: page 100 of 100", "/api/v1/containers/?page=100"),
        ("board: holds=no, due within 3 d", "/api/v1/containers/?holds=no&due_within=3"),
        ("board: slot=yes, by slot", "/api/v1/containers/?slot=yes&sort=slot"),
        ("board: by last change", "/api/v1/containers/?sort=changed"),
        ("board: one container + history", f"/api/v1/containers/{first_changed}/"),
    ]


def in_process(shapes: list[tuple[str, str]], token: str, count: int) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    print("\nin process (Django test client): p50 / p95, SQL per request, rows")
    for label, url in shapes:
        first = client.get(url)  # warm-up
        assert first.status_code == 200, (url, first.content[:300])
        times = []
        for _ in range(count):
            started = perf_counter()
            client.get(url)
            times.append(perf_counter() - started)
        with CaptureQueriesContext(connection) as captured:
            body = client.get(url).json()
        paged = isinstance(body, dict) and "count" in body
        rows = f"{len(body['results']):>4} rows of {body['count']}" if paged else ""
        p50, p95 = ms(percentile(times, 0.5)), ms(percentile(times, 0.95))
        print(f"  {label:36} p50 {p50:>7} p95 {p95:>7}  {len(captured):>2} SQL  {rows}")


def over_http(shapes: list[tuple[str, str]], token: str, count: int, env: dict) -> None:
    import requests

    from tests.served import wait_for_url

    log = Path(tempfile.mkstemp(prefix="bench-api-gunicorn-", suffix=".log")[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "emodal_portal.wsgi", "-b", "127.0.0.1:0", "-w", "1"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = wait_for_url(log, process)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        print("\nover HTTP (one gunicorn worker, one client): p50 / p95")
        for label, path in shapes:
            http.get(url + path, timeout=60).raise_for_status()
            times = []
            for _ in range(count):
                started = perf_counter()
                http.get(url + path, timeout=60)
                times.append(perf_counter() - started)
            p50, p95 = ms(percentile(times, 0.5)), ms(percentile(times, 0.95))
            print(f"  {label:36} p50 {p50:>7} p95 {p95:>7}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.unlink(missing_ok=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    sys.exit(main())
