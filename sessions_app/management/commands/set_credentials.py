"""Store a portal user's E-Modal credentials, read from standard input.

    printf '%s\n' "$EMODAL_USER" "$EMODAL_PASSWORD" "$CAPTCHA_KEY" | manage.py set_credentials alice

Three lines: E-Modal username, password, captcha API key. They never go on the command line,
where `ps` and shell history would show them. Creates the portal user if missing, without a
portal password (it says so, and how to give one: `manage.py changepassword`).
"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from sessions_app.management.accounts import clean_portal_username, clean_text
from sessions_app.models import Account
from sessions_app.services import update_account_credentials


class Command(BaseCommand):
    help = (
        "Store E-Modal username, password and captcha API key (three lines on standard input) "
        "for a portal user, creating the user if missing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="Portal username.")
        parser.add_argument("--email", default="", help="E-mail for a newly created user.")
        parser.add_argument("--trucking-company", help="Trucking company for appointment checks.")
        parser.add_argument("--truck-plate", help="Truck plate for appointment checks.")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        # Everything is checked against its column before anything is written.
        username = clean_portal_username(options["username"], label="Portal username")
        email = clean_text(users, "email", options["email"], label="--email")
        company, plate = options["trucking_company"], options["truck_plate"]
        if company is not None:
            company = clean_text(Account, "trucking_company", company, label="--trucking-company")
        if plate is not None:
            plate = clean_text(Account, "truck_plate", plate, label="--truck-plate")
        lines = [line.strip() for line in self.read_stdin().splitlines()]
        lines = [line for line in lines if line]
        if len(lines) != 3:
            raise CommandError(
                f"Expected 3 non-empty lines on standard input (E-Modal username, password, "
                f"captcha API key); got {len(lines)}."
            )
        emodal_username = clean_text(
            Account, "emodal_username", lines[0], label="E-Modal username (line 1)"
        )
        password = clean_text(Account, "password", lines[1], label="Password (line 2)", plain=False)
        captcha_api_key = clean_text(
            Account, "captcha_api_key", lines[2], label="Captcha API key (line 3)", plain=False
        )
        with transaction.atomic():
            user, user_created = users.objects.get_or_create(
                username=username, defaults={"email": email}
            )
            if user_created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            account = Account.objects.filter(user=user).first() or Account(user=user)
            created = account.pk is None
            if company is not None:
                account.trucking_company = company
            if plate is not None:
                account.truck_plate = plate
            changed = update_account_credentials(
                account=account,
                emodal_username=emodal_username,
                password=password,
                captcha_api_key=captcha_api_key,
                commit=False,
            )
            account.save()
        if created:
            verb = "Created account"
        elif changed:
            verb = f"Updated {', '.join(changed)} of account"
        else:
            verb = "Unchanged account"
        suffix = " (new portal user)" if user_created else ""
        name = user.get_username()
        self.stdout.write(self.style.SUCCESS(f"{verb} {name}{suffix}."))
        if not user.has_usable_password():
            # The command never takes a password for the portal (only E-Modal's, on stdin).
            self.stdout.write(
                self.style.WARNING(
                    f"{name} has no portal password yet and cannot log in: give them one with "
                    f"`manage.py changepassword {name}`, or in the admin (Users › {name} › "
                    "Set password). Their account's queries run meanwhile (commands, schedules)."
                )
            )

    def read_stdin(self) -> str:
        if sys.stdin.isatty():
            self.stderr.write("E-Modal username, password, captcha API key (one per line):")
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise CommandError("Standard input is not text in the terminal's encoding.") from None
