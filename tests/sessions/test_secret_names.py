"""The one list of an account's secrets covers every encrypted column, and what reads it
(deferred reads, the admin, the upstream errors' payload filter) leaves each secret out."""

from __future__ import annotations

from django.contrib import admin

from sessions_app.fields import SecretCharField
from sessions_app.models import Account
from sessions_app.secret_names import ACCOUNT_SECRET_FIELDS, account_secrets
from sessions_app.upstream import UpstreamRejected


def test_every_encrypted_column_of_an_account_is_a_named_secret() -> None:
    encrypted = {f.name for f in Account._meta.get_fields() if isinstance(f, SecretCharField)}
    assert encrypted == set(ACCOUNT_SECRET_FIELDS) == set(Account.SECRET_FIELDS)


def test_reads_through_a_relation_defer_every_secret() -> None:
    assert account_secrets("account") == [f"account__{name}" for name in ACCOUNT_SECRET_FIELDS]
    assert account_secrets() == list(ACCOUNT_SECRET_FIELDS)


def test_the_admin_never_renders_a_secret() -> None:
    account_admin = admin.site._registry[Account]
    shown = {*account_admin.list_display, *account_admin.readonly_fields}
    assert not shown & set(ACCOUNT_SECRET_FIELDS)


def test_an_upstream_error_keeps_no_secret_of_its_body() -> None:
    body = {name: f"canary-{name}" for name in ACCOUNT_SECRET_FIELDS.values()}
    error = UpstreamRejected(
        "refused",
        payload={**body, "appointment_session_id": "held", "current_phase": "2"},
    )
    assert error.payload == {"current_phase": "2"}
    assert error.resume_id == "held"
