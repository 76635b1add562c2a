"""Re-encrypt every stored secret with the first FIELD_ENCRYPTION_KEY.

Rotation: set FIELD_ENCRYPTION_KEY="NEW,OLD", run this command, then drop OLD.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from sessions_app.fields import SecretCharField, SecretUnreadable
from sessions_app.models import Account


class Command(BaseCommand):
    help = "Re-encrypt every stored account secret with the first FIELD_ENCRYPTION_KEY."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = unreadable = 0
        for pk in Account.objects.values_list("pk", flat=True).order_by("pk"):
            with transaction.atomic():
                account = Account.objects.select_for_update().get(pk=pk)
                if account.unreadable_secrets():
                    unreadable += 1
                    self.stderr.write(
                        f"{account}: {', '.join(account.unreadable_secrets())} cannot be "
                        "decrypted with any configured key"
                    )
                    continue
                if not options["dry_run"]:
                    account.save(update_fields=[*Account.SECRET_FIELDS, "updated_at"])
                rotated += 1
        verb = "Would re-encrypt" if options["dry_run"] else "Re-encrypted"
        self.stdout.write(f"{verb} {rotated} account(s); {unreadable} unreadable.")
        unreadable += self.rotate_other_secrets(verb, dry_run=options["dry_run"])
        if unreadable:
            raise CommandError(
                f"{unreadable} row(s) could not be decrypted: add the key they were "
                "written with to FIELD_ENCRYPTION_KEY (after the new one) and run again."
            )

    def rotate_other_secrets(self, verb: str, *, dry_run: bool) -> int:
        """Other apps' encrypted fields (a webhook endpoint's signing secret), found by their
        field type: this app need not know them."""
        unreadable = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.fields if isinstance(f, SecretCharField)]
            if model is Account or not fields:
                continue
            rotated = 0
            for pk in model._default_manager.values_list("pk", flat=True).order_by("pk"):
                with transaction.atomic():
                    row = model._default_manager.select_for_update().get(pk=pk)
                    try:
                        if not dry_run:
                            row.save(update_fields=fields)
                    except SecretUnreadable:
                        unreadable += 1
                        self.stderr.write(f"{model._meta.verbose_name} #{pk} cannot be decrypted")
                        continue
                    rotated += 1
            self.stdout.write(f"{verb} {rotated} {model._meta.verbose_name}(s).")
        return unreadable
