"""Production settings: the deploy check passes, the security values hold, keys are required."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ..processes import ROOT

# Variables the settings read that a developer's or CI's environment could set.
_SCRUBBED = (
    "DEBUG",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "REDIS_URL",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_PRELOAD",
    "DJANGO_SETTINGS_MODULE",
    "TRUSTED_PROXY_COUNT",
    "AXES_FAILURE_LIMIT",
    "AXES_USERNAME_FAILURE_LIMIT",
    "HEALTHZ_CACHE_SECONDS",
    "HEALTHZ_TOKEN",
    "EMODAL_API_URL",
    "EMODAL_API_URLS",
    "EMAIL_URL",
    "TIME_ZONE",
    "LOG_LEVEL",
    "DJANGO_LOG_LEVEL",
)
SECRET_KEY = secrets.token_urlsafe(50)
FIELD_KEY = Fernet.generate_key().decode()


def production_env(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        DJANGO_SETTINGS_MODULE="emodal_portal.settings",
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        FIELD_ENCRYPTION_KEY=FIELD_KEY,
        ALLOWED_HOSTS="portal.example.com",
        # An empty database of its own: nothing stored under another key to trip a check.
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        EMODAL_API_URL="http://automation.example:5010",
        LOG_LEVEL="WARNING",
    )
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_deploy_check_passes_with_production_settings(tmp_path: Path) -> None:
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_security_values(tmp_path: Path) -> None:
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({n: getattr(s, n) for n in ("
        "'DEBUG', 'ALLOWED_HOSTS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', "
        "'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_HTTPONLY', 'X_FRAME_OPTIONS', "
        "'CONTENT_SECURITY_POLICY', 'DATA_UPLOAD_MAX_MEMORY_SIZE', "
        "'DATA_UPLOAD_MAX_NUMBER_FIELDS', 'TRUSTED_PROXY_COUNT', 'AXES_IPWARE_PROXY_COUNT', "
        "'AXES_IPWARE_META_PRECEDENCE_ORDER', 'AXES_USERNAME_FAILURE_LIMIT', "
        "'HEALTHZ_CACHE_SECONDS', 'HEALTHZ_TOKEN', 'SCHEDULED_TASK_HOOKS')}))"
    )
    result = run(["-c", script], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["portal.example.com"],
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "X_FRAME_OPTIONS": "DENY",
        "CONTENT_SECURITY_POLICY": {
            "DIRECTIVES": {
                "default-src": ["'self'"],
                "script-src": ["'self'"],
                "style-src": ["'self'"],
                "img-src": ["'self'", "data:"],
                "object-src": ["'none'"],
                "base-uri": ["'self'"],
                "frame-ancestors": ["'none'"],
                "form-action": ["'self'"],
            }
        },
        "DATA_UPLOAD_MAX_MEMORY_SIZE": 256 * 1024,
        "DATA_UPLOAD_MAX_NUMBER_FIELDS": 1000,
        "TRUSTED_PROXY_COUNT": 0,
        "AXES_IPWARE_PROXY_COUNT": None,
        "AXES_IPWARE_META_PRECEDENCE_ORDER": ["REMOTE_ADDR"],
        "AXES_USERNAME_FAILURE_LIMIT": 30,
        "HEALTHZ_CACHE_SECONDS": 5.0,
        "HEALTHZ_TOKEN": "",
        "SCHEDULED_TASK_HOOKS": [],
    }


def test_a_trusted_proxy_count_reads_the_client_from_forwarded_for(tmp_path: Path) -> None:
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.AXES_IPWARE_PROXY_COUNT, s.AXES_IPWARE_META_PRECEDENCE_ORDER, "
        "'csp.middleware.CSPMiddleware' in s.MIDDLEWARE]))"
    )
    result = run(["-c", script], production_env(tmp_path, TRUSTED_PROXY_COUNT="2"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        1,
        ["HTTP_X_FORWARDED_FOR"],
        True,
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT must be 0 (no proxy) or more."),
        (
            {"AXES_USERNAME_FAILURE_LIMIT": "5"},
            "AXES_USERNAME_FAILURE_LIMIT must be 0 (off) or more than AXES_FAILURE_LIMIT.",
        ),
    ],
)
def test_login_protection_settings_that_would_not_protect_are_refused_in_one_line(
    tmp_path: Path, bad: dict[str, str], message: str
) -> None:
    result = run(["manage.py", "check"], production_env(tmp_path, **bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"Error: {message}"]


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEY"])
@pytest.mark.parametrize(
    "command", [["migrate", "--plan"], ["set_credentials", "kim"], ["runserver"]], ids=" ".join
)
def test_production_refuses_to_start_without_a_key(
    tmp_path: Path, missing: str, command: list[str]
) -> None:
    for value in (None, ""):
        result = run(["manage.py", *command], production_env(tmp_path, **{missing: value}))
        assert result.returncode != 0
        assert f"{missing} must be set when DEBUG is off." in result.stderr


def test_the_code_only_commands_run_unconfigured_and_say_so(tmp_path: Path) -> None:
    unset = production_env(tmp_path, SECRET_KEY="", FIELD_ENCRYPTION_KEY="")
    # Secrets stored under a real key: with no key set, nothing claims they are unreadable.
    stored = production_env(tmp_path)
    assert run(["manage.py", "migrate", "--verbosity", "0"], stored).returncode == 0
    made = subprocess.run(
        [sys.executable, "manage.py", "set_credentials", "kim"],
        cwd=ROOT,
        env=stored,
        input="kim-em\nkim-password\nkim-captcha-key\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    for command in (["check"], ["makemigrations", "--check", "--dry-run"]):
        result = run(["manage.py", *command], unset)
        assert result.returncode == 0, result.stderr
        assert "sessions_app.W001" in result.stderr
        assert "SECRET_KEY and FIELD_ENCRYPTION_KEY not set" in result.stderr
        assert "sessions_app.E002" not in result.stderr
    # The deploy check still refuses the stand-ins.
    deploy = run(["manage.py", "check", "--deploy"], unset)
    assert deploy.returncode != 0 and "sessions_app.E003" in deploy.stderr


def test_the_deploy_check_refuses_the_development_key(tmp_path: Path) -> None:
    field_key = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXkhISE="
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env(tmp_path, FIELD_ENCRYPTION_KEY=field_key),
    )
    assert result.returncode != 0
    assert "sessions_app.E003" in result.stderr
    assert field_key not in result.stdout + result.stderr  # a key is never printed


MALFORMED_KEYS = {
    "not-a-fernet-key": SECRET_KEY,
    "too-short": "c2hvcnQ=",
    "second-of-two": f"{FIELD_KEY},not-a-key",
}


@pytest.mark.parametrize("field_key", MALFORMED_KEYS.values(), ids=MALFORMED_KEYS.keys())
@pytest.mark.parametrize(
    "command",
    [["check"], ["check", "--deploy"], ["migrate", "--plan"], ["set_credentials", "kim"]],
    ids=" ".join,
)
def test_a_malformed_field_key_stops_every_command_with_one_line(
    tmp_path: Path, field_key: str, command: list[str]
) -> None:
    result = run(["manage.py", *command], production_env(tmp_path, FIELD_ENCRYPTION_KEY=field_key))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: FIELD_ENCRYPTION_KEY")
    assert "is not a valid Fernet key: " in lines[0]
    assert ("key 2 of 2" in lines[0]) is ("," in field_key)
    for key in field_key.split(","):
        assert key not in result.stdout + result.stderr  # a key is never printed


def test_gunicorn_with_a_malformed_field_key_stops_with_one_line_and_no_traceback(
    tmp_path: Path,
) -> None:
    env = production_env(tmp_path, FIELD_ENCRYPTION_KEY="c2hvcnQ=")
    result = run(
        ["-m", "gunicorn", "emodal_portal.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"], env
    )
    assert result.returncode != 0  # halted, not respawning workers for ever
    assert "Error: FIELD_ENCRYPTION_KEY is not a valid Fernet key" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_deploy_check_refuses_a_field_key_equal_to_the_secret_key(tmp_path: Path) -> None:
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env(tmp_path, SECRET_KEY=FIELD_KEY),
    )
    assert result.returncode != 0
    assert "sessions_app.E004" in result.stderr


@pytest.mark.parametrize(
    "bad", [{"QUERY_TRIGGER_LIMIT": "-1"}, {"QUERY_TRIGGER_WINDOW_SECONDS": "0"}]
)
def test_a_negative_trigger_limit_or_an_empty_window_is_refused(
    tmp_path: Path, bad: dict[str, str]
) -> None:
    result = run(["manage.py", "check"], production_env(tmp_path, **bad))
    assert result.returncode != 0
    assert "QUERY_TRIGGER_LIMIT must be 0 (off) or more" in result.stderr


# --- An empty variable is not set; a mistake is one line naming the variable -------------------

DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"
DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXkhISE="
SHOW_DEFAULTS = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], "
    "'db_name': str(s.DATABASES['default']['NAME']), 'email': s.EMAIL_BACKEND, "
    "'upstream': s.EMODAL_API_URLS, 'api_url': s.EMODAL_API_URL, 'redis': s.REDIS_URL, "
    "'broker': sorted(k for k in ('orm', 'redis') if k in s.Q_CLUSTER), "
    "'hosts': s.ALLOWED_HOSTS, 'csrf': s.CSRF_TRUSTED_ORIGINS, 'workers': s.Q_WORKERS, "
    "'tz': s.TIME_ZONE, 'retries': s.WEBHOOK_RETRY_SECONDS, 'debug': s.DEBUG}))"
)
EMPTY = [
    "DATABASE_URL",
    "EMAIL_URL",
    "EMODAL_API_URLS",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "Q_WORKERS",
    "TIME_ZONE",
    "WEBHOOK_RETRY_SECONDS",
    "DEBUG",
    "LOG_LEVEL",
]


def test_a_variable_set_to_nothing_is_not_set(tmp_path: Path) -> None:
    env = production_env(tmp_path, DATABASE_URL=None, ALLOWED_HOSTS=None)
    unset = run(["-c", SHOW_DEFAULTS], env)
    assert unset.returncode == 0, unset.stderr
    empty = run(["-c", SHOW_DEFAULTS], {**env, **dict.fromkeys(EMPTY, "")})
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout.splitlines()[-1]) == json.loads(unset.stdout.splitlines()[-1])
    assert json.loads(empty.stdout.splitlines()[-1]) == {
        "db": "django_prometheus.db.backends.sqlite3",
        "db_name": str(ROOT / "var" / "db.sqlite3"),
        "email": "emodal_portal.mail.DeadlineEmailBackend",
        "upstream": ["http://automation.example:5010"],  # EMODAL_API_URL's, not nothing
        "api_url": "http://automation.example:5010",
        "redis": "",
        "broker": ["orm"],
        "hosts": ["localhost", "127.0.0.1", "[::1]"],
        "csrf": [],
        "workers": 4,
        "tz": "America/Los_Angeles",
        "retries": [60, 300, 1800, 7200, 18000, 36000],
        "debug": False,
    }


def test_an_empty_variable_in_the_environment_is_filled_in_from_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emodal_portal.environment import portal_env

    monkeypatch.setattr(os, "environ", {"EMODAL_API_URL": "", "Q_WORKERS": "2", "REDIS_URL": ""})
    (tmp_path / ".env").write_text(
        "EMODAL_API_URL=http://automation:5010\nQ_WORKERS=8\nREDIS_URL=\nDATABASE_URL=\n"
    )
    env = portal_env(tmp_path)
    assert env.str("EMODAL_API_URL", default="") == "http://automation:5010"
    assert env.int("Q_WORKERS", default=4) == 2  # set in the environment: it wins
    assert env.str("REDIS_URL", default="none") == "none"  # empty in both: not set
    assert env.db("DATABASE_URL", default="sqlite:////tmp/x.sqlite3")["NAME"] == "/tmp/x.sqlite3"
    assert "REDIS_URL" not in env and "EMODAL_API_URL" in env
    # What .env sets reaches the processes started from here; an empty value sets nothing.
    assert os.environ["EMODAL_API_URL"] == "http://automation:5010"
    assert "DATABASE_URL" not in os.environ


MISTAKES = {
    "DEBUG": ("maybe", "DEBUG must be true or false."),
    "Q_WORKERS": ("four", "Q_WORKERS must be a whole number."),
    "EMODAL_TIMEOUT_SCALE": ("fast", "EMODAL_TIMEOUT_SCALE must be a number."),
    "WEBHOOK_RETRY_SECONDS": (
        "60,soon",
        "WEBHOOK_RETRY_SECONDS must be a comma-separated list of whole numbers.",
    ),
    "DATABASE_URL": ("mysqlx://portal:hunter2@db/portal", "DATABASE_URL is not a database URL"),
    "EMAIL_URL": ("smtps2://mail:hunter2@mail.example", "EMAIL_URL is not a mail server URL"),
    "REDIS_URL": ("localhost:6379", "REDIS_URL is not a Redis URL"),
    "EMODAL_API_URL": ("automation:5010", "EMODAL_API_URL is not an http:// or https:// address"),
    "EMODAL_API_URLS": (
        "http://a:5010,ftp://b",
        "EMODAL_API_URLS (entry 2 of 2) is not an http:// or https:// address",
    ),
    "TIME_ZONE": ("Mars/Olympus_Mons", "TIME_ZONE is not a time zone name"),
    "LOG_LEVEL": ("LOUD", "LOG_LEVEL must be one of DEBUG, INFO"),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_every_configuration_mistake_is_one_line_naming_the_variable(
    tmp_path: Path, name: str
) -> None:
    value, message = MISTAKES[name]
    result = run(["manage.py", "check"], production_env(tmp_path, **{name: value}))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {message}"), lines[0]
    assert "hunter2" not in result.stderr  # a password in a URL is never repeated
    assert "Traceback" not in result.stderr


NO_UPSTREAM = {"EMODAL_API_URL": None, "EMODAL_API_URLS": ""}
DEVELOPMENT_KEYS = {
    "SECRET_KEY": {"SECRET_KEY": DEV_SECRET_KEY},
    "FIELD_ENCRYPTION_KEY": {"FIELD_ENCRYPTION_KEY": f"{FIELD_KEY},{DEV_FIELD_KEY}"},
}
REFUSALS = {
    "no upstream": (NO_UPSTREAM, "Error: EMODAL_API_URL must be set when DEBUG is off"),
    "empty upstream": (
        {"EMODAL_API_URL": "", "EMODAL_API_URLS": ""},
        "Error: EMODAL_API_URL must be set when DEBUG is off",
    ),
    "development SECRET_KEY": (
        DEVELOPMENT_KEYS["SECRET_KEY"],
        "Error: SECRET_KEY is the development key committed in the repository",
    ),
    "development FIELD_ENCRYPTION_KEY": (
        DEVELOPMENT_KEYS["FIELD_ENCRYPTION_KEY"],
        "Error: FIELD_ENCRYPTION_KEY holds the development key committed in the repository",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "qcluster"],
        ["manage.py", "migrate", "--plan"],
        ["manage.py", "set_credentials", "kim"],
    ],
    ids=lambda command: command[1],
)
def test_production_refuses_to_start_without_an_upstream_or_with_development_keys(
    tmp_path: Path, case: str, command: list[str]
) -> None:
    changes, message = REFUSALS[case]
    result = run(command, production_env(tmp_path, **changes))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message), result.stderr
    assert DEV_SECRET_KEY not in result.stderr and DEV_FIELD_KEY not in result.stderr


@pytest.mark.parametrize("case", REFUSALS)
def test_gunicorn_refuses_to_start_without_an_upstream_or_with_development_keys(
    tmp_path: Path, case: str
) -> None:
    changes, message = REFUSALS[case]
    result = run(
        ["-m", "gunicorn", "emodal_portal.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"],
        production_env(tmp_path, **changes),
    )
    assert result.returncode != 0  # halted, not respawning workers for ever
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        line for line in result.stderr.splitlines() if line.startswith(message)
    ]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_code_only_commands_say_what_the_portal_would_refuse(tmp_path: Path) -> None:
    env = production_env(tmp_path, SECRET_KEY=DEV_SECRET_KEY, **NO_UPSTREAM)
    result = run(["manage.py", "check"], env)
    assert result.returncode == 0, result.stderr
    assert "sessions_app.W002" in result.stderr and "EMODAL_API_URL not set" in result.stderr
    assert "sessions_app.W003" in result.stderr
    assert "SECRET_KEY: the development key" in result.stderr
    deploy = run(["manage.py", "check", "--deploy"], env)
    assert deploy.returncode != 0 and "sessions_app.E005" in deploy.stderr
