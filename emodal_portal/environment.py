"""The environment as the settings and the start-up scripts read it (django-environ, with
two rules of the portal's own).

1. A variable set to nothing (`VAR=`, as `.env.example` lists every variable without a
   default) is not set: its default applies, and `.env` may fill it in. django-environ alone
   reads it as the empty string, which is not a URL, a number or a list of servers.
2. A value that cannot be read is an `ImproperlyConfigured` naming the variable, one line,
   never quoting the value (it may hold a password). Yes-or-no values are strict: a typo in
   `DEBUG` is an error, not "off".

Everything here runs before Django is set up: it imports nothing of the portal.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

NOTSET = environ.Env.NOTSET
TRUE = frozenset({"true", "yes", "on", "1"})
FALSE = frozenset({"false", "no", "off", "0"})
DATABASE_ENGINES = {"django.db.backends.sqlite3", "django.db.backends.postgresql"}
EMAIL_SCHEMES = "smtp://, smtp+tls://, smtp+ssl://, consolemail:// or dummymail://"


class SetVariables(MutableMapping[str, str]):
    """`os.environ` without the variables set to nothing (or to blanks). Writes go to
    `os.environ`, so that `.env` reaches the processes a script starts (and libraries that
    read `os.environ` themselves) — but for empty ones, which set nothing."""

    def __getitem__(self, name: str) -> str:
        value = os.environ[name]
        if not value.strip():
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        if value.strip():
            os.environ[name] = value

    def __delitem__(self, name: str) -> None:
        del os.environ[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name, value in list(os.environ.items()) if value.strip())

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _describe(cast: Any) -> str:
    if isinstance(cast, list) and cast and cast[0] is int:
        return "a comma-separated list of whole numbers"
    if isinstance(cast, list) and cast and cast[0] is float:
        return "a comma-separated list of numbers"
    return "a value the portal can read"


class PortalEnv(environ.Env):
    # read_env() fills in what is not set, through this mapping: an empty variable in the
    # environment is filled in from `.env` too.
    ENVIRON = SetVariables()

    def get_value(
        self, var: str, cast: Any = None, default: Any = NOTSET, parse_default: bool = False
    ) -> Any:
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(f"{var} must be {_describe(cast)}.") from None

    def _typed(self, var: str, default: Any, convert: Callable[[str], Any], what: str) -> Any:
        raw = self.get_value(var, cast=str, default=default)
        if not isinstance(raw, str):
            return raw  # the default
        try:
            return convert(raw.strip())
        except ValueError:
            raise ImproperlyConfigured(f"{var} must be {what}.") from None

    def bool(self, var: str, default: Any = NOTSET) -> Any:
        def convert(text: str) -> bool:
            if text.lower() in TRUE:
                return True
            if text.lower() in FALSE:
                return False
            raise ValueError(text)

        return self._typed(var, default, convert, "true or false")

    def int(self, var: str, default: Any = NOTSET) -> Any:
        return self._typed(var, default, int, "a whole number")

    def float(self, var: str, default: Any = NOTSET) -> Any:
        return self._typed(var, default, float, "a number")

    def db_url(self, var: str = "DATABASE_URL", default: Any = NOTSET, engine: Any = None) -> Any:
        url = self.get_value(var, default=default)
        with warnings.catch_warnings():
            # django-environ warns about an unknown scheme with the whole parsed URL, password
            # included.
            warnings.simplefilter("ignore")
            try:
                config = self.db_url_config(url, engine=engine)
            except Exception:
                config = {}
        if config.get("ENGINE") not in DATABASE_ENGINES:
            raise ImproperlyConfigured(
                f"{var} is not a database URL the portal can use: sqlite:////path/to/db.sqlite3 "
                "or postgres://user:password@host:5432/name."
            )
        if not config.get("NAME"):
            raise ImproperlyConfigured(f"{var} names no database.")
        return config

    db = db_url

    def email_url(self, var: str = "EMAIL_URL", default: Any = NOTSET, backend: Any = None) -> Any:
        url = self.get_value(var, default=default)
        try:
            return self.email_url_config(url, backend=backend)
        except (ImproperlyConfigured, ValueError):
            raise ImproperlyConfigured(
                f"{var} is not a mail server URL: use {EMAIL_SCHEMES} (see .env.example)."
            ) from None

    email = email_url


def portal_env(root: Path) -> PortalEnv:
    """The environment with `root/.env` read in (what is already set wins)."""
    env = PortalEnv()
    env.read_env(root / ".env", overwrite=False)
    return env


def http_urls(var: str, urls: list[str]) -> list[str]:
    """Each an http:// or https:// address with a host, without its trailing slash."""
    cleaned = []
    for number, url in enumerate(urls, start=1):
        parts = urlsplit(url.strip())
        which = f" (entry {number} of {len(urls)})" if len(urls) > 1 else ""
        try:
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            parts = parts._replace(netloc="")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImproperlyConfigured(
                f"{var}{which} is not an http:// or https:// address with a host "
                "(e.g. http://automation:5010)."
            )
        cleaned.append(url.strip().rstrip("/"))
    return cleaned
