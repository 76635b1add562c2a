"""Encrypted model fields that never hand ciphertext to the code that reads them.

django-encrypted-model-fields returns the stored ciphertext unchanged when none of the
configured keys can decrypt it; code would then send that ciphertext upstream as a password.
These fields return an `UndecryptableSecret` instead, which refuses to become a string, so the
mistake surfaces as a clear error before any upstream call (and the system check reports it
at start-up). The key list is read from settings on use, so a rotated or overridden
`FIELD_ENCRYPTION_KEY` takes effect without re-importing anything.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from encrypted_model_fields.fields import EncryptedCharField


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured FIELD_ENCRYPTION_KEY."""


class UndecryptableSecret:
    """Stands in for a stored value that no configured key can decrypt."""

    __slots__ = ("field_name",)

    def __init__(self, field_name: str) -> None:
        self.field_name = field_name

    def _refuse(self) -> str:
        raise SecretUnreadable(
            f"The stored {self.field_name} cannot be decrypted with FIELD_ENCRYPTION_KEY: "
            "the key was changed without keeping the old one in the list. Put the old key "
            "back (after the new one) and run `manage.py rotate_encryption_key`."
        )

    __str__ = _refuse

    def __repr__(self) -> str:
        return f"<undecryptable {self.field_name}>"

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UndecryptableSecret) and other.field_name == self.field_name

    def __hash__(self) -> int:
        return hash(("undecryptable", self.field_name))


def configured_keys() -> tuple[str, ...]:
    keys = settings.FIELD_ENCRYPTION_KEY
    if isinstance(keys, str):
        keys = [keys]
    return tuple(keys)


@lru_cache(maxsize=8)
def _crypter_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY holds no key.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be a comma-separated list of Fernet keys "
            "(32 url-safe base64-encoded bytes each)."
        ) from exc


def crypter() -> MultiFernet:
    """The first key encrypts; every key decrypts."""
    return _crypter_for(configured_keys())


if TYPE_CHECKING:
    # The library ships no types; its field reads and writes text (or, here, an
    # `UndecryptableSecret` in its place).
    _EncryptedCharField = models.CharField[Any, Any]
else:
    _EncryptedCharField = EncryptedCharField


class SecretCharField(_EncryptedCharField):
    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, UndecryptableSecret):
            return value
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return str(value)

    def from_db_value(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        try:
            return crypter().decrypt(value.encode("utf-8")).decode("utf-8")
        except InvalidToken:
            return UndecryptableSecret(self.name)

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, UndecryptableSecret):
            raise SecretUnreadable(
                f"Refusing to save {self.name}: its stored value could not be decrypted."
            )
        return crypter().encrypt(str(value).encode("utf-8")).decode("utf-8")
