"""Create the demo logins that `make run` prints: a staff user and portal users whose
E-Modal accounts use the bundled simulator's test credentials. Safe to run again."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.models import Account
from sessions_app.services import update_account_credentials

DEMO_PASSWORD = "emodal-demo"  # noqa: S105  (a local demo login, refused when DEBUG is off)

# (portal user, E-Modal username, E-Modal password, captcha key, what it shows)
DEMO_ACCOUNTS = [
    ("dispatcher", "demo-trucking", "demo-password", "demo-captcha-key", "works"),
    ("dispatcher2", "demo-trucking-2", "demo-password", "demo-captcha-key", "works"),
    ("locked-out", "demo-rejected", "wrong-password", "demo-captcha-key", "password rejected"),
]


class Command(BaseCommand):
    help = "Create demo logins for a local portal (DEBUG only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Where to log in.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("Demo logins are for local development only (DEBUG is off).")
        users = get_user_model()
        admin, created = users.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(DEMO_PASSWORD)
            admin.save()
        for username, emodal_username, password, key, _ in DEMO_ACCOUNTS:
            # An address, so that the board's alerts show (printed by the task cluster).
            user, created = users.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com"}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            account = Account.objects.filter(user=user).first() or Account(
                user=user, trucking_company="K & R TRANSPORTATION LLC", truck_plate="DEMO123"
            )
            update_account_credentials(
                account=account,
                emodal_username=emodal_username,
                password=password,
                captcha_api_key=key,
            )
        url = options["url"].rstrip("/")
        self.stdout.write(self.style.SUCCESS("Demo logins (password for all: emodal-demo):"))
        self.stdout.write(f"  admin       staff, {url}/admin/")
        for username, *_, note in DEMO_ACCOUNTS:
            self.stdout.write(f"  {username:<11} portal user, E-Modal login {note}")
