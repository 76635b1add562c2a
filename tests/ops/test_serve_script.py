"""`make serve` refuses to start without production settings, before starting anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ..processes import ROOT


def serve(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEY", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'never.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        SERVE_BIND="127.0.0.1:0",
        **settings,
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
    ],
)
def test_it_refuses_to_start_without_production_settings(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    done = serve(tmp_path, **settings)
    assert done.returncode == 1, done.stderr
    assert message in done.stderr
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
