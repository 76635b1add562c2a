"""set_credentials and refresh_sessions."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions_app.models import Account

from ..conftest import make_account
from ..processes import ROOT, worker_env
from ..sim import SimControl

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
    # The operator is told the new user cannot log in yet, and how to change that.
    assert "gina has no portal password yet and cannot log in" in out
    assert "`manage.py changepassword gina`" in out


def test_set_credentials_says_nothing_of_a_password_a_user_has(
    monkeypatch: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_user("hal", password="hal-portal-password")
    out = set_credentials(monkeypatch, "hal-emodal\nhal-pw\nhal-key\n", "hal")
    assert "Created account hal." in out
    assert "cannot log in" not in out


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
    assert "refused the account's user name or password" in out.getvalue()


def test_refresh_sessions_unknown_user(db: Any) -> None:
    with pytest.raises(CommandError, match="No E-Modal account for: nobody"):
        call_command("refresh_sessions", "--user", "nobody", stdout=io.StringIO())


def test_refresh_sessions_dry_run_changes_nothing(alice: Account, sim: SimControl) -> None:
    out = io.StringIO()
    call_command("refresh_sessions", "--all", "--dry-run", stdout=out)
    assert "alice: session none (dry run)" in out.getvalue()
    assert sim.calls() == []


# -- bad input: one readable line and exit status 1, nothing written --------------------------

CREDENTIALS = "kim-emodal\nkim-password\nkim-captcha-key\n"


def manage(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it, against the test database."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=worker_env("http://127.0.0.1:9"),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["k" * 200], CREDENTIALS, "Portal username: Ensure this value has at most 150 characters"),
        (["<b>kim</b>"], CREDENTIALS, "Portal username: must not contain “<”, “>”"),
        (["kim", "--email", "not-an-address"], CREDENTIALS, "--email: Enter a valid email"),
        (
            ["kim"],
            "k" * 200 + "\nkim-password\nkim-captcha-key\n",
            "E-Modal username (line 1): Ensure this value has at most 150 characters (it has 200)",
        ),
        (
            ["kim"],
            "<script>alert(1)</script>\nkim-password\nkim-captcha-key\n",
            "E-Modal username (line 1): must not contain “<”, “>” or control characters.",
        ),
        (
            ["kim"],
            "kim\x1b[31m-emodal\nkim-password\nkim-captcha-key\n",
            "E-Modal username (line 1): must not contain",
        ),
        (
            ["kim"],
            "kim-emodal\nkim-password\n" + "k" * 300 + "\n",
            "Captcha API key (line 3): Ensure this value has at most 255 characters",
        ),
        (
            ["kim", "--truck-plate", "7" * 300],
            CREDENTIALS,
            "--truck-plate: Ensure this value has at most 20 characters (it has 300).",
        ),
        (
            ["kim", "--trucking-company", "<b>Acme</b>"],
            CREDENTIALS,
            "--trucking-company: must not contain",
        ),
    ],
    ids=[
        "long-portal-username",
        "html-portal-username",
        "bad-email",
        "long-emodal-username",
        "html-emodal-username",
        "escape-in-emodal-username",
        "long-captcha-key",
        "long-plate",
        "html-company",
    ],
)
def test_set_credentials_refuses_bad_input_in_one_line_before_writing_anything(
    db: Any, django_user_model: Any, args: list[str], stdin: str, message: str
) -> None:
    result = manage("set_credentials", *args, stdin=stdin)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"CommandError: {message}"), lines[0]
    assert "kim-password" not in result.stderr and "kim-captcha-key" not in result.stderr
    assert not django_user_model.objects.exists()
    assert not Account.objects.exists()


def test_set_credentials_takes_values_that_fill_their_columns(db: Any) -> None:
    plate = "7" * Account._meta.get_field("truck_plate").max_length
    result = manage("set_credentials", "kim", "--truck-plate", plate, stdin=CREDENTIALS)
    assert result.returncode == 0, result.stderr
    assert Account.objects.get(user__username="kim").truck_plate == plate


@pytest.mark.parametrize("command", ["refresh_sessions", "run_queries"])
def test_account_commands_refuse_a_name_that_cannot_be_a_username_in_one_line(
    db: Any, command: str
) -> None:
    extra = ["--kind", "containers"] if command == "run_queries" else []
    result = manage(command, *extra, "--user", "k" * 200)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: --user: Ensure this value has at most 150 characters (it has 200)."
    ]
