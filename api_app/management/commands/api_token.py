"""Make a personal API token for a user (provisioning: a TMS set up by script).

Prints the token alone on standard output: it is shown this once (only its hash is kept).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from api_app.tokens import create_token


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (shown this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="Provisioned", help="What the token is for.")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            default=None,
            help="Days until it expires (default: never).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        if not user.is_active:
            raise CommandError(f"The user {options['username']!r} is inactive.")
        try:
            token, plain = create_token(
                user=user, name=options["name"], expires_in_days=options["expires_in_days"]
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if options["verbosity"] > 1:
            self.stderr.write(f"Token #{token.pk} “{token.name}” for {user.get_username()}:")
        self.stdout.write(plain)
