"""Secrets are encrypted at rest, rotate with the key list, and never leave as ciphertext."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from sessions_app.checks import check_production_encryption_key, check_stored_secrets_decrypt
from sessions_app.fields import SecretUnreadable, UndecryptableSecret
from sessions_app.models import Account
from sessions_app.services import AccountUnreadable, SessionManager

from ..conftest import make_account
from ..sim import SimControl

pytestmark = pytest.mark.django_db

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def raw(account: Account, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM sessions_app_account WHERE id = %s", [account.pk])  # noqa: S608
        return cursor.fetchone()[0]


def test_secrets_are_stored_encrypted(alice: Account) -> None:
    for column in ("emodal_username", "password", "captcha_api_key"):
        assert getattr(alice, column) not in raw(alice, column)
    assert Account.objects.get(pk=alice.pk).password == "alice-password"


def test_wrong_key_reads_as_undecryptable_not_ciphertext(alice: Account, settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEY = [NEW]
    account = Account.objects.get(pk=alice.pk)
    assert isinstance(account.password, UndecryptableSecret)
    with pytest.raises(SecretUnreadable, match="cannot be decrypted"):
        str(account.password)
    assert account.unreadable_secrets() == ["emodal_username", "password", "captcha_api_key"]


def test_wrong_key_makes_no_upstream_call(alice: Account, sim: SimControl, settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEY = [NEW]
    with pytest.raises(AccountUnreadable, match="FIELD_ENCRYPTION_KEY"):
        SessionManager().ensure_session(Account.objects.get(pk=alice.pk))
    assert sim.calls() == []


def test_start_up_check_reports_a_wrong_key(alice: Account, settings: Any) -> None:
    assert check_stored_secrets_decrypt() == []
    settings.FIELD_ENCRYPTION_KEY = [NEW]
    errors = check_stored_secrets_decrypt()
    assert [e.id for e in errors] == ["sessions_app.E002"]
    assert "rotate_encryption_key" in errors[0].hint


def test_rotation_re_encrypts_with_the_first_key(db: Any, settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEY = [OLD]
    alice = make_account("alice")  # written with OLD
    settings.FIELD_ENCRYPTION_KEY = [NEW, OLD]
    out = StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "Re-encrypted 1 account(s); 0 unreadable." in out.getvalue()
    settings.FIELD_ENCRYPTION_KEY = [NEW]
    assert Account.objects.get(pk=alice.pk).password == "alice-password"


def test_rotation_fails_loudly_on_unreadable_rows(alice: Account, settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEY = [NEW]
    with pytest.raises(CommandError, match="could not be decrypted"):
        call_command("rotate_encryption_key", stdout=StringIO(), stderr=StringIO())


def test_saving_an_undecryptable_value_is_refused(alice: Account, settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEY = [NEW]
    account = Account.objects.get(pk=alice.pk)
    with pytest.raises(SecretUnreadable):
        account.save()


@pytest.mark.parametrize(
    ("keys", "secret", "ids"),
    [
        ([OLD], "a-real-secret-key", []),
        (
            ["ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXkhISE="],
            "a-real-secret-key",
            ["sessions_app.E003"],
        ),
        ([OLD], OLD, ["sessions_app.E004"]),
    ],
)
def test_deploy_check_refuses_development_or_shared_keys(
    settings: Any, keys: list[str], secret: str, ids: list[str]
) -> None:
    settings.FIELD_ENCRYPTION_KEY = keys
    settings.SECRET_KEY = secret
    assert [e.id for e in check_production_encryption_key()] == ids
