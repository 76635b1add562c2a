"""Start one query per account (a batch), optionally waiting for all of them to end.

    manage.py run_queries --kind availability --all --wait
    manage.py run_queries --kind timeline --user alice --param container_id=MSCU1234567
    manage.py run_queries --kind containers --all --schedule daily [--at 06:30]

Exit status: 0 when every query succeeded (or was started, without --wait); 1 otherwise.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from queries_app.models import Query
from queries_app.registry import all_kinds
from queries_app.schedules import SCHEDULE_CHOICES, schedule_queries
from queries_app.services import start_query, validate_params
from sessions_app.management.accounts import add_account_arguments, select_accounts


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`--param key=value` pairs; the kind's parameter form reads the values (a list of
    containers as comma-separated text, for instance)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--param takes key=value, not “{pair}”.")
        params[key] = value
    return params


def summary_line(query: Query) -> str:
    duration = f"{query.duration.total_seconds():.1f}s" if query.duration else "-"
    line = f"#{query.pk} {query.account}: {query.get_status_display().lower()} in {duration}"
    counts = []
    for label, manager in (("containers", query.containers), ("slots checked", query.checks)):
        n = manager.count()
        if n:
            counts.append(f"{n} {label}")
    if counts:
        line += f" ({', '.join(counts)})"
    if query.error and query.status != Query.Status.SUCCEEDED:
        line += f" — {query.error}"
    return line


class Command(BaseCommand):
    help = "Start a query of one kind for each chosen account (a batch)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", required=True, choices=[kind.code for kind in all_kinds()])
        add_account_arguments(parser)
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="A query parameter (repeatable); lists are comma-separated.",
        )
        parser.add_argument("--wait", action="store_true", help="Show progress until all end.")
        parser.add_argument("--timeout", type=float, default=3600, help="Seconds to --wait.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and list only.")
        parser.add_argument(
            "--schedule",
            choices=list(SCHEDULE_CHOICES),
            help="Instead of starting now, create (or update) a recurring run per account.",
        )
        parser.add_argument(
            "--at",
            metavar="HH:MM",
            help="With --schedule: the time of day (TIME_ZONE; hourly: the minute) it runs at; "
            "default: now.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind, params = options["kind"], parse_params(options["param"])
        accounts = select_accounts(options["users"])
        if options["schedule"]:
            try:
                created = schedule_queries(
                    accounts=accounts,
                    kind=kind,
                    params=params,
                    every=options["schedule"],
                    at=options["at"],
                )
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            for run in created:
                next_run = timezone.localtime(run.next_run_at)
                self.stdout.write(f"{run}: next at {next_run:%Y-%m-%d %H:%M %Z}")
            self.stdout.write(
                self.style.SUCCESS(
                    f"{len(created)} {options['schedule']} recurring run(s) for {kind}; "
                    "people see and manage them on the containers board."
                )
            )
            return
        if options["at"]:
            raise CommandError("--at goes with --schedule.")
        batch = f"{kind}-{timezone.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        queries, bad = [], 0
        for account in accounts:
            if options["dry_run"]:
                try:
                    validate_params(account=account, kind=kind, params=params)
                except ValidationError as exc:
                    bad += 1
                    self.stderr.write(f"{account}: {' '.join(exc.messages)}")
                else:
                    self.stdout.write(f"{account}: would start {kind}")
                continue
            try:
                query, started = start_query(account=account, kind=kind, params=params, batch=batch)
            except ValidationError as exc:
                bad += 1
                self.stderr.write(f"{account}: {' '.join(exc.messages)}")
                continue
            queries.append(query)
            state = query.get_status_display().lower() if started else "already running"
            self.stdout.write(f"{account}: query #{query.pk} {state}")
        if bad:
            raise CommandError(f"{bad} of {len(accounts)} account(s) had bad input.")
        if options["dry_run"] or not options["wait"]:
            return
        self.wait(queries, options["timeout"], options["verbosity"])

    def wait(self, queries: list[Query], timeout: float, verbosity: int) -> None:
        deadline = time.monotonic() + timeout
        ids = [q.pk for q in queries]
        last = ""
        while True:
            current = list(Query.objects.filter(pk__in=ids).select_related("account__user"))
            live = [q for q in current if q.is_live]
            done_steps = sum(q.progress_done for q in current)
            total_steps = sum(q.progress_total for q in current)
            line = (
                f"{len(current) - len(live)}/{len(current)} queries ended; "
                f"{done_steps}/{total_steps} containers checked"
            )
            if verbosity >= 1 and line != last:
                self.stdout.write(line)
                last = line
            if not live:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"{len(live)} query(ies) still running after {timeout:.0f} s.")
            time.sleep(1.0)
        failed = 0
        for query in sorted(current, key=lambda q: q.pk):
            ok = query.status == Query.Status.SUCCEEDED
            failed += not ok
            style = self.style.SUCCESS if ok else self.style.ERROR
            self.stdout.write(style(summary_line(query)))
        if failed:
            raise CommandError(f"{failed} of {len(current)} queries did not succeed.")
