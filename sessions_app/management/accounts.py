"""What the commands share: choosing accounts on a command line (`--user NAME …` or `--all`),
and checking text against the model column it is meant for before anything is written."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db import models

from sessions_app.models import Account

# Control characters (line breaks, NUL, terminal escapes) belong in no stored text.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Names, companies and plates have no markup either.
MARKUP_OR_CONTROL = re.compile(r"[<>\x00-\x1f\x7f-\x9f]")


def clean_text(
    model: type[models.Model], field_name: str, value: str, *, label: str, plain: bool = True
) -> str:
    """`value` as the model's column takes it (its length and validators), refusing control
    characters, and with `plain` also `<` and `>`. A CommandError of one line, naming `label`
    and never quoting the value (it may be a secret), otherwise."""
    pattern = MARKUP_OR_CONTROL if plain else CONTROL_CHARACTERS
    if pattern.search(value):
        what = "“<”, “>” or control characters" if plain else "control characters"
        raise CommandError(f"{label}: must not contain {what}.")
    try:
        field = model._meta.get_field(field_name)
        assert isinstance(field, models.Field)  # a column, not a relation seen from its other end
        return field.clean(value, None)
    except ValidationError as exc:
        raise CommandError(f"{label}: {' '.join(exc.messages)}") from None


def clean_portal_username(value: str, *, label: str) -> str:
    users = get_user_model()
    return clean_text(users, users.USERNAME_FIELD, value, label=label)


def add_account_arguments(parser: CommandParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", action="append", dest="users", metavar="USERNAME")
    who.add_argument("--all", action="store_true", help="Every account.")


def select_accounts(users: list[str] | None) -> list[Account]:
    """The named portal users' accounts (all when `users` is empty); a clear error for a
    name that cannot be a username, a name without an account, or when there is none."""
    accounts = Account.objects.select_related("user")
    if users:
        wanted = {clean_portal_username(name, label="--user") for name in users}
        accounts = accounts.filter(user__username__in=wanted)
        missing = wanted - {a.user.get_username() for a in accounts}
        if missing:
            raise CommandError(f"No E-Modal account for: {', '.join(sorted(missing))}")
    found = list(accounts)
    if not found:
        raise CommandError("No accounts to run.")
    return found
