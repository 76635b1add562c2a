"""set_credentials and refresh_sessions."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions_app.models import Account

from .conftest import make_account
from .sim import SimControl

pytestmark = pytest.mark.django_db(transaction=True)


def set_credentials(monkeypatch: Any, stdin: str, *args: str) -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command("set_credentials", *args, stdout=out)
    return out.getvalue()


def test_set_credentials_creates_user_and_account_from_stdin(monkeypatch: Any) -> None:
    out = set_credentials(monkeypatch, "gina-emodal\ngina-pw\ngina-key\n", "gina")
    assert "Created account gina (new portal user)." in out
    account = Account.objects.get(user__username="gina")
    assert (account.emodal_username, account.password, account.captcha_api_key) == (
        "gina-emodal",
        "gina-pw",
        "gina-key",
    )
    assert not account.user.has_usable_password()
    assert "gina-pw" not in out


def test_set_credentials_update_reports_field_names(monkeypatch: Any, alice: Account) -> None:
    out = set_credentials(monkeypatch, "alice-emodal\nnew-pw\nalice-captcha-key\n", "alice")
    assert "Updated password of account alice." in out
    assert "new-pw" not in out


def test_set_credentials_rejects_bad_input(monkeypatch: Any) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("only-one-line\n"))
    with pytest.raises(CommandError, match="Expected 3 non-empty lines"):
        call_command("set_credentials", "henry", stdout=io.StringIO())
    assert not Account.objects.exists()


def test_refresh_sessions_reports_per_account(
    alice: Account, bob: Account, sim: SimControl
) -> None:
    out = io.StringIO()
    call_command("refresh_sessions", "--all", stdout=out)
    text = out.getvalue()
    assert "alice: session ready" in text and "bob: session ready" in text
    out = io.StringIO()
    call_command("refresh_sessions", "--user", "alice", stdout=out)
    assert "alice: live session reused" in out.getvalue()
    assert sim.stats()["captcha_solves"] == 2


def test_refresh_sessions_force_replaces(alice: Account, sim: SimControl) -> None:
    call_command("refresh_sessions", "--user", "alice", stdout=io.StringIO())
    out = io.StringIO()
    call_command("refresh_sessions", "--user", "alice", "--force", stdout=out)
    assert "new session (forced)" in out.getvalue()
    assert sim.stats()["captcha_solves"] == 2


def test_refresh_sessions_fails_with_non_zero_exit(db: Any, sim: SimControl) -> None:
    make_account("ivan", password="wrong-password")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 1 accounts failed"):
        call_command("refresh_sessions", "--all", stdout=out)
    assert "rejected the username or password" in out.getvalue()


def test_refresh_sessions_unknown_user(db: Any) -> None:
    with pytest.raises(CommandError, match="No E-Modal account for: nobody"):
        call_command("refresh_sessions", "--user", "nobody", stdout=io.StringIO())


def test_refresh_sessions_dry_run_changes_nothing(alice: Account, sim: SimControl) -> None:
    out = io.StringIO()
    call_command("refresh_sessions", "--all", "--dry-run", stdout=out)
    assert "alice: session none (dry run)" in out.getvalue()
    assert sim.calls() == []
