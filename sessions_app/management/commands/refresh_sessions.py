"""Make sure accounts have a live upstream session (reusing whatever can be reused).

    manage.py refresh_sessions --all
    manage.py refresh_sessions --user alice --user bob --force

Several of these running at once for the same account still spend one captcha: each account's
session is created under its lease.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from sessions_app.management.accounts import add_account_arguments, select_accounts
from sessions_app.models import Account
from sessions_app.services import SessionError, SessionManager


def refresh_account(*, account_id: int, force: bool) -> tuple[bool, str]:
    """Ensure (or with `force`, replace) one account's session. Returns (ok, message)."""
    close_old_connections()
    try:
        account = Account.objects.select_related("user").get(pk=account_id)
        manager = SessionManager()
        if force:
            manager.refresh_session(account)
            return True, "new session (forced)"
        before = account.session_version
        manager.ensure_session(account)
        account.refresh_from_db()
        if account.session_version == before:
            return True, "live session reused"
        return True, "session ready"
    except SessionError as exc:
        return False, str(exc)
    finally:
        close_old_connections()


class Command(BaseCommand):
    help = "Make sure accounts have a live E-Modal session; --force replaces it."

    def add_arguments(self, parser: CommandParser) -> None:
        add_account_arguments(parser)
        parser.add_argument("--force", action="store_true", help="Replace live sessions too.")
        parser.add_argument("--dry-run", action="store_true", help="List, change nothing.")
        parser.add_argument("--parallel", type=int, default=4, help="Accounts at once (4).")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = select_accounts(options["users"])
        if options["dry_run"]:
            for account in accounts:
                self.stdout.write(f"{account}: session {account.session_state} (dry run)")
            return
        failed = 0
        workers = max(1, min(options["parallel"], len(accounts) or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(refresh_account, account_id=a.pk, force=options["force"]): a
                for a in accounts
            }
            for future, account in futures.items():
                ok, message = future.result()
                if ok:
                    self.stdout.write(f"{account}: {self.style.SUCCESS(message)}")
                else:
                    failed += 1
                    self.stdout.write(f"{account}: {self.style.ERROR(message)}")
        if failed:
            raise CommandError(f"{failed} of {len(accounts)} accounts failed.")
        if options["verbosity"] >= 1:
            self.stdout.write(f"{len(accounts)} account(s) ready.")
