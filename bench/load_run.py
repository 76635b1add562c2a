"""The load run itself (`bench/load.py` sets up the environment and Django first).

Set-up: N portal users, each with an E-Modal account of their own (simulator logins with
`--containers` containers); two containers queries per account, the simulator's data moved
on between them, so that every user has results to read, with changes marked. Then gunicorn
serves the portal, `manage.py run_queries --kind availability` starts a batch over the
first `--batch-accounts` accounts, and Locust (`bench/load_users.py`) runs the users for
`--seconds`. Every request is recorded; the figures are computed from those records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import subprocess
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.db import connection

from queries_app.models import Query
from queries_app.services import start_query

from . import stack
from .main import overrides
from .portal import cluster_environment, create_user, migrate, progress, wait_for_queries
from .procs import (
    PYTHON,
    ROOT,
    Cluster,
    Simulator,
    Web,
    group_cpu_seconds,
    machine_busy_seconds,
)

NAME = "load"
TRIGGER = "POST /queries/start/ (trigger)"
LOGIN = "POST /accounts/login/"
TARGET_TRIGGER_P95_MS = 200
SPAWN_PER_SECOND = 5
# Container numbers a user can start per-container queries with.
NUMBERS_PER_USER = 20


@dataclass
class Figures:
    ms: list[float] = field(default_factory=list)
    # Requests sent after the last user had logged in (the ramp-up's logins are CPU-bound).
    steady_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def throttled(self) -> int:
        return self.statuses.get(429, 0)

    @property
    def other_errors(self) -> int:
        """4xx other than 429, and requests that got no answer at all."""
        return sum(n for s, n in self.statuses.items() if 400 <= s < 500 and s != 429) + sum(
            self.errors.values()
        )


def read_samples(path: Path) -> tuple[dict[str, Figures], float]:
    """The figures per page, and when the ramp-up ended (the last login's answer)."""
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    logins = [s["end"] for s in samples if s["name"] == LOGIN]
    ramp_end = max(logins, default=0.0)
    pages: dict[str, Figures] = defaultdict(Figures)
    for sample in samples:
        figures = pages[sample["name"]]
        figures.ms.append(float(sample["ms"]))
        if sample["end"] - sample["ms"] / 1000 >= ramp_end:
            figures.steady_ms.append(float(sample["ms"]))
        if sample["status"]:
            figures.statuses[int(sample["status"])] += 1
        else:
            figures.errors[sample.get("error", "no answer")] += 1
    return pages, ramp_end


def seed(accounts: list[Any], sim: Simulator, deadline: float) -> float:
    """Two containers queries per account, the data moved on between them: each user has
    results to read, the second with changes marked. The seconds it took."""
    started = time.monotonic()
    for round_ in (1, 2):
        ids = [
            start_query(account=a, kind="containers", batch=f"seed-{round_}")[0].pk
            for a in accounts
        ]
        live = wait_for_queries(NAME, ids, deadline)
        if live:
            raise SystemExit(f"set-up: {live} containers queries still live after {deadline} s")
        if round_ == 1:
            for account in accounts:
                sim.advance(str(account.emodal_username))
    return time.monotonic() - started


def start_batch(usernames: list[str], env: dict[str, str], log: Path) -> float:
    """`manage.py run_queries --kind availability --user ...`: the command operators run."""
    command = [PYTHON, "manage.py", "run_queries", "--kind", "availability"]
    for username in usernames:
        command += ["--user", username]
    started = time.time()
    with log.open("wb") as out:
        subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    return started


def run_locust(
    args: argparse.Namespace, web: Web, var: Path, env: dict[str, str]
) -> tuple[Path, float]:
    """Run the users; the file of samples and the CPU seconds Locust used."""
    samples = var / "samples.jsonl"
    samples.touch()
    command = [PYTHON, "-m", "locust", "-f", str(ROOT / "bench" / "load_users.py")]
    command += ["--headless", "--host", web.url, "--users", str(args.users)]
    command += ["--spawn-rate", str(SPAWN_PER_SECOND), "--run-time", f"{args.seconds}s"]
    command += ["--stop-timeout", "10", "--only-summary", "--loglevel", "WARNING"]
    locust_env = {**env, "LOAD_USERS": str(var / "users.json"), "LOAD_SAMPLES": str(samples)}
    with (var / "locust.log").open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=locust_env, stdout=out, stderr=subprocess.STDOUT
        )
        # Locust stops by itself at --run-time; the margin covers start-up and stopping.
        deadline = time.monotonic() + args.seconds + 120
        try:
            while time.monotonic() < deadline:
                # wait4, not wait: the CPU time Locust itself used is part of the figures.
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    process.returncode = os.waitstatus_to_exitcode(status)
                    return samples, usage.ru_utime + usage.ru_stime
                time.sleep(0.5)
        finally:
            if process.returncode is None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    return samples, 0.0


def ms(value: float) -> str:
    return f"{value:.0f} ms"


def steady(figures: Figures) -> str:
    if not figures.steady_ms:
        return "-"
    return f"{ms(stack.percentile(figures.steady_ms, 0.95))} of {len(figures.steady_ms)}"


def page_lines(pages: dict[str, Figures]) -> list[str]:
    width = max(len(name) for name in pages)
    head = (
        f"{'page':<{width}}  {'requests':>8}  {'p50':>7}  {'p95':>7}  {'max':>7}  "
        f"{'p95 after ramp-up':>17}  {'5xx':>4}  {'429':>4}  {'other':>5}"
    )
    lines = [head]
    for name in sorted(pages, key=lambda n: (n == TRIGGER, n)):
        f = pages[name]
        lines.append(
            f"{name:<{width}}  {len(f.ms):>8}  {ms(stack.percentile(f.ms, 0.5)):>7}  "
            f"{ms(stack.percentile(f.ms, 0.95)):>7}  {ms(max(f.ms)):>7}  "
            f"{steady(f):>17}  {f.server_errors:>4}  {f.throttled:>4}  {f.other_errors:>5}"
        )
    return lines


def run(args: argparse.Namespace, *, var: Path, env: dict[str, str], command: str) -> int:
    migrate()
    database = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    broker = "Redis" if settings.REDIS_URL else "ORM"
    print(
        stack.stamp(command, f"{database}, {broker} broker, time scale {args.time_scale}"),
        flush=True,
    )
    with ExitStack() as stop:
        sim = Simulator(var / "sim.log", time_scale=args.time_scale)
        stop.callback(sim.stop)
        accounts, users = [], []
        for index in range(1, args.users + 1):
            username, password = f"load-user-{index:02d}", secrets.token_urlsafe(12)
            emodal = f"load-{index:02d}+c{args.containers}"
            accounts.append(
                create_user(
                    username,
                    login_password=password,
                    emodal_username=emodal,
                    emodal_password="bench-password",  # noqa: S106 - a simulator login
                    captcha_key="bench-captcha-key",
                    plate=f"LD{index:04d}",
                )
            )
            rows = sim.containers(emodal)
            users.append(
                {
                    "username": username,
                    "password": password,
                    "imports": [r["Container #"] for r in rows if r["Trade Type"] == "IMPORT"][
                        :NUMBERS_PER_USER
                    ],
                    "exports": [r["Container #"] for r in rows if r["Trade Type"] == "EXPORT"][
                        :NUMBERS_PER_USER
                    ],
                }
            )
        (var / "users.json").write_text(json.dumps(users))
        cluster_env = cluster_environment(
            sim=sim,
            workers=args.workers,
            time_scale=args.time_scale,
            task_log=var / "tasks.log",
            var=var,
            overrides=overrides(args.set),
        )
        cluster = Cluster(var / "qcluster.log", cluster_env)
        stop.callback(cluster.stop)
        cluster.wait_ready()
        progress(NAME, f"set-up: two containers queries for each of {len(accounts)} accounts")
        seeded = seed(accounts, sim, deadline=600)
        web_env = {**env, "EMODAL_API_URL": sim.url, "EMODAL_API_URLS": sim.url}
        web = Web(var / "gunicorn.log", web_env, workers=args.web_workers)
        stop.callback(web.stop)
        batch_users = [u["username"] for u in users[: args.batch_accounts]]
        batch_started = start_batch(batch_users, cluster_env, var / "batch.log")
        progress(NAME, f"batch started; {args.users} users for {args.seconds} s on {web.url}")
        groups = {"gunicorn": web.process.pid, "qcluster": cluster.process.pid}
        groups["simulator"] = sim.process.pid
        cpu_before = {name: group_cpu_seconds(pgid) for name, pgid in groups.items()}
        busy_before, total_before = machine_busy_seconds()
        load_started = time.time()
        samples, locust_cpu = run_locust(args, web, var, env)
        load_ended = time.time()
        busy_after, total_after = machine_busy_seconds()
        cpu = {name: group_cpu_seconds(pgid) - cpu_before[name] for name, pgid in groups.items()}
        cpu["Locust"] = locust_cpu
        batch = list(
            Query.objects.filter(
                kind="availability",
                created_at__gte=dt.datetime.fromtimestamp(batch_started, tz=dt.UTC),
            )
        )
        triggered = Query.objects.filter(started_by__isnull=False)
        triggered_ended = triggered.exclude(status__in=Query.LIVE_STATUSES).count()
        triggered_count = triggered.count()
    gunicorn_log = (var / "gunicorn.log").read_text(errors="replace")

    pages, ramp_end = read_samples(samples)
    if not pages:
        print(f"no request was made; see {var / 'locust.log'}")
        return 1
    everything = Figures()
    for figures in pages.values():
        everything.ms += figures.ms
        for status, n in figures.statuses.items():
            everything.statuses[status] += n
        for error, n in figures.errors.items():
            everything.errors[error] += n
    window = load_ended - load_started
    live_at_end = sum(
        1 for q in batch if q.finished_at is None or q.finished_at.timestamp() > load_ended
    )
    print(
        f"set-up: {args.users} users, each with an account of its own ({args.containers} "
        f"containers, two containers queries: {seeded:.0f} s); gunicorn {args.web_workers} sync "
        f"workers; qcluster {args.workers} workers",
        flush=True,
    )
    print(
        f"batch: run_queries --kind availability over {len(batch_users)} accounts, started "
        f"{load_started - batch_started:.0f} s before the load; "
        f"{live_at_end}/{len(batch)} still running when the load ended"
    )
    print(
        f"load: {args.users} users for {args.seconds} s ({window:.0f} s with start and stop), "
        f"{len(everything.ms)} requests, {len(everything.ms) / window:.1f} req/s"
    )
    machine = (busy_after - busy_before) / (total_after - total_before)
    print(
        f"CPU during the load: {machine:.0%} of the machine's {os.cpu_count()} CPUs busy "
        "(every process, others' included); CPU seconds: "
        + ", ".join(f"{name} {seconds:.0f}" for name, seconds in cpu.items())
        + f" (of {window * (os.cpu_count() or 1):.0f} available)"
    )
    print("\n".join(page_lines(pages)))
    print(f"ramp-up: every user had logged in {ramp_end - load_started:.0f} s into the load")
    trigger = pages.get(TRIGGER, Figures())
    p95 = stack.percentile(trigger.ms, 0.95)
    verdict = "met" if p95 < TARGET_TRIGGER_P95_MS else "MISSED"
    if not trigger.ms:
        verdict = "n/a: no trigger in so short a run"
    print(
        f"triggers: {len(trigger.ms)} (one per user every 30-60 s), p50 "
        f"{ms(stack.percentile(trigger.ms, 0.5))}, p95 {ms(p95)} (target < "
        f"{TARGET_TRIGGER_P95_MS} ms: {verdict}); {triggered_count} queries started by users, "
        f"{triggered_ended} ended by the end"
    )
    errors = ", ".join(f"{n} x {e}" for e, n in everything.errors.items()) or "none"
    print(
        f"errors: {everything.server_errors} x 5xx (target 0), {everything.throttled} x 429, "
        f"{everything.other_errors} other (no answer: {errors}); gunicorn log: "
        f"{gunicorn_log.count('Traceback')} tracebacks, "
        f"{gunicorn_log.count('WORKER TIMEOUT')} worker timeouts"
    )
    logins = pages.get(LOGIN, Figures())
    print(
        f"logins: {len(logins.ms)} through the form, {logins.statuses.get(302, 0)} redirected "
        f"to the portal; axes: {AccessLog.objects.count()} logins logged, "
        f"{AccessFailureLog.objects.count()} failures, {AccessAttempt.objects.count()} "
        "lock-out counters"
    )
    return 0
