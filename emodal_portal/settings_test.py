"""Test settings: the main settings plus what only tests want."""

import os

os.environ.setdefault("DEBUG", "true")

from .settings import *  # noqa: E402,F403
from .settings import BASE_DIR, CACHES, DATABASES  # noqa: E402

# A file, not an in-memory database, so that tests can run worker processes against it;
# one per test run, so that two runs on one machine keep out of each other's way.
if DATABASES["default"]["ENGINE"].endswith(".sqlite3"):
    DATABASES["default"]["TEST"] = {
        "NAME": str(BASE_DIR / "var" / f"test_db-{os.getpid()}.sqlite3")
    }
# The API's counts beside the test database, where the web processes a test starts (on that
# database) keep theirs too.
if CACHES["api"]["BACKEND"] == "api_app.counters.SQLiteCounterCache":
    CACHES["api"]["LOCATION"] = str(BASE_DIR / "var" / f"test_db-{os.getpid()}-counters.sqlite3")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMODAL_POLL_SECONDS = 0.02
EMODAL_WAIT_SECONDS = 60
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Login retries back off for milliseconds, not seconds.
EMODAL_RETRY_BASE_SECONDS = 0.02
EMODAL_RETRY_MAX_SECONDS = 0.1
# Every call reads the shared breaker (tests change its row directly); the trust a worker
# places in a clean breaker has a test of its own.
EMODAL_BREAKER_CACHE_SECONDS = 0
# Login brute-force protection stays on in tests (log in with force_login, or pass
# `request=` to client.login).
AXES_ENABLED = True
# Each test sees the upstream as it is now (the caching of /healthz has a test of its own).
HEALTHZ_CACHE_SECONDS = 0
# WhiteNoise as under runserver: files found where they lie (pytest-django turns DEBUG off,
# and there is no collectstatic output in tests).
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
