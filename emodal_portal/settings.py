"""
Settings for E-Modal Portal, read from the environment (and `.env` when present).

Every variable is documented in `.env.example` and the README. Defaults serve one machine:
SQLite, the django-q2 ORM broker and the bundled upstream simulator. `DATABASE_URL` and
`REDIS_URL` switch to PostgreSQL and the Redis broker for the at-scale set-up.
"""

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from .environment import http_urls, portal_env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

# A variable set to nothing is not set; a value that cannot be read stops the start with one
# line naming the variable (emodal_portal/environment.py).
env = portal_env(BASE_DIR)

DEBUG = env.bool("DEBUG", default=False)

# Development keys exist only so that a fresh clone runs with DEBUG on. They are public (they
# are in the repository), so production refuses to start with them as with no key at all (and
# the deploy check refuses these very values).
DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105
DEV_FIELD_ENCRYPTION_KEY = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXkhISE="


# `manage.py check` and `manage.py makemigrations` read only the code: they run on a checkout
# with no configuration, with the development keys standing in for missing ones (named in
# UNSET_KEYS, so that no check tries stored secrets with them, and said in a warning), and
# with the development keys or no upstream (DEVELOPMENT_KEYS, UNSET_UPSTREAM: warnings too).
# The deploy check still refuses those keys; every other command, and the web and task
# processes, refuse to start without real ones or without an upstream.
CODE_ONLY_COMMAND = Path(sys.argv[0]).name == "manage.py" and sys.argv[1:2] in (
    ["check"],
    ["makemigrations"],
)
UNSET_KEYS: list[str] = []
DEVELOPMENT_KEYS: list[str] = []
KEY_COMMANDS = {
    "SECRET_KEY": "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'",
    "FIELD_ENCRYPTION_KEY": (
        "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
    ),
}


def _required_in_production(name: str, dev_default: str) -> str:
    value = env.str(name, default="")
    if value:
        if DEBUG or dev_default not in (part.strip() for part in value.split(",")):
            return value
        if CODE_ONLY_COMMAND:
            DEVELOPMENT_KEYS.append(name)
            return value
        raise ImproperlyConfigured(
            f"{name} {'holds' if ',' in value else 'is'} the development key committed in the "
            "repository, which anyone can read; with DEBUG off, generate one with: "
            f"{KEY_COMMANDS[name]}"
        )
    if DEBUG:
        return dev_default
    if CODE_ONLY_COMMAND:
        UNSET_KEYS.append(name)
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off.")


def _fernet_keys(text: str) -> list[str]:
    """The comma-separated keys, each checked to be a Fernet key. The error says which one
    is wrong and why, never what it is."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY holds no key.")
    for number, key in enumerate(keys, start=1):
        which = f" (key {number} of {len(keys)})" if len(keys) > 1 else ""
        try:
            Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEY{which} is not a valid Fernet key: {str(exc).rstrip('.')}; "
                f"generate one with: {KEY_COMMANDS['FIELD_ENCRYPTION_KEY']}"
            ) from None
    return keys


SECRET_KEY = _required_in_production("SECRET_KEY", DEV_SECRET_KEY)
# A comma-separated list: the first key encrypts, every key decrypts (key rotation).
FIELD_ENCRYPTION_KEY = _fernet_keys(
    _required_in_production("FIELD_ENCRYPTION_KEY", DEV_FIELD_ENCRYPTION_KEY)
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",  # Django's admin, the portal's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # WhiteNoise serves static files under runserver too, as it does under gunicorn.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_prometheus",
    "django_q",
    "encrypted_model_fields",
    "axes",
    "csp",
    "sessions_app",
    "outbox",
    "history",
    "queries_app",
    "ops_app",
    "containers_app",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by the portal (no CDN)
    "api_app",
    "bookings_app",
    "notifications",
]

MIDDLEWARE = [
    # First and last: django-prometheus times every request (per process; see ops_app.metrics).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files, compressed and with far-future caching for hashed names: the portal
    # needs nothing in front of it to serve them (see STORAGES).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Content-Security-Policy on every response (see CONTENT_SECURITY_POLICY).
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page in the zone the person chose (kept in their session); the API in the site's.
    "portal.timezones.UserZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "emodal_portal.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "emodal_portal.wsgi.application"

# --- Database -----------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)  # a fresh clone has no var/ yet
    # Several worker processes write to one file: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock at BEGIN (no deadlocking lock upgrades) and a long busy
    # timeout makes writers queue instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30),
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# django-prometheus's wrappers of the same backends count queries and errors per process.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and task queue -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and urlsplit(REDIS_URL).scheme not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured(
        "REDIS_URL is not a Redis URL: redis://host:6379/0, rediss://… or unix://…"
    )


def _counter_file() -> str:
    """Beside the SQLite database (`db.sqlite3` → `db-counters.sqlite3`), else in var/."""
    database = DATABASES["default"]
    if "sqlite" in database["ENGINE"]:
        return str(Path(database["NAME"]).with_suffix("")) + "-counters.sqlite3"
    return str(VAR_DIR / "api-counters.sqlite3")


REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": REDIS_CACHE, "LOCATION": REDIS_URL},
        "api": {"BACKEND": REDIS_CACHE, "LOCATION": REDIS_URL, "KEY_PREFIX": "api"},
    }
else:
    # A database cache (not local memory) so that `qinfo`, `qmonitor` and health checks in
    # another process can read the cluster's statistics.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "portal_cache",
        },
        # The API's request counts (api_app.throttling): a SQLite file of their own beside the
        # database, shared by this host's web processes, so that an API read never needs the
        # database's write lock (api_app.counters says why not Django's file or database cache).
        "api": {"BACKEND": "api_app.counters.SQLiteCounterCache", "LOCATION": _counter_file()},
    }

Q_WORKERS = env.int("Q_WORKERS", default=4)
# Every task is one short step (one upstream call, plus at most one session creation and one
# replay: about 2 x (150 s login + 180 s full container scroll) in the worst case).
Q_TIMEOUT = env.int("Q_TIMEOUT", default=900)
Q_CLUSTER = {
    "name": "emodal_portal",
    "workers": Q_WORKERS,
    "timeout": Q_TIMEOUT,
    # The broker hands a task out again when it has not been acknowledged `retry` seconds
    # after it was taken. It must exceed `timeout` plus the time a task can wait in the
    # cluster's local queue, or every long task runs twice (django-q's default is 60 s).
    "retry": Q_TIMEOUT + 300,
    # A task whose worker was killed is redelivered at most this many times in all; the
    # query's own attempt counter and the stale-query sweep handle the rest.
    "max_attempts": 3,
    # A task that raised is acknowledged: query steps record their own failure on the Query
    # row, so a broker redelivery of a failed step would only repeat the failure.
    "ack_failures": True,
    # Prefetch little: tasks waiting in one cluster's local queue can neither be taken by an
    # idle cluster elsewhere nor survive that cluster's crash.
    "queue_limit": Q_WORKERS,
    "save_limit": 1000,
    "catch_up": False,
    "label": "Task queue",
    # How long the ORM broker's pusher sleeps when it found the queue empty: the delay before
    # a new query's first step starts on an idle cluster.
    "poll": env.float("Q_POLL", default=0.1),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# The only functions (and result hooks) a schedule may name in the admin: a schedule is a
# dotted path a worker imports and calls, so anything else would run arbitrary code. Add a
# task here when the portal gains one that is meant to recur. Only superusers edit schedules.
SCHEDULED_TASK_FUNCS = [
    "queries_app.tasks.run_recurring_query",
    "queries_app.tasks.sweep_queries",
    "ops_app.tasks.prune_results",
    "containers_app.tasks.record_due_dates",
    "bookings_app.tasks.sweep_bookings",
    "notifications.tasks.sweep",
]
SCHEDULED_TASK_HOOKS: list[str] = []

# Booking (bookings_app): slots read longer ago than this are not booked from; a new check is
# made first (E-Modal's slots go fast, and the slot text is sent verbatim).
BOOKING_SLOT_MAX_AGE_SECONDS = env.int("BOOKING_SLOT_MAX_AGE_SECONDS", default=300)
# A booking sent this long ago with no answer recorded lost its worker mid-call: its outcome
# is unknown (the sweep says so and asks for a read of the appointments).
BOOKING_ANSWER_LOST_SECONDS = env.int("BOOKING_ANSWER_LOST_SECONDS", default=Q_TIMEOUT + 60)
# An unknown outcome is read again (the account's appointments) this long after its last read,
# up to BOOKING_READS reads in all; then it waits for a person or anyone's read.
BOOKING_REREAD_SECONDS = env.int("BOOKING_REREAD_SECONDS", default=600)
BOOKING_READS = env.int("BOOKING_READS", default=4)

# A worker runs steps back to back for at most this long, then hands what is left to the
# broker (a task must end well within Q_TIMEOUT, whatever its last step takes). 0: one step
# per task.
QUERY_CHAIN_SECONDS = env.float("QUERY_CHAIN_SECONDS", default=120)
# A worker with nothing to run waits for a step whose retry falls due within this many seconds
# (instead of leaving it to the sweep's next round, up to a minute later).
QUERY_RETRY_WAIT_SECONDS = env.float("QUERY_RETRY_WAIT_SECONDS", default=10)
# A query step that failed for a passing reason is retried after this back-off (doubling).
QUERY_RETRY_BASE_SECONDS = env.float("QUERY_RETRY_BASE_SECONDS", default=30)
# How long a worker's claim on a query lasts without being renewed. A worker renews it while
# it runs a step (every quarter of it, upstream call in flight included), so a step may take
# far longer; a worker that died (a SIGKILL of every cluster) leaves a claim the sweep takes
# back within this plus a minute.
QUERY_CLAIM_SECONDS = env.float("QUERY_CLAIM_SECONDS", default=120)
if QUERY_CLAIM_SECONDS <= 0:
    raise ImproperlyConfigured("QUERY_CLAIM_SECONDS must be more than 0.")
# A live query with no running step and no task seen for this long lost its task (the Redis
# broker keeps no copy of a task once a cluster took it); the sweep enqueues it again.
QUERY_LOST_AFTER_SECONDS = env.float("QUERY_LOST_AFTER_SECONDS", default=Q_TIMEOUT + 600)
# Queries a person (user or staff, on the pages or in the admin) may start per window of this
# many seconds; triggers that return a query already running do not count. 0 turns it off.
# Commands and schedules (operators) are not limited.
QUERY_TRIGGER_LIMIT = env.int("QUERY_TRIGGER_LIMIT", default=30)
QUERY_TRIGGER_WINDOW_SECONDS = env.int("QUERY_TRIGGER_WINDOW_SECONDS", default=600)
if QUERY_TRIGGER_LIMIT < 0 or QUERY_TRIGGER_WINDOW_SECONDS <= 0:
    raise ImproperlyConfigured(
        "QUERY_TRIGGER_LIMIT must be 0 (off) or more, QUERY_TRIGGER_WINDOW_SECONDS more than 0."
    )
# Recurring runs (the board's scheduled runs) one account may have, and the least time between
# two of the times its runs start at (all its runs together): schedules start batches, which
# the trigger limit does not count. 0 turns either off.
RECURRING_RUNS_PER_ACCOUNT = env.int("RECURRING_RUNS_PER_ACCOUNT", default=10)
RECURRING_MIN_INTERVAL_MINUTES = env.int("RECURRING_MIN_INTERVAL_MINUTES", default=30)
if RECURRING_RUNS_PER_ACCOUNT < 0 or not 0 <= RECURRING_MIN_INTERVAL_MINUTES <= 720:
    raise ImproperlyConfigured(
        "RECURRING_RUNS_PER_ACCOUNT must be 0 (no limit) or more, "
        "RECURRING_MIN_INTERVAL_MINUTES 0 (off) to 720."
    )

# --- Upstream --------------------------------------------------------------------------------
# Several automation servers (EMODAL_API_URLS, comma-separated: each account is assigned to one
# and stays there), or one (EMODAL_API_URL). Production names its upstream: with none, queries
# would wait for ever. With DEBUG on, none means the bundled simulator, which `make run` starts
# on this address.
SIMULATOR_URL = "http://127.0.0.1:5010"


def _upstream_urls() -> list[str]:
    several = [url for url in env.list("EMODAL_API_URLS", default=[]) if url.strip()]
    if several:
        return http_urls("EMODAL_API_URLS", several)
    one = env.str("EMODAL_API_URL", default="")
    return http_urls("EMODAL_API_URL", [one]) if one else []


EMODAL_API_URLS = _upstream_urls()
UNSET_UPSTREAM = not EMODAL_API_URLS and not DEBUG and CODE_ONLY_COMMAND
if not EMODAL_API_URLS and not DEBUG and not CODE_ONLY_COMMAND:
    raise ImproperlyConfigured(
        "EMODAL_API_URL must be set when DEBUG is off: the address of the upstream automation "
        "API (e.g. http://automation:5010; for a trial, the bundled simulator: make sim)."
    )
EMODAL_API_URLS = EMODAL_API_URLS or [SIMULATOR_URL]
EMODAL_API_URL = EMODAL_API_URLS[0]
# Sessions (browsers) the portal keeps at once on each server; the upstream holds 10 and
# evicts the least recently used one, even mid-call, for an 11th login.
EMODAL_MAX_SESSIONS = env.int("EMODAL_MAX_SESSIONS", default=10)
# When every browser is held by an account with work waiting, a login waits this long for one,
# then its task gives the worker back and the query is retried later (it keeps its tries).
EMODAL_SLOT_WAIT_SECONDS = env.float("EMODAL_SLOT_WAIT_SECONDS", default=5)
EMODAL_CONNECT_TIMEOUT = env.float("EMODAL_CONNECT_TIMEOUT", default=5.0)
# Multiplies every read timeout; set it to the simulator's time scale (or a little above) to
# make a time-scaled simulator's slow answers count as timeouts at the same proportion.
EMODAL_TIMEOUT_SCALE = env.float("EMODAL_TIMEOUT_SCALE", default=1.0)
EMODAL_MAX_DOWNLOAD_BYTES = env.int("EMODAL_MAX_DOWNLOAD_BYTES", default=50 * 1024 * 1024)
# The upstream's docs say a session dies after 10 idle minutes, but the real server keeps it
# until it is evicted or its browser breaks: by default (0) a stored session is never assumed
# dead by time; a call that finds it gone replaces it. A positive value (e.g. 600) makes a
# session idle for longer than this minus the margin count as gone without a call.
EMODAL_SESSION_IDLE_SECONDS = env.float("EMODAL_SESSION_IDLE_SECONDS", default=0)
EMODAL_SESSION_MARGIN_SECONDS = env.float("EMODAL_SESSION_MARGIN_SECONDS", default=60)
# A failed appointment check leaves its workflow held, and the upstream closes that browser
# 600 s after the workflow's last use, whoever is using it then: this long after it, the
# browser gets no new work and the session is replaced (600 s less a check's 3 minutes).
EMODAL_POISON_SECONDS = env.float("EMODAL_POISON_SECONDS", default=420)
# A creation lease lasts longer than the slowest login (captcha gives up after ~2 min).
EMODAL_LEASE_SECONDS = env.float("EMODAL_LEASE_SECONDS", default=300)
# How long a worker waits for another's session creation or for the account's browser.
# Shorter than a task's timeout: a step that waited this long gives way and is retried later.
EMODAL_WAIT_SECONDS = env.float("EMODAL_WAIT_SECONDS", default=300)
EMODAL_POLL_SECONDS = env.float("EMODAL_POLL_SECONDS", default=0.25)
# A transient upstream failure at login (5xx, captcha not solved, network) is tried this many
# times in all, with back-off from the base doubling up to the maximum (with jitter).
EMODAL_RETRY_ATTEMPTS = env.int("EMODAL_RETRY_ATTEMPTS", default=2)
# Failed logins in a row that may each have spent a captcha without a verdict on the
# credentials (captcha not solved; a cause E-Modal does not name) before the account is
# flagged for a person and no further login is tried.
EMODAL_LOGIN_FAILURE_LIMIT = env.int("EMODAL_LOGIN_FAILURE_LIMIT", default=2)
EMODAL_RETRY_BASE_SECONDS = env.float("EMODAL_RETRY_BASE_SECONDS", default=2.0)
EMODAL_RETRY_MAX_SECONDS = env.float("EMODAL_RETRY_MAX_SECONDS", default=10.0)
# The circuit breaker per server (shared by all workers): after this many transient failures
# in a row, calls fail fast; after the reset time one probe call is let through.
EMODAL_BREAKER_FAILURES = env.int("EMODAL_BREAKER_FAILURES", default=5)
EMODAL_BREAKER_RESET_SECONDS = env.float("EMODAL_BREAKER_RESET_SECONDS", default=60)
# A worker that saw the breaker closed and clean trusts that for this long before reading it
# again (saves a read per upstream call; an opening elsewhere reaches it this much later).
EMODAL_BREAKER_CACHE_SECONDS = env.float("EMODAL_BREAKER_CACHE_SECONDS", default=1.0)
# Captcha solves allowed per hour, per account and for the whole portal; past either, no new
# session is created until the hour frees up (0 turns a budget off).
EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = env.int(
    "EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR", default=6
)
EMODAL_CAPTCHA_BUDGET_PER_HOUR = env.int("EMODAL_CAPTCHA_BUDGET_PER_HOUR", default=200)
# /healthz asks each upstream server for its /health within this many seconds.
HEALTHZ_UPSTREAM_TIMEOUT = env.float("HEALTHZ_UPSTREAM_TIMEOUT", default=3.0)
# ... and keeps each server's answer this long in the (shared) cache: /healthz is open to
# anyone, who must not be able to make the portal call the upstream at will. 0: ask each time.
HEALTHZ_CACHE_SECONDS = env.float("HEALTHZ_CACHE_SECONDS", default=5.0)
# Callers sending "Authorization: Bearer <this>" (and staff) get each check's details; others
# only the verdict. Empty: staff only.
HEALTHZ_TOKEN = env.str("HEALTHZ_TOKEN", default="")

# --- Operations: metrics and retention ------------------------------------------------------------
# GET /metrics (Prometheus text format) answers only "Authorization: Bearer <this>"; empty
# turns the endpoint off (404).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# The daily prune (ops_app.tasks.prune_results) deletes the result rows and files of queries
# older than this many days, keeping each account's latest successful query of each kind and
# its RESULTS_KEEP_LAST most recent ones besides; 0 turns the daily prune off.
RESULTS_RETENTION_DAYS = env.int("RESULTS_RETENTION_DAYS", default=30)
RESULTS_KEEP_LAST = env.int("RESULTS_KEEP_LAST", default=3)
if RESULTS_RETENTION_DAYS < 0 or RESULTS_KEEP_LAST < 0:
    raise ImproperlyConfigured("RESULTS_RETENTION_DAYS and RESULTS_KEEP_LAST must be 0 or more.")
# The same daily prune deletes the board's records older than this many days: sent (or
# undeliverable) alerts, events, history entries, and containers gone from their list that long;
# 0 keeps them.
BOARD_RETENTION_DAYS = env.int("BOARD_RETENTION_DAYS", default=180)
if BOARD_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("BOARD_RETENTION_DAYS must be 0 (keep) or more.")

# --- API and webhooks ---------------------------------------------------------------------------
# Requests one API token, and one person with all their tokens together, may make per window
# (fixed windows, counted in the `api` cache so that the limits hold across web processes);
# past either 429 with Retry-After. 0 turns a limit off.
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=120)
API_USER_RATE_LIMIT = env.int("API_USER_RATE_LIMIT", default=120)
API_RATE_WINDOW_SECONDS = env.int("API_RATE_WINDOW_SECONDS", default=60)
if API_RATE_LIMIT < 0 or API_USER_RATE_LIMIT < 0 or API_RATE_WINDOW_SECONDS <= 0:
    raise ImproperlyConfigured(
        "API_RATE_LIMIT and API_USER_RATE_LIMIT must be 0 (off) or more, "
        "API_RATE_WINDOW_SECONDS more than 0."
    )
# Tokens a person may hold at once (not revoked, not expired); 0 = no limit.
API_TOKENS_PER_USER = env.int("API_TOKENS_PER_USER", default=10)
if API_TOKENS_PER_USER < 0:
    raise ImproperlyConfigured("API_TOKENS_PER_USER must be 0 (no limit) or more.")
# Webhooks go to public addresses only: a URL whose host is or resolves to a loopback, private,
# link-local or reserved address is refused, unless this is on (tests; a receiver inside the
# company's own network).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)
# How long a receiver has to answer one delivery attempt.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10)
# Seconds between a failed attempt and the next: 1 min, 5 min, 30 min, 2 h, 5 h, 10 h (seven
# attempts over about 18 hours); then the delivery fails, and an endpoint that delivered
# nothing all that time is disabled (its owner told by e-mail).
WEBHOOK_RETRY_SECONDS = env.list(
    "WEBHOOK_RETRY_SECONDS", cast=int, default=[60, 300, 1800, 7200, 18000, 36000]
)
# A delivery whose task was lost (broker restart) is enqueued again after this long.
WEBHOOK_LOST_AFTER_SECONDS = env.int("WEBHOOK_LOST_AFTER_SECONDS", default=600)
# Finished deliveries (the delivery log) are deleted after this many days; 0 keeps them.
WEBHOOK_LOG_DAYS = env.int("WEBHOOK_LOG_DAYS", default=30)

REST_FRAMEWORK = {
    # Personal tokens only: no session (and so no CSRF) on the API.
    "DEFAULT_AUTHENTICATION_CLASSES": ["api_app.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["api_app.throttling.TokenRateThrottle"],
    # DRF's JSON parser with the nesting depth bounded (no RecursionError on a deep body).
    "DEFAULT_PARSER_CLASSES": ["api_app.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api_app.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "E-Modal Portal API",
    "DESCRIPTION": (
        "Queries on E-Modal (start, poll, cancel, results), the containers as last read, and "
        "signed webhooks (Standard Webhooks). Authenticate with `Authorization: Bearer "
        "<token>`; errors have one shape (`Error`)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # `<id:…>` path parts (emodal_portal.ids): whole numbers from 1 to 2**63 - 1.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807}
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge from the online validator (another site: refused by the CSP anyway).
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None, "deepLinking": True},
    "ENUM_NAME_OVERRIDES": {
        "EventTypeEnum": "outbox.vocabulary.EventType",
        "QueryStatusEnum": "queries_app.models.Query.Status",
        "ContainerChangeEnum": "history.models.HistoryEntry.Change",
        "DeliveryStatusEnum": "notifications.models.Delivery.Status",
    },
}

# --- E-mail (alerts; a webhook endpoint disabled) -----------------------------------------------
# Where alerts go out: smtp://user:password@host:587 (smtp+tls:// for STARTTLS, smtp+ssl:// for
# TLS), consolemail:// (printed; the default with DEBUG on, as under `make run`), dummymail://.
# Unset with DEBUG off: an SMTP server on localhost:25.
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
vars().update(_email)
# An SMTP server that does not answer fails the try after this many seconds (then retried).
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="E-Modal Portal <alerts@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The portal's address as people reach it: the links in alert e-mails.
PORTAL_URL = env.str("PORTAL_URL", default="http://127.0.0.1:8000")
# Who can fix an account whose updates stopped (new credentials, a captcha key, a refused field),
# as dispatchers read it on the board's banner and in alert e-mails.
PORTAL_STAFF_CONTACT = env.str("PORTAL_STAFF_CONTACT", default="") or "your portal administrator"
# An alert whose sending failed for a passing reason (server unreachable, 4xx) is tried again
# after this back-off (doubling, capped), at most ALERT_MAX_ATTEMPTS times in all.
ALERT_RETRY_BASE_SECONDS = env.float("ALERT_RETRY_BASE_SECONDS", default=60)
ALERT_RETRY_MAX_SECONDS = env.float("ALERT_RETRY_MAX_SECONDS", default=3600)
ALERT_MAX_ATTEMPTS = env.int("ALERT_MAX_ATTEMPTS", default=8)
if ALERT_MAX_ATTEMPTS < 1 or ALERT_RETRY_BASE_SECONDS <= 0:
    raise ImproperlyConfigured("ALERT_MAX_ATTEMPTS must be 1 or more, ALERT_RETRY_BASE_SECONDS >0.")

# --- Outbound limits, and the delivery cluster -------------------------------------------------
# Every exchange with another server ends by a deadline (connect, request, status, headers and
# body together, however slowly the peer sends them) and reads at most a capped answer, counted
# once decoded (emodal_portal/outbound.py). The upstream's deadlines are its calls' timeouts
# (sessions_app/upstream/transport.py); a webhook attempt's is WEBHOOK_TIMEOUT_SECONDS.
# The largest JSON answer read from the upstream (its biggest real ones, a bulk info of a few
# hundred containers, are a few hundred KB): a larger one fails the call for now.
EMODAL_MAX_JSON_BYTES = env.int("EMODAL_MAX_JSON_BYTES", default=5 * 1024 * 1024)
# A whole e-mail send (connecting, the SMTP conversation, the message) ends within this many
# seconds, whatever the mail server does; EMAIL_TIMEOUT still bounds each of its steps.
EMAIL_SEND_SECONDS = env.float("EMAIL_SEND_SECONDS", default=30)
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    EMAIL_BACKEND = "emodal_portal.mail.DeadlineEmailBackend"
# One "send test event" per endpoint within this many seconds (pages and API alike).
WEBHOOK_TEST_INTERVAL_SECONDS = env.int("WEBHOOK_TEST_INTERVAL_SECONDS", default=60)
# Deliveries waiting to be sent to one person's endpoints (all of them together); an event
# beyond it is recorded as not sent, with the reason, instead of queued (the event itself stays
# on the board and in the API). 0: no limit.
WEBHOOK_MAX_PENDING_PER_USER = env.int("WEBHOOK_MAX_PENDING_PER_USER", default=1000)
if (
    min(EMODAL_MAX_JSON_BYTES, EMAIL_SEND_SECONDS) <= 0
    or min(WEBHOOK_TEST_INTERVAL_SECONDS, WEBHOOK_MAX_PENDING_PER_USER) < 0
):
    raise ImproperlyConfigured(
        "EMODAL_MAX_JSON_BYTES and EMAIL_SEND_SECONDS must be more than 0, "
        "WEBHOOK_TEST_INTERVAL_SECONDS and WEBHOOK_MAX_PENDING_PER_USER 0 or more."
    )
# Webhook deliveries and alert e-mails run in a cluster of their own (its own queue), started
# with `Q_CLUSTER_NAME=deliveries manage.py qcluster` (`make run` and `make serve` start it):
# however slow the receivers and mail servers, query steps never wait behind them, and at
# most Q_DELIVERY_WORKERS of them are in flight per delivery cluster.
DELIVERY_CLUSTER = "deliveries"
Q_DELIVERY_WORKERS = env.int("Q_DELIVERY_WORKERS", default=2)
if Q_DELIVERY_WORKERS < 1:
    raise ImproperlyConfigured("Q_DELIVERY_WORKERS must be 1 or more.")
_delivery_timeout = int(max(WEBHOOK_TIMEOUT_SECONDS, EMAIL_SEND_SECONDS) * 2 + 60)
Q_CLUSTER["ALT_CLUSTERS"] = {
    DELIVERY_CLUSTER: {
        "workers": Q_DELIVERY_WORKERS,
        "timeout": _delivery_timeout,
        "retry": _delivery_timeout + 120,
        "queue_limit": Q_DELIVERY_WORKERS,
    }
}

# --- Auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Brute-force protection for every login (the admin's and /accounts/login/): django-axes
# counts failures per username and client address together, and locks that pair out for the
# cool-off time. Its backend comes first and needs the request: in tests, log in with
# `client.force_login(user)` or `client.login(request=HttpRequest(), username=..., ...)`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A second limit, per username over all addresses, bounds a guess spread over many addresses.
# Each address counts for at most AXES_FAILURE_LIMIT failures, so that no single address can
# reach it (it must be above that limit); 0 turns it off.
AXES_HANDLER = "emodal_portal.login_protection.PortalAxesHandler"
AXES_USERNAME_FAILURE_LIMIT = env.int("AXES_USERNAME_FAILURE_LIMIT", default=30)
if AXES_USERNAME_FAILURE_LIMIT and AXES_USERNAME_FAILURE_LIMIT <= AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured(
        "AXES_USERNAME_FAILURE_LIMIT must be 0 (off) or more than AXES_FAILURE_LIMIT."
    )


def client_address_settings(trusted_proxy_count: int) -> dict[str, Any]:
    """Where django-axes (through django-ipware) reads a client's address.

    With no proxy in front, the address is REMOTE_ADDR and an X-Forwarded-For header is
    ignored: a client can write anything in it. Behind N proxies, each appending the address
    it received from to X-Forwarded-For, the client is the Nth entry from the end of that
    header (the last proxy is REMOTE_ADDR); what a client wrote there itself sits further
    left and is never used. django-ipware counts only the proxies listed in the header,
    hence N - 1, and must not insist on an exact length (a client may send its own header).
    """
    if trusted_proxy_count < 0:
        raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 (no proxy) or more.")
    if not trusted_proxy_count:
        return {
            "AXES_IPWARE_META_PRECEDENCE_ORDER": ("REMOTE_ADDR",),
            "AXES_IPWARE_PROXY_COUNT": None,
        }
    return {
        "AXES_IPWARE_META_PRECEDENCE_ORDER": ("HTTP_X_FORWARDED_FOR",),
        "AXES_IPWARE_PROXY_COUNT": trusted_proxy_count - 1,
    }


# How many reverse proxies stand in front of the portal (whose X-Forwarded-For is trusted).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
_client_address = client_address_settings(TRUSTED_PROXY_COUNT)
AXES_IPWARE_META_PRECEDENCE_ORDER = _client_address["AXES_IPWARE_META_PRECEDENCE_ORDER"]
AXES_IPWARE_PROXY_COUNT = _client_address["AXES_IPWARE_PROXY_COUNT"]
IPWARE_STRICT = False
AXES_RESET_ON_SUCCESS = True
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins: this login is locked for "
    f"{AXES_COOLOFF_TIME.total_seconds() / 60:g} minutes. Please wait, then try again."
)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/containers/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="America/Los_Angeles")
try:
    ZoneInfo(TIME_ZONE)
except (ValueError, KeyError):  # KeyError: ZoneInfoNotFoundError
    raise ImproperlyConfigured(
        "TIME_ZONE is not a time zone name (e.g. America/Los_Angeles, UTC)."
    ) from None
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # `collectstatic` writes each file under a name holding its hash (and .gz/.br copies);
    # WhiteNoise serves those with a year's Cache-Control and `immutable`. With DEBUG on,
    # pages name the files as they are and WhiteNoise finds them where they lie.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security (production) -----------------------------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Load balancers probe /healthz, and Prometheus scrapes /metrics, over plain HTTP inside
    # the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Neither the pages nor Django's admin use an inline script or style, or anything from another
# site (tests/portal/test_http_surface.py opens every admin page to make sure).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}
# Request bodies: the largest legitimate form is the start form with two container lists
# (1 000 containers of 11 characters each are about 12 KB a list); anything much larger is
# refused with a 400 before it is parsed. Uploaded files are not counted here (there are none).
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
# Fields in one request: an admin changelist page (at most 100 rows) posts one per selected row.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

# --- Logging ------------------------------------------------------------------------------------
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
for _level in ("LOG_LEVEL", "DJANGO_LOG_LEVEL"):
    if env.str(_level, default="INFO").upper() not in LOG_LEVELS:
        raise ImproperlyConfigured(f"{_level} must be one of {', '.join(LOG_LEVELS)}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "sessions_app.redaction.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO").upper()},
    "loggers": {
        "django": {"level": env.str("DJANGO_LOG_LEVEL", default="INFO").upper()},
        "urllib3": {"level": "WARNING"},
    },
}
