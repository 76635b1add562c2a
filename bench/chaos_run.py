"""The chaos run itself (`bench/chaos.py` sets up the environment and Django first).

The accounts' E-Modal passwords and captcha keys are random canary strings, and so are the
session ids the simulator hands out; after the run none of them may appear in the database
(every table, django-q's pickled task fields decoded), the cluster's log files or the pages
the users and staff see.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.admin.sites import site as admin_site
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, QuerySet
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ, Task

from history.models import HistoryEntry
from queries_app.models import (
    AppointmentCheck,
    AppointmentRow,
    ContainerInfo,
    ContainerRow,
    Query,
    QueryFile,
)
from queries_app.services import start_query
from sessions_app.models import Account

from . import stack
from .main import overrides
from .portal import cluster_environment, create_user, migrate, progress, wait_for_queries
from .procs import Cluster, Simulator

NAME = "chaos"
# One account's queries, in this order, repeated: every kind the results pages show. The
# account-wide kinds appear once per cycle, since a second one while the first is live
# would be merged into it by `start_query`.
KIND_CYCLE = (
    "availability",
    "timeline",
    "containers",
    "booking_number",
    "bulk_info",
    "appointments",
    "timeline",
    "booking_number",
)


@dataclass
class Canaries:
    # (what, whose) -> value; printed by name only, never by value.
    secrets: dict[tuple[str, str], str]

    def hits(self, text: str) -> list[str]:
        return [
            f"{what} of {whose}" for (what, whose), value in self.secrets.items() if value in text
        ]


@dataclass
class Check:
    name: str
    passed: bool
    figures: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.figures}"


# -- set-up ---------------------------------------------------------------------------------------


def create_accounts(count: int) -> tuple[list[Account], dict[tuple[str, str], str]]:
    accounts, canaries = [], {}
    for index in range(1, count + 1):
        username = f"chaos-{index:02d}"
        password, key = f"pw-{secrets.token_hex(12)}", f"key-{secrets.token_hex(12)}"
        accounts.append(
            create_user(
                f"chaos-user-{index:02d}",
                login_password=secrets.token_urlsafe(16),
                emodal_username=username,
                emodal_password=password,
                captcha_key=key,
                plate=f"CH{index:04d}",
            )
        )
        canaries[("password", username)] = password
        canaries[("captcha key", username)] = key
    return accounts, canaries


def plan(accounts: list[Account], total: int, sim: Simulator) -> list[tuple[Account, str, dict]]:
    """`total` queries, round-robin over the accounts, each account going through
    `KIND_CYCLE`; containers for the per-container kinds from the simulator's data."""
    imports, exports = {}, {}
    for account in accounts:
        rows = sim.containers(str(account.emodal_username))
        imports[account.pk] = [r["Container #"] for r in rows if r["Trade Type"] == "IMPORT"]
        exports[account.pk] = [r["Container #"] for r in rows if r["Trade Type"] == "EXPORT"]
    used: Counter[tuple[int, str]] = Counter()

    def take(pk: int, trade: dict[int, list[str]], label: str, n: int = 1) -> list[str]:
        pool = trade[pk]
        start = used[(pk, label)]
        used[(pk, label)] += n
        return [pool[(start + i) % len(pool)] for i in range(n)]

    result = []
    for i in range(total):
        account = accounts[i % len(accounts)]
        kind = KIND_CYCLE[(i // len(accounts)) % len(KIND_CYCLE)]
        pk = account.pk
        params: dict[str, Any] = {}
        if kind == "timeline":
            params = {"container_id": take(pk, imports, "import")[0]}
        elif kind == "booking_number":
            params = {"container_id": take(pk, exports, "export")[0]}
        elif kind == "bulk_info":
            params = {
                "import_containers": take(pk, imports, "import", 3),
                "export_containers": take(pk, exports, "export", 2),
            }
        result.append((account, kind, params))
    return result


# -- the checks -----------------------------------------------------------------------------------


def check_logins(calls: list[dict[str, Any]], now: float) -> Check:
    """Invariant 1, seen from the upstream: an account's logins never run at the same time."""
    by_user: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for call in calls:
        if call.get("login") and call.get("username"):
            end = call["end"] if call["end"] is not None else now
            by_user[call["username"]].append((call["start"], end))
    overlaps = []
    for username, spans in sorted(by_user.items()):
        spans.sort()
        latest = float("-inf")
        for start, end in spans:
            if start < latest:
                overlaps.append(username)
            latest = max(latest, end)
    logins = sum(len(spans) for spans in by_user.values())
    figures = f"{len(by_user)} accounts, {logins} logins, {len(overlaps)} overlapping"
    if overlaps:
        figures += f" ({', '.join(sorted(set(overlaps)))})"
    return Check("an account's logins never overlap", not overlaps, figures)


def check_creations(
    usernames: list[str], calls: list[dict[str, Any]], evictions: list[dict[str, Any]]
) -> Check:
    created = Counter(c["username"] for c in calls if c.get("session_created"))
    evicted = Counter(e["username"] for e in evictions)
    # Sessions the portal closed itself (to free a browser) need a new one too; with fewer
    # accounts than browsers there should be none.
    closed = sum(1 for c in calls if c["endpoint"] == "/sessions/{id}" and c["status"] == 200)
    over = [u for u in usernames if created[u] > 1 + evicted[u]]
    figures = ", ".join(f"{u} {created[u]} (max 1+{evicted[u]})" for u in usernames)
    figures += f" (sessions closed by the portal: {closed})"
    if over:
        figures += f"; over: {', '.join(over)}"
    return Check("sessions created per account <= 1 + evictions it suffered", not over, figures)


def check_terminal(ids: list[int]) -> Check:
    queries = list(Query.objects.filter(pk__in=ids))
    statuses = Counter(q.status for q in queries)
    live = [q for q in queries if q.is_live]
    figures = (
        f"{len(queries) - len(live)}/{len(queries)} ended ("
        + ", ".join(f"{statuses[s]} {s}" for s in Query.Status.values if statuses[s])
        + ")"
    )
    if live:
        figures += "; still live: " + ", ".join(
            f"#{q.pk} {q.kind} step {q.step or '-'} {q.status} failures {q.step_failures}"
            for q in live
        )
    return Check("every query ended", not live, figures)


def duplicates(rows: QuerySet[Any], fields: Iterable[str]) -> int:
    """Groups of rows that agree on `fields`: each one is a result stored twice."""
    return rows.values(*fields).annotate(n=Count("id")).filter(n__gt=1).count()


def check_duplicates() -> Check:
    files = QueryFile.objects.all()
    counts = {
        "ContainerRow": duplicates(ContainerRow.objects.all(), ("query", "container_number")),
        "ContainerInfo": duplicates(ContainerInfo.objects.all(), ("query", "container_number")),
        "AppointmentCheck": duplicates(
            AppointmentCheck.objects.all(), ("query", "container_number")
        ),
        # A run's changes: one history entry per container and run (a merge recorded once).
        "HistoryEntry": duplicates(
            HistoryEntry.objects.exclude(query=None).exclude(change=HistoryEntry.Change.BOOKING),
            ("query", "container_number"),
        ),
        "AppointmentRow": duplicates(AppointmentRow.objects.all(), ("query", "row_number")),
        "sheets": duplicates(files.exclude(kind=QueryFile.Kind.SCREENSHOT), ("query", "kind")),
        # A screenshot is saved with its check: one that no check points to was stored twice.
        "stray screenshots": files.filter(kind=QueryFile.Kind.SCREENSHOT)
        .exclude(pk__in=AppointmentCheck.objects.exclude(screenshot=None).values("screenshot"))
        .count(),
    }
    rows = sum(
        model.objects.count()
        for model in (
            ContainerRow,
            ContainerInfo,
            AppointmentCheck,
            AppointmentRow,
        )
    )
    figures = ", ".join(f"{name} {n}" for name, n in counts.items())
    figures += f" (of {rows} result rows, {files.count()} files)"
    return Check("no duplicate results", not any(counts.values()), figures)


def check_complete(ids: list[int], sim_rows: dict[str, int]) -> Check:
    """A succeeded query that lists an account's containers holds every one of them once."""
    wrong = []
    checked = 0
    for query in Query.objects.filter(
        pk__in=ids,
        status=Query.Status.SUCCEEDED,
        kind__in=("containers", "availability"),
    ).select_related("account"):
        checked += 1
        expected = sim_rows[str(query.account.emodal_username)]
        stored = query.containers.count()
        if stored != expected:
            wrong.append(f"#{query.pk} {stored}/{expected}")
    figures = f"{checked} succeeded container lists, {len(wrong)} incomplete"
    if wrong:
        figures += f" ({', '.join(wrong)})"
    return Check("container lists complete", not wrong, figures)


def dump_database() -> str:
    """Every row of every table as text, plus django-q's pickled fields decoded (as
    tests/portal/test_secret_leaks.py does), plus the Redis broker's queue when there is one."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            parts.extend(repr(row) for row in cursor.fetchall())
    for task in Task.objects.all():
        parts.append(repr((task.args, task.kwargs, task.result)))
    if "orm" in settings.Q_CLUSTER:
        for queued in OrmQ.objects.all():
            parts.append(repr(queued.task))
    if settings.REDIS_URL:
        parts.append(dump_redis(settings.REDIS_URL))
    return "\n".join(parts)


def dump_redis(url: str) -> str:
    import redis
    from django_q.signing import BadSignature, SignedPackage

    client = redis.Redis.from_url(url)
    parts = []
    for key in client.scan_iter():
        kind = client.type(key)
        values: list[bytes] = []
        if kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"string":
            values = [client.get(key) or b""]
        elif kind == b"hash":
            values = list(client.hgetall(key).values())
        for value in values:
            parts.append(repr(value))
            # A value that is not a signed task is enough as it is.
            with contextlib.suppress(BadSignature, ValueError, TypeError, UnicodeDecodeError):
                parts.append(repr(SignedPackage.loads(value.decode())))
    return "\n".join(parts)


def rendered_pages(accounts: list[Account], ids: list[int]) -> tuple[str, list[str], int]:
    """The results pages of every user (their list, and each query's page, progress and
    containers export), then the admin's pages as staff: (all the text, failures, pages)."""
    texts, failures = [], []
    pages = 0

    def fetch(client: Client, url: str) -> None:
        nonlocal pages
        response = client.get(url)
        pages += 1
        if response.status_code != 200:
            failures.append(f"{url} {response.status_code}")
        body = (
            b"".join(response.streaming_content)  # type: ignore[attr-defined]
            if response.streaming
            else response.content
        )
        texts.append(body.decode("utf-8", errors="replace"))

    for account in accounts:
        client = Client(HTTP_HOST="localhost")
        client.force_login(account.user)
        fetch(client, reverse("queries:list"))
        for query in Query.objects.filter(account=account):
            fetch(client, reverse("queries:detail", args=[query.pk]))
            fetch(client, reverse("queries:progress", args=[query.pk]))
            if query.containers.exists():
                fetch(client, reverse("queries:export_containers_csv", args=[query.pk]))
    staff = get_user_model().objects.create_superuser("chaos-staff", email="")
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    admin_pages = [
        reverse("admin:sessions_app_account_changelist"),
        reverse("admin:sessions_app_sessionevent_changelist"),
        reverse("admin:queries_app_query_changelist"),
        reverse("admin:django_q_success_changelist"),
        reverse("admin:django_q_failure_changelist"),
    ]
    if admin_site.is_registered(OrmQ):
        admin_pages.append(reverse("admin:django_q_ormq_changelist"))
    admin_pages += [reverse("admin:sessions_app_account_change", args=[a.pk]) for a in accounts]
    admin_pages += [reverse("admin:queries_app_query_change", args=[pk]) for pk in ids]
    for url in admin_pages:
        fetch(client, url)
    return "\n".join(texts), failures, pages


def check_canaries(canaries: Canaries, where: str, text: str, extra: str = "") -> Check:
    hits = canaries.hits(text)
    figures = f"{len(canaries.secrets)} canaries in {len(text) / 1e6:.1f} MB{extra}"
    if hits:
        figures += f"; FOUND: {', '.join(hits[:10])}" + (" ..." if len(hits) > 10 else "")
    return Check(f"no canary in {where}", not hits, figures)


# -- the run ---------------------------------------------------------------------------------------


def run(args: argparse.Namespace, *, var: Path, command: str) -> int:
    migrate()
    accounts, secret_values = create_accounts(args.accounts)
    usernames = [str(a.emodal_username) for a in accounts]
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    database = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    broker = "Redis" if settings.REDIS_URL else "ORM"
    print(
        stack.stamp(command, f"{database}, {broker} broker, time scale {args.time_scale}"),
        flush=True,
    )
    with ExitStack() as stack_:
        sim = Simulator(var / "sim.log", time_scale=args.time_scale)
        stack_.callback(sim.stop)
        env = cluster_environment(
            sim=sim,
            workers=args.workers,
            time_scale=args.time_scale,
            task_log=var / "tasks.log",
            var=var,
            # DEBUG: the leak scan reads every line the portal can write.
            overrides={"LOG_LEVEL": "DEBUG", **overrides(args.set)},
        )
        cluster = Cluster(var / "qcluster.log", env)
        stack_.callback(cluster.stop)
        cluster.wait_ready()
        sim_rows = {u: len(sim.containers(u)) for u in usernames}
        work = plan(accounts, args.queries, sim)
        sim.chaos(
            error_rate=args.error_rate,
            evict_rate=args.evict_rate,
            close_share=args.close_share,
            seed=seed,
        )
        started = time.time()
        ids = sorted(
            {
                start_query(account=a, kind=kind, params=params, batch="chaos")[0].pk
                for a, kind, params in work
            }
        )
        progress(NAME, f"{len(ids)} queries for {len(accounts)} accounts, {args.workers} workers")
        still_live = wait_for_queries(NAME, ids, args.deadline)
        elapsed = time.time() - started
        if still_live:
            progress(NAME, f"deadline passed with {still_live} queries live")
        chaos = sim.chaos() or {}
        calls = sim.calls()
        evictions = sim.evictions()
        stats = sim.stats()
        now = time.time()
    # The cluster has stopped: its logs are complete and nothing writes any more.
    # Every session id the upstream handed out or was sent, named by its account.
    owners: dict[str, str] = {}
    for item in [*calls, *evictions]:
        for value in (item.get("session_id"), item.get("session_id_out")):
            if isinstance(value, str) and value.startswith("session_"):
                owners.setdefault(value, str(item.get("username") or "?"))
    session_ids = sorted(owners)
    for number, sid in enumerate(session_ids, start=1):
        secret_values[(f"session id #{number}", owners[sid])] = sid
    canaries = Canaries(secret_values)

    injected = chaos.get("injected", {})
    busy = sum(1 for e in evictions if e["busy"])
    print(
        f"chaos: error rate {args.error_rate} (hang-ups {args.close_share:.0%} of them), "
        f"evict rate {args.evict_rate}, seed {seed} | injected {injected.get('errors', 0)} "
        f"errors + {injected.get('closes', 0)} hang-ups, {injected.get('evictions', 0)} "
        f"evictions ({busy} mid-call) | {len(calls)} upstream calls, "
        f"{stats.get('captcha_solves', 0)} captcha solves | {len(ids)} queries, "
        f"{len(accounts)} accounts, {args.workers} workers, {elapsed:.0f} s",
        flush=True,
    )
    logs = [var / "qcluster.log", var / "tasks.log"]
    log_text = "\n".join(p.read_text(errors="replace") for p in logs if p.exists())
    pages_text, page_failures, pages = rendered_pages(accounts, ids)
    checks = [
        check_logins(calls, now),
        check_creations(usernames, calls, evictions),
        check_terminal(ids),
        check_duplicates(),
        check_complete(ids, sim_rows),
        check_canaries(
            canaries,
            "the database",
            dump_database(),
            f" ({len(session_ids)} session ids, {2 * len(accounts)} passwords and keys)",
        ),
        check_canaries(canaries, "the cluster's logs", log_text, f" ({len(logs)} files)"),
        check_canaries(canaries, "the pages", pages_text, f" ({pages} pages)"),
        Check(
            "every page answered 200",
            not page_failures,
            f"{pages - len(page_failures)}/{pages}"
            + (f"; {', '.join(page_failures[:5])}" if page_failures else ""),
        ),
    ]
    for check in checks:
        print(check.line(), flush=True)
    checks_run = AppointmentCheck.objects.filter(query__in=ids)
    print(
        f"  note: {checks_run.filter(screenshot=None).count()} of {checks_run.count()} "
        "appointment checks kept no screenshot (its download failed; the check is kept)"
    )
    for error, count in Counter(
        q.error.splitlines()[0][:100] if q.error else "(no error text)"
        for q in Query.objects.filter(pk__in=ids, status=Query.Status.FAILED)
    ).most_common(8):
        print(f"  failed x{count}: {error}")
    return 0 if all(c.passed for c in checks) else 1
