"""What the load and chaos runs share once Django is set up (see `stack.py` for before):
the schema, portal users with their E-Modal accounts, the cluster's environment, and
waiting for queries to end."""

from __future__ import annotations

import io
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command

from queries_app.models import Query
from sessions_app.models import Account
from sessions_app.services import update_account_credentials

from .procs import Simulator
from .scenarios import Options, Scenario, cluster_env, progress


def migrate() -> None:
    call_command("migrate", verbosity=0, stdout=io.StringIO())
    call_command("createcachetable", verbosity=0, stdout=io.StringIO())


def create_user(
    username: str,
    *,
    login_password: str,
    emodal_username: str,
    emodal_password: str,
    captcha_key: str,
    plate: str,
) -> Account:
    """A portal user who logs in with `login_password`, and their E-Modal account."""
    user = get_user_model().objects.create_user(username=username, password=login_password)
    account = Account(user=user, trucking_company="K & R TRANSPORTATION LLC", truck_plate=plate)
    update_account_credentials(
        account=account,
        emodal_username=emodal_username,
        password=emodal_password,
        captcha_api_key=captcha_key,
    )
    return account


def cluster_environment(
    *,
    sim: Simulator,
    workers: int,
    time_scale: float,
    task_log: Path,
    var: Path,
    overrides: dict[str, str],
) -> dict[str, str]:
    """The environment `bench/run.py` gives its clusters (upstream back-offs scaled like the
    simulator, captcha budgets off), for one simulator."""

    scenario = Scenario("bench", workers=workers, accounts=0, kind="")
    options = Options(
        time_scale=time_scale,
        timeout_scale=max(2 * time_scale, 0.05),
        quick=False,
        deadline=0,
        var=var,
        overrides=overrides,
    )
    return cluster_env(scenario, options, [sim], task_log)


def wait_for_queries(name: str, ids: list[int], deadline_s: float) -> int:
    """Poll until every query has ended or the deadline passed; the number still live."""
    deadline = time.monotonic() + deadline_s
    started = last_report = time.monotonic()
    while True:
        live = Query.objects.filter(pk__in=ids, status__in=Query.LIVE_STATUSES).count()
        now = time.monotonic()
        if not live or now >= deadline:
            return live
        if now - last_report >= 15:
            progress(
                name, f"{len(ids) - live}/{len(ids)} queries ended after {now - started:.0f} s"
            )
            last_report = now
        time.sleep(0.5)
