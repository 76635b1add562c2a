"""System checks: refuse to run with encryption keys that would lose or expose secrets; say
what a code-only command (check, makemigrations) let pass that the portal would refuse."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from .fields import configured_keys, crypter

SAMPLE_SIZE = 50


@register()
def check_encryption_key(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    try:
        crypter()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="sessions_app.E001")]
    warnings: list[Error | Warning] = []
    if settings.UNSET_KEYS:
        warnings.append(
            Warning(
                f"{' and '.join(settings.UNSET_KEYS)} not set and DEBUG off: checked with the "
                "development keys; the portal will not start like this.",
                hint="Set them (see .env.example), or DEBUG=true for development.",
                id="sessions_app.W001",
            )
        )
    if settings.DEVELOPMENT_KEYS:
        warnings.append(
            Warning(
                f"{' and '.join(settings.DEVELOPMENT_KEYS)}: the development key committed in the "
                "repository, with DEBUG off; the portal will not start like this.",
                hint="Generate new keys (see .env.example).",
                id="sessions_app.W003",
            )
        )
    return warnings


@register()
def check_upstream_configured(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if not settings.UNSET_UPSTREAM:
        return []
    return [
        Warning(
            "EMODAL_API_URL not set and DEBUG off: the portal will not start like this.",
            hint="Set it to the upstream automation API's address (see .env.example).",
            id="sessions_app.W002",
        )
    ]


@register(Tags.security, deploy=True)
def check_production_encryption_key(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    keys = configured_keys()
    errors = []
    if not keys or settings.DEV_FIELD_ENCRYPTION_KEY in keys:
        errors.append(
            Error(
                "FIELD_ENCRYPTION_KEY is missing or is the development key.",
                hint="Generate one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'` and keep it out of the repository.",
                id="sessions_app.E003",
            )
        )
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        errors.append(
            Error(
                "SECRET_KEY is the development key committed in the repository.",
                hint="Generate one (see .env.example) and keep it out of the repository.",
                id="sessions_app.E005",
            )
        )
    if settings.SECRET_KEY in keys:
        errors.append(
            Error(
                "FIELD_ENCRYPTION_KEY must not equal SECRET_KEY.",
                hint="Use two separate keys: leaking one must not expose the other.",
                id="sessions_app.E004",
            )
        )
    return errors


@register()
def check_stored_secrets_decrypt(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """A changed key silently turns every stored credential into garbage: catch that when the
    portal starts, not when a worker first sends a password upstream."""
    from .models import Account

    if "FIELD_ENCRYPTION_KEY" in settings.UNSET_KEYS:
        return []  # no key to check the stored secrets against
    try:
        sample = list(Account.objects.order_by("-updated_at")[:SAMPLE_SIZE])
    except (DatabaseError, ImproperlyConfigured):
        return []  # no database yet (first migrate): nothing stored to check
    unreadable = [account.pk for account in sample if account.unreadable_secrets()]
    if not unreadable:
        return []
    return [
        Error(
            f"{len(unreadable)} of {len(sample)} sampled accounts hold secrets that "
            "FIELD_ENCRYPTION_KEY cannot decrypt.",
            hint="The key was changed without keeping the old one. Set FIELD_ENCRYPTION_KEY to "
            "'NEW_KEY,OLD_KEY' and run `manage.py rotate_encryption_key`.",
            id="sessions_app.E002",
        )
    ]
