"""Prune benchmark: `prune_results` deleting 100 000+ result rows while another connection
keeps writing to the same tables. Prints rows deleted per table, the total time, the longest
single delete transaction, the writer's slowest write and the longest lock wait PostgreSQL
reported (sampled), so that "no lock held longer than a second" can be checked.

    .venv/bin/python bench/prune.py [--database-url postgres://postgres@127.0.0.1:5432/emodal_bench_prune]
        [--queries 50] [--rows-per-query 2000] [--batch-size 2000]

The database named in the URL is dropped and created anew (PostgreSQL), or the SQLite file
replaced. See bench/README.md ("Pruning") for the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/emodal_bench_prune"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/prune.py", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=DEFAULT_URL)
    p.add_argument("--queries", type=int, default=50, help="old queries to prune (default 50)")
    p.add_argument(
        "--rows-per-query",
        type=int,
        default=2000,
        help="result rows per old query, over the five tables (default 2000)",
    )
    p.add_argument("--batch-size", type=int, default=2000, help="rows per delete (default 2000)")
    return p


def fresh_database(url: str) -> None:
    """An empty database at `url`: the SQLite file (and its -wal, -shm) removed, its folder
    made; a PostgreSQL database dropped and created again."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        path = Path(parts.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
        return
    import psycopg

    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    args = parser().parse_args()
    fresh_database(args.database_url)
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": args.database_url, "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "emodal_portal.settings"
    import django

    django.setup()
    return run(args)


def fill(args: argparse.Namespace) -> tuple[list[int], int]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from queries_app.models import (
        AppointmentCheck,
        AppointmentRow,
        ContainerInfo,
        ContainerRow,
        Query,
    )
    from sessions_app.models import Account

    accounts = []
    for i in range(5):
        user = get_user_model().objects.create(username=f"prune{i}")
        accounts.append(
            Account.objects.create(
                user=user,
                emodal_username=f"prune{i}",
                password="p",  # noqa: S106 - nothing logs in
                captcha_api_key="k",
            )
        )
    old = timezone.now() - timedelta(days=60)
    per = args.rows_per_query
    # Shares of a query's rows per table: as an availability run over many containers. (A
    # run's changes are the board's history, not results: the appointments take their share.)
    share = {"rows": 0.3, "infos": 0.3, "checks": 0.2, "appointments": 0.2}
    query_ids = []
    for n in range(args.queries):
        account = accounts[n % len(accounts)]
        query = Query.objects.create(
            account=account,
            kind="availability",
            status="succeeded",
            created_at=old,
            started_at=old,
            finished_at=old,
        )
        query_ids.append(query.pk)
        numbers = [f"PRUN{n:03d}{i:04d}" for i in range(int(per * share["rows"]))]
        ContainerRow.objects.bulk_create(
            [ContainerRow(query=query, container_number=c, raw={"c": c}) for c in numbers],
            batch_size=2000,
        )
        ContainerInfo.objects.bulk_create(
            [
                ContainerInfo(query=query, container_number=c)
                for c in numbers[: int(per * share["infos"])]
            ],
            batch_size=2000,
        )
        AppointmentCheck.objects.bulk_create(
            [
                AppointmentCheck(query=query, container_number=c)
                for c in numbers[: int(per * share["checks"])]
            ],
            batch_size=2000,
        )
        AppointmentRow.objects.bulk_create(
            [
                AppointmentRow(query=query, row_number=i, raw={})
                for i in range(int(per * share["appointments"]))
            ],
            batch_size=2000,
        )
    # Each account's latest success, recent: kept.
    for account in accounts:
        Query.objects.create(account=account, kind="availability", status="succeeded")
    total = sum(
        model.objects.count()
        for model in (
            ContainerRow,
            ContainerInfo,
            AppointmentCheck,
            AppointmentRow,
        )
    )
    return query_ids, total


class Writer(threading.Thread):
    """Another connection writing to the same tables all along: a running query storing its
    rows, one short transaction per container (a row in three tables)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        from django.db import connection, transaction

        from queries_app.models import AppointmentCheck, ContainerInfo, ContainerRow, Query
        from sessions_app.models import Account

        query = Query.objects.create(
            account=Account.objects.first(), kind="availability", status="running"
        )
        n = 0
        try:
            while not self.stop.is_set():
                number = f"LIVE{n:07d}"
                started = time.perf_counter()
                with transaction.atomic():
                    ContainerRow.objects.create(query=query, container_number=number, raw={})
                    ContainerInfo.objects.create(query=query, container_number=number)
                    AppointmentCheck.objects.create(query=query, container_number=number)
                self.latencies.append(time.perf_counter() - started)
                n += 1
                time.sleep(0.005)
        finally:
            connection.close()


class LockWatcher(threading.Thread):
    """Samples PostgreSQL's sessions waiting on a lock: the longest wait seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.longest = 0.0
        self.samples = 0

    def run(self) -> None:
        from django.db import connection

        if connection.vendor != "postgresql":
            return
        try:
            with connection.cursor() as cursor:
                while not self.stop.is_set():
                    cursor.execute(
                        "SELECT COALESCE(MAX(EXTRACT(EPOCH FROM"
                        " clock_timestamp() - state_change)), 0) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    )
                    self.longest = max(self.longest, float(cursor.fetchone()[0]))
                    self.samples += 1
                    time.sleep(0.01)
        finally:
            connection.close()


def run(args: argparse.Namespace) -> int:
    from django.db import connection

    from ops_app.retention import prune_results

    print(f"database: {connection.vendor} ({connection.settings_dict['NAME']})", flush=True)
    started = time.perf_counter()
    query_ids, total = fill(args)
    print(
        f"filled: {total} result rows in {len(query_ids)} old queries "
        f"({time.perf_counter() - started:.1f} s)",
        flush=True,
    )

    writer, watcher = Writer(), LockWatcher()
    writer.start()
    watcher.start()
    time.sleep(1.0)  # the writer's pace before the prune
    before = len(writer.latencies)
    started = time.perf_counter()
    report = prune_results(older_than_days=30, batch_size=args.batch_size)
    elapsed = time.perf_counter() - started
    during = writer.latencies[before:]
    time.sleep(0.5)
    writer.stop.set()
    watcher.stop.set()
    writer.join(10)
    watcher.join(10)

    print(
        f"pruned: {report.rows} rows of {report.queries} queries in {elapsed:.2f} s, "
        f"{report.batches} transactions of at most {args.batch_size} rows"
    )
    for table, figures in report.tables.items():
        size = "?" if figures.bytes is None else f"{figures.bytes / 1024 / 1024:.1f} MiB"
        print(f"  {table:<32} {figures.rows:>8} rows  ~{size}")
    print(f"longest delete transaction: {report.longest_batch_seconds * 1000:.0f} ms")
    if during:
        print(
            f"writer during the prune: {len(during)} writes, median "
            f"{statistics.median(during) * 1000:.1f} ms, slowest {max(during) * 1000:.0f} ms"
        )
    if watcher.samples:
        print(
            f"longest lock wait seen ({watcher.samples} samples): {watcher.longest * 1000:.0f} ms"
        )
    ok = report.longest_batch_seconds < 1 and (not during or max(during) < 1)
    print("PASS: no transaction or write took a second" if ok else "FAIL: something took a second")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
