"""The scenarios. Each runs in its own process (see `main.py`), whose environment already
points Django at the scenario's fresh SQLite file: migrate, create the accounts, start the
simulator(s) and an instrumented `qcluster`, enqueue the queries with `start_query`, wait
until every query has ended, read the simulator's counters and call history and the task
log, stop everything, and return one line of figures."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import perf_counter
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from queries_app import results
from queries_app.models import Query, QueryFile
from queries_app.services import start_query
from sessions_app.models import Account
from sessions_app.services import update_account_credentials

from . import figures
from .procs import Cluster, Simulator

# The upstream's browsers; the portal's own limit (EMODAL_MAX_SESSIONS) may be lower.
UPSTREAM_CAPACITY = 10
PAGE_REQUESTS = 20

TARGET_RATIO = 1.10
TARGET_OVERHEAD_MS = 20
TARGET_STORE_S = 2.0
TARGET_PAGE_MS = 150


@dataclass(frozen=True)
class Scenario:
    name: str
    workers: int
    accounts: int
    kind: str
    upstreams: int = 1
    # Run the same queries once before the measured run, so that sessions are warm.
    warm_up: bool = False
    # Per-account container count for the simulator (`+c<N>` in the E-Modal username).
    containers: int | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        # Eight timelines of eight different containers (start_query merges a trigger into
        # a live query of the same account, kind and parameters).
        Scenario("one-account-8-queries", workers=8, accounts=1, kind="timeline"),
        Scenario("availability-25x-w8", workers=8, accounts=25, kind="availability"),
        Scenario("containers-25x-w16", workers=16, accounts=25, kind="containers"),
        Scenario("warm-repeat", workers=8, accounts=10, kind="containers", warm_up=True),
        Scenario(
            "two-upstreams-40x-w16",
            workers=16,
            accounts=40,
            kind="containers",
            upstreams=2,
        ),
        # As many workers as the two upstreams have browsers: one upstream can use only half.
        Scenario(
            "two-upstreams-40x-w20",
            workers=20,
            accounts=40,
            kind="containers",
            upstreams=2,
        ),
        Scenario(
            "store-10k",
            workers=2,
            accounts=1,
            kind="containers",
            containers=10_000,
        ),
    )
}
ONE_ACCOUNT_QUERIES = 8


@dataclass(frozen=True)
class Options:
    time_scale: float
    timeout_scale: float
    quick: bool
    deadline: float
    var: Path
    overrides: dict[str, str]


def progress(name: str, text: str) -> None:
    print(f"[{name}] {text}", file=sys.stderr, flush=True)


# -- set-up ---------------------------------------------------------------------------------------


def create_accounts(usernames: list[str], prefix: str) -> list[Account]:
    users = get_user_model()
    accounts = []
    for index, username in enumerate(usernames, start=1):
        user = users.objects.create(username=f"{prefix}-user-{index:02d}")
        account = Account(
            user=user, trucking_company="K & R TRANSPORTATION LLC", truck_plate=f"BN{index:04d}"
        )
        update_account_credentials(
            account=account,
            emodal_username=username,
            password="bench-password",  # noqa: S106 - a simulator login
            captcha_api_key="bench-captcha-key",
        )
        accounts.append(account)
    return accounts


def cluster_env(
    scenario: Scenario, options: Options, sims: list[Simulator], task_log: Path
) -> dict[str, str]:
    urls = [sim.url for sim in sims]
    scale = options.time_scale
    env = {
        **os.environ,
        "Q_WORKERS": str(scenario.workers),
        "EMODAL_API_URL": urls[0],
        # Read timeouts follow the simulator's clock, with headroom for a loaded machine.
        "EMODAL_TIMEOUT_SCALE": str(options.timeout_scale),
        "EMODAL_POLL_SECONDS": "0.05",
        # Back-offs and the breaker's reset are upstream time too: scaled like the simulator.
        "QUERY_RETRY_BASE_SECONDS": str(30 * scale),
        "EMODAL_RETRY_BASE_SECONDS": str(2 * scale),
        "EMODAL_RETRY_MAX_SECONDS": str(10 * scale),
        "EMODAL_BREAKER_RESET_SECONDS": str(60 * scale),
        # The captcha budgets count solves per wall-clock hour, which cannot be scaled: off,
        # so that wasted captchas show as a count instead of stalling the run.
        "EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR": "0",
        "EMODAL_CAPTCHA_BUDGET_PER_HOUR": "0",
        "LOG_LEVEL": "INFO",
        "BENCH_TASK_LOG": str(task_log),
    }
    if hasattr(settings, "EMODAL_API_URLS"):
        env["EMODAL_API_URLS"] = ",".join(urls)
    env.update(options.overrides)
    return env


# -- running queries ------------------------------------------------------------------------------


@dataclass
class Batch:
    ids: list[int]
    enqueued: float  # wall clock, just before the first start_query
    timed_out: int = 0


def start_batch(
    name: str, plan: list[tuple[Account, dict[str, Any]]], kind: str, label: str
) -> Batch:
    enqueued = time.time()
    ids = [
        start_query(account=account, kind=kind, params=params, batch=f"bench-{label}")[0].pk
        for account, params in plan
    ]
    progress(name, f"{label}: {len(ids)} {kind} queries enqueued")
    return Batch(ids=ids, enqueued=enqueued)


def wait_for(name: str, batch: Batch, deadline_s: float, label: str) -> None:
    deadline = time.monotonic() + deadline_s
    last_report = time.monotonic()
    while True:
        live = Query.objects.filter(pk__in=batch.ids, status__in=Query.LIVE_STATUSES).count()
        if not live:
            break
        now = time.monotonic()
        if now >= deadline:
            batch.timed_out = live
            progress(name, f"{label}: deadline of {deadline_s:.0f} s passed, {live} still live")
            break
        if now - last_report >= 15:
            done = len(batch.ids) - live
            elapsed = time.time() - batch.enqueued
            progress(name, f"{label}: {done}/{len(batch.ids)} ended after {elapsed:.0f} s")
            last_report = now
        time.sleep(0.25)
    # The last task's run is logged just after its query is marked finished.
    time.sleep(1.0)


def read_tasks(path: Path) -> list[figures.TaskRun]:
    if not path.exists():
        return []
    runs = (figures.TaskRun.parse(line) for line in path.read_text().splitlines())
    return [run for run in runs if run is not None]


def dump_run(path: Path, batch: Batch, history: list[dict[str, Any]]) -> None:
    """Keep the raw records next to the database, for a closer look after the run."""
    queries = [
        {
            "id": q.pk,
            "username": str(q.account.emodal_username),
            "kind": q.kind,
            "status": q.status,
            "created": q.created_at.timestamp(),
            "finished": q.finished_at.timestamp() if q.finished_at else None,
            "attempts": q.attempts,
            "error": q.error,
        }
        for q in Query.objects.filter(pk__in=batch.ids).select_related("account")
    ]
    path.write_text(json.dumps({"queries": queries, "calls": history}, indent=1))


# -- figures --------------------------------------------------------------------------------------


@dataclass
class Result:
    ids: list[int] = field(default_factory=list)
    succeeded: int = 0
    timed_out: int = 0
    captcha: int = 0
    captcha_min: int = 0
    evicted_busy: int = 0
    evicted_idle: int = 0
    collisions: int = 0
    closed: int = 0
    makespan: float = 0.0
    bound: figures.Bound | None = None
    timing: figures.Timing = field(default_factory=figures.Timing)
    calls: list[figures.Call] = field(default_factory=list)
    tasks: list[figures.TaskRun] = field(default_factory=list)
    accounts: dict[str, figures.Account] = field(default_factory=dict)
    per_upstream: list[int] = field(default_factory=list)  # accounts served by each


def session_limit() -> int:
    return int(getattr(settings, "EMODAL_MAX_SESSIONS", UPSTREAM_CAPACITY))


def measure(
    name: str,
    scenario: Scenario,
    options: Options,
    sims: list[Simulator],
    plan: list[tuple[Account, dict[str, Any]]],
    label: str,
    task_log: Path,
) -> Result:
    before = [sim.stats() for sim in sims]
    since = [sim.last_call_id() for sim in sims]
    live = set().union(*(sim.live_usernames() for sim in sims))
    batch = start_batch(name, plan, scenario.kind, label)
    wait_for(name, batch, options.deadline, label)
    after = [sim.stats() for sim in sims]
    history = [
        {**item, "upstream": index}
        for index, (sim, first) in enumerate(zip(sims, since, strict=True))
        for item in sim.calls(first)
    ]
    calls = [c for c in (figures.Call.from_history(item) for item in history) if c is not None]
    tasks = read_tasks(task_log)
    dump_run(options.var / f"{label.replace(' ', '-')}.json", batch, history)

    result = Result(ids=batch.ids, timed_out=batch.timed_out, calls=calls, tasks=tasks)
    result.per_upstream = [
        len({c["username"] for c in history if c["upstream"] == index and c.get("username")})
        for index in range(len(sims))
    ]
    for counter, attribute in (
        ("captcha_solves", "captcha"),
        ("evictions_busy", "evicted_busy"),
        ("collisions", "collisions"),
        ("deleted", "closed"),
    ):
        total = sum(
            figures.counter_delta(b, a, counter) for b, a in zip(before, after, strict=True)
        )
        setattr(result, attribute, total)
    evictions = sum(
        figures.counter_delta(b, a, "evictions") for b, a in zip(before, after, strict=True)
    )
    result.evicted_idle = evictions - result.evicted_busy

    now = timezone.now()
    queries = list(Query.objects.filter(pk__in=batch.ids).select_related("account"))
    result.succeeded = sum(q.status == Query.Status.SUCCEEDED for q in queries)
    for query in queries:
        username = str(query.account.emodal_username)
        account = result.accounts.get(username)
        finished = (query.finished_at or now).timestamp()
        if account is None:
            account = result.accounts[username] = figures.Account(
                username=username,
                query_ids=set(),
                enqueued=query.created_at.timestamp(),
                finished=finished,
                needed_login=username not in live,
            )
        account.query_ids.add(query.pk)
        account.enqueued = min(account.enqueued, query.created_at.timestamp())
        account.finished = max(account.finished, finished)
    result.captcha_min = sum(a.needed_login for a in result.accounts.values())
    first = min(a.enqueued for a in result.accounts.values())
    last = max(a.finished for a in result.accounts.values())
    result.makespan = last - first
    result.timing = figures.timing(
        calls, result.accounts, tasks, scenario.workers, min(session_limit(), UPSTREAM_CAPACITY)
    )
    parallel = min(scenario.workers, min(session_limit(), UPSTREAM_CAPACITY) * len(sims))
    result.bound = figures.bound(result.timing.upstream, parallel)
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def common_figures(result: Result) -> list[str]:
    ended = f"ok {result.succeeded}/{len(result.ids)}"
    if result.timed_out:
        ended += f" ({result.timed_out} STILL LIVE at the deadline)"
    parts = [
        ended,
        f"captcha {result.captcha} (min {result.captcha_min})",
        f"evicted busy {result.evicted_busy} (0) idle {result.evicted_idle}"
        + (f", closed by portal {result.closed}" if result.closed else ""),
        f"collisions {result.collisions} (0)",
    ]
    return parts


def schedule_figures(result: Result) -> list[str]:
    bound = result.bound
    assert bound is not None
    ratio = result.makespan / bound.seconds if bound.seconds else float("inf")
    timing = result.timing
    samples = timing.samples
    calls = max(timing.calls, 1)
    where = (
        f"in-task {ms(timing.per_call(figures.IN_TASK))} "
        f"(SQL {ms(timing.sql_seconds / calls)}, {timing.sql_statements / calls:.0f} statements) "
        f"+ hand-off {ms(timing.per_call(figures.HANDOFF))} per call"
    )
    waits = [
        f"for {what} {timing.totals[kind]:.1f} s"
        for kind, what in ((figures.BROWSER, "a browser"), (figures.RETRY, "retries"))
        if timing.totals[kind] > 0.05
    ]
    if waits:
        where += f"; waiting {' and '.join(waits)} in all"
    makespan = (
        f"makespan {result.makespan:.1f} s = {ratio:.2f}x bound {bound.seconds:.1f} s "
        f"(<={TARGET_RATIO:.2f}x)"
    )
    if bound.packing > bound.seconds:
        makespan += (
            f" [packing bound {bound.packing:.1f} s: {result.makespan / bound.packing:.2f}x]"
        )
    return [
        makespan,
        f"overhead/call p50 {ms(figures.percentile(samples, 0.5))} "
        f"p95 {ms(figures.percentile(samples, 0.95))} (p50<={TARGET_OVERHEAD_MS} ms) "
        f"[{len(samples)} calls; {where}]",
    ]


# -- the 10 000-container figures ------------------------------------------------------------------


def step_store_seconds(result: Result, query: Query) -> float | None:
    """The containers step's run on the cluster minus the upstream time inside it."""
    runs = [
        t for t in result.tasks if t.query_id == query.pk and t.result.startswith("step containers")
    ]
    if not runs:
        return None
    run = runs[-1]
    username = str(query.account.emodal_username)
    calls = figures.attribute(result.calls, result.accounts, result.tasks)
    upstream = figures.Level((c.start, c.end) for c in calls if c.username == username)
    points = sorted({run.start, run.stop, *upstream.changes_within(run.start, run.stop)})
    return sum(
        right - left
        for left, right in zip(points, points[1:], strict=False)
        if upstream.at((left + right) / 2) == 0
    )


def store_in_process(query: Query) -> tuple[float, float, int]:
    """Parse the stored sheet and write its rows again with the containers step's own
    functions: (parse seconds, write seconds, rows)."""
    sheet = query.files.get(kind=QueryFile.Kind.CONTAINERS_SHEET)
    with sheet.file.open("rb") as handle:
        content = handle.read()
    started = perf_counter()
    rows = results.container_rows(content)
    parse = perf_counter() - started
    scratch = Query.objects.create(
        account=query.account, kind=query.kind, status=Query.Status.FAILED, error="bench scratch"
    )
    started = perf_counter()
    with transaction.atomic():
        results.store_container_rows(scratch, rows, content)
    write = perf_counter() - started
    scratch.delete()
    return parse, write, len(rows)


@dataclass
class Page:
    p50: float
    p95: float
    sql: int


def render_page(query: Query, staff: Any) -> Page | str:
    """Time the query's results page through Django's test client (logged-in staff)."""
    try:
        url = reverse("queries:detail", args=[query.pk])
    except NoReverseMatch:
        return "n/a (no results page yet)"
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    try:
        response = client.get(url)  # warm-up: templates, caches
        if response.status_code != 200:
            return f"n/a (HTTP {response.status_code})"
        times = []
        for _ in range(PAGE_REQUESTS):
            started = perf_counter()
            client.get(url)
            times.append(perf_counter() - started)
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
    except Exception as exc:  # the page is being built elsewhere; report, don't fail
        return f"n/a ({type(exc).__name__}: {exc})"[:120]
    return Page(figures.percentile(times, 0.5), figures.percentile(times, 0.95), len(captured))


def store_figures(result: Result, big: Query, small: Query, staff: Any) -> list[str]:
    big.refresh_from_db()
    if big.status != Query.Status.SUCCEEDED:
        return [f"10k query {big.status}: {big.error[:80]}"]
    rows = big.containers.count()
    in_step = step_store_seconds(result, big)
    parse, write, _ = store_in_process(big)
    stored = in_step if in_step is not None else parse + write
    parts = [
        f"{rows}-row sheet stored in {stored:.2f} s (<={TARGET_STORE_S:.0f} s) "
        f"[containers step minus upstream; in-process: parse {parse:.2f} s + write {write:.2f} s]"
    ]
    page = render_page(big, staff)
    if isinstance(page, str):
        parts.append(f"results page {page}")
        return parts
    other = render_page(small, staff)
    small_sql = f"{other.sql}" if isinstance(other, Page) else "n/a"
    parts.append(
        f"results page p50 {ms(page.p50)} p95 {ms(page.p95)} (p95<={TARGET_PAGE_MS} ms), "
        f"{page.sql} SQL ({small.containers.count()}-row page: {small_sql})"
    )
    return parts


# -- running a scenario -------------------------------------------------------------------------


def usernames(scenario: Scenario, quick: bool) -> list[str]:
    count = scenario.accounts
    if quick and count > 1:
        count = max(2, count // 5)
    if scenario.containers:
        size = 1000 if quick else scenario.containers
        return [f"bench+c{size}"]
    return [f"bench-{index:02d}" for index in range(1, count + 1)]


def run_phase(
    name: str, scenario: Scenario, options: Options, accounts: list[Account], label: str
) -> Result:
    """Start the simulator(s) and a cluster, run the queries (twice for a warm repeat),
    measure the last run, stop everything."""
    slug = label.replace(" ", "-")
    with ExitStack() as stack:
        sims = []
        for index in range(scenario.upstreams):
            log = options.var / f"sim-{slug}-{index + 1}.log"
            sim = Simulator(log, time_scale=options.time_scale)
            stack.callback(sim.stop)
            sims.append(sim)
        task_log = options.var / f"tasks-{slug}.log"
        env = cluster_env(scenario, options, sims, task_log)
        cluster = Cluster(options.var / f"qcluster-{slug}.log", env)
        stack.callback(cluster.stop)
        cluster.wait_ready()
        progress(name, f"{label}: {scenario.workers} workers, {len(sims)} simulator(s)")

        plan: list[tuple[Account, dict[str, Any]]]
        if scenario.kind == "timeline":
            account = accounts[0]
            numbers = list(dict.fromkeys(sims[0].container_numbers(str(account.emodal_username))))
            if len(numbers) < ONE_ACCOUNT_QUERIES:
                raise RuntimeError(
                    f"{name}: the account has fewer than {ONE_ACCOUNT_QUERIES} containers"
                )
            plan = [(account, {"container_id": n}) for n in numbers[:ONE_ACCOUNT_QUERIES]]
        else:
            plan = [(account, {}) for account in accounts]
        if scenario.warm_up:
            warm = start_batch(name, plan, scenario.kind, "warm-up run")
            wait_for(name, warm, options.deadline, "warm-up run")
        return measure(name, scenario, options, sims, plan, label, task_log)


def throughput_figures(result: Result, reference: Result) -> list[str]:
    """Queries per unit of time on several upstreams against one, measured and ideal."""
    measured = (len(result.ids) / result.makespan) / (len(reference.ids) / reference.makespan)
    assert result.bound is not None and reference.bound is not None
    ideal = (len(result.ids) / result.bound.seconds) / (
        len(reference.ids) / reference.bound.seconds
    )
    return [
        f"accounts per upstream {'/'.join(map(str, result.per_upstream))}",
        f"throughput {measured:.2f}x one upstream (ideal {ideal:.2f}x; one upstream: "
        f"{len(reference.ids)} queries in {reference.makespan:.1f} s, "
        f"captcha {reference.captcha}, evicted busy {reference.evicted_busy})",
    ]


def run(name: str, options: Options) -> str:
    scenario = SCENARIOS[name]
    head = f"{name:<22} W={scenario.workers:<2}"
    if scenario.upstreams > 1 and not hasattr(settings, "EMODAL_API_URLS"):
        return f"{head} skipped: several upstreams not supported yet (no EMODAL_API_URLS setting)"
    call_command("migrate", verbosity=0, stdout=io.StringIO())
    call_command("createcachetable", verbosity=0, stdout=io.StringIO())
    names = usernames(scenario, options.quick)
    if scenario.containers:
        names.append("bench-small")
    reference = None
    if scenario.upstreams > 1:
        # The same work on one upstream first (other accounts, a cluster of its own).
        one = replace(scenario, upstreams=1)
        others = create_accounts([n.replace("bench-", "single-") for n in names], "single")
        reference = run_phase(name, one, options, others, "one-upstream run")
    accounts = create_accounts(names, "bench")
    result = run_phase(name, scenario, options, accounts, "measured run")

    parts = common_figures(result)
    if scenario.containers:
        staff = get_user_model().objects.create_superuser("bench-staff", email="")
        measured = Query.objects.filter(pk__in=result.ids)
        big, small = (measured.get(account=account) for account in accounts)
        parts += store_figures(result, big, small, staff)
    else:
        parts += schedule_figures(result)
    if reference is not None:
        parts += throughput_figures(result, reference)
    return " | ".join([head, *parts])
