"""`make serve` refuses to start without production settings, before starting anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ..processes import ROOT

SCRUBBED = (
    "DEBUG",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "DJANGO_SETTINGS_MODULE",
    "EMODAL_API_URL",
    "EMODAL_API_URLS",
)
KEYS = {"SECRET_KEY": "k" * 50, "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode()}
DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"
DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXkhISE="


def serve(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'never.sqlite3'}",
            "STATIC_ROOT": str(tmp_path / "static"),
            "SERVE_BIND": "127.0.0.1:0",
            "EMODAL_API_URL": "http://automation.example:5010",
            **settings,
        }
    )
    return subprocess.run(
        [sys.executable, "scripts/serve.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "Error: SECRET_KEY must be set when DEBUG is off."),
        ({"SECRET_KEY": "k" * 50}, "Error: FIELD_ENCRYPTION_KEY must be set when DEBUG is off."),
        (
            {"SECRET_KEY": "k" * 50, "FIELD_ENCRYPTION_KEY": "not-a-key"},
            "Error: FIELD_ENCRYPTION_KEY is not a valid Fernet key",
        ),
        (
            {"DEBUG": "true", "SECRET_KEY": "k" * 50, "FIELD_ENCRYPTION_KEY": "x"},
            "Error: make serve runs production settings",
        ),
        ({**KEYS, "DEBUG": "yes please"}, "Error: DEBUG must be true or false."),
        ({**KEYS, "SERVE_WEB_WORKERS": "3x"}, "Error: SERVE_WEB_WORKERS must be a whole number."),
        (
            {**KEYS, "EMODAL_API_URL": ""},
            "Error: EMODAL_API_URL must be set when DEBUG is off",
        ),
        (
            {**KEYS, "SECRET_KEY": DEV_SECRET_KEY},
            "Error: SECRET_KEY is the development key committed in the repository",
        ),
        (
            {**KEYS, "FIELD_ENCRYPTION_KEY": DEV_FIELD_KEY},
            "Error: FIELD_ENCRYPTION_KEY is the development key committed in the repository",
        ),
        (
            {**KEYS, "DATABASE_URL": "postgres://portal:hunter2@"},
            "Error: DATABASE_URL names no database.",
        ),
        ({**KEYS, "EMAIL_URL": "mail.example.com"}, "Error: EMAIL_URL is not a mail server URL"),
    ],
)
def test_it_refuses_to_start_without_production_settings(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    done = serve(tmp_path, **settings)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert done.stderr.startswith(message), done.stderr
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "never.sqlite3").exists()  # nothing was migrated, nothing started
    assert "[run] starting" not in done.stdout


def test_a_valid_key_is_not_enough_with_a_bad_worker_count(tmp_path: Path) -> None:
    done = serve(
        tmp_path,
        SECRET_KEY="k" * 50,
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        SERVE_WEB_WORKERS="0",
    )
    assert done.returncode == 1
    assert "SERVE_WEB_WORKERS must be 1 or more" in done.stderr
