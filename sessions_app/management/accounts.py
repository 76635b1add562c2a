"""Choosing accounts on a command line (`--user NAME …` or `--all`), shared by the commands."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from sessions_app.models import Account


def add_account_arguments(parser: CommandParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", action="append", dest="users", metavar="USERNAME")
    who.add_argument("--all", action="store_true", help="Every account.")


def select_accounts(users: list[str] | None) -> list[Account]:
    """The named portal users' accounts (all when `users` is empty); a clear error for a
    name without one, or when there is none at all."""
    accounts = Account.objects.select_related("user")
    if users:
        wanted = set(users)
        accounts = accounts.filter(user__username__in=wanted)
        missing = wanted - {a.user.get_username() for a in accounts}
        if missing:
            raise CommandError(f"No E-Modal account for: {', '.join(sorted(missing))}")
    found = list(accounts)
    if not found:
        raise CommandError("No accounts to run.")
    return found
