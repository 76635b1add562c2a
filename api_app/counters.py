"""A Django cache in a SQLite file of its own, with atomic `add` and `incr`: where the API
counts its requests (and notes when a token was last written as used) when there is no Redis.

Counting in the portal's own database meant a write per API request: with SQLite, a read
waited for the database's write lock (30 s, then a 500) whenever another connection held it.
Here each operation is one statement on another file, whose write lock is held for
microseconds. Django's own file and database caches would not do: their `add` and `incr` are a
read then a write, so two processes can both see 9 and both write 10. `INSERT … ON CONFLICT`
and `UPDATE … RETURNING` are single statements: exact whichever web process runs them (the
processes of one host; several web hosts share counts through Redis).
"""

from __future__ import annotations

import os
import pickle
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

FOREVER = float("inf")
# One add in this many also deletes the expired entries (counters of past windows).
CULL_EVERY = 200


class SQLiteCounterCache(BaseCache):
    """LOCATION is the file (made on first use). Integers are stored as SQL integers, so that
    `incr` adds in SQL; anything else is pickled, as Django's caches do."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.path = location
        self._local = threading.local()

    # -- the connection: one per thread and process ----------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")  # counts, not records: a power cut may lose some
            db.execute(
                "CREATE TABLE IF NOT EXISTS entry "
                "(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL)"
            )
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def close(self, **kwargs: Any) -> None:
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
        self._local.db = None

    # -- values ----------------------------------------------------------------------------------

    @staticmethod
    def _store(value: Any) -> Any:
        return value if type(value) is int else sqlite3.Binary(pickle.dumps(value))

    @staticmethod
    def _load(value: Any) -> Any:
        return value if type(value) is int else pickle.loads(value)  # noqa: S301 - our own values

    def _expires(self, timeout: Any) -> float:
        expires = self.get_backend_timeout(timeout)
        return FOREVER if expires is None else float(expires)

    # -- the cache API ---------------------------------------------------------------------------

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        now = time.time()
        db = self._db()
        if random.randrange(CULL_EVERY) == 0:  # noqa: S311 - not a secret
            db.execute("DELETE FROM entry WHERE expires <= ?", [now])
        cursor = db.execute(
            "INSERT INTO entry (key, value, expires) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires "
            "WHERE entry.expires <= ?",
            [key, self._store(value), self._expires(timeout), now],
        )
        return cursor.rowcount == 1

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        row = (
            self._db()
            .execute("SELECT value FROM entry WHERE key = ? AND expires > ?", [key, time.time()])
            .fetchone()
        )
        return default if row is None else self._load(row[0])

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        key = self.make_and_validate_key(key, version=version)
        self._db().execute(
            "INSERT OR REPLACE INTO entry (key, value, expires) VALUES (?, ?, ?)",
            [key, self._store(value), self._expires(timeout)],
        )

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        cursor = self._db().execute(
            "UPDATE entry SET expires = ? WHERE key = ? AND expires > ?",
            [self._expires(timeout), key, time.time()],
        )
        return cursor.rowcount == 1

    def delete(self, key: str, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._db().execute("DELETE FROM entry WHERE key = ?", [key]).rowcount == 1

    def has_key(self, key: str, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        row = (
            self._db()
            .execute("SELECT 1 FROM entry WHERE key = ? AND expires > ?", [key, time.time()])
            .fetchone()
        )
        return row is not None

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        key = self.make_and_validate_key(key, version=version)
        # fetchall: the statement runs to its end, so its write is committed now.
        rows = (
            self._db()
            .execute(
                "UPDATE entry SET value = value + ? "
                "WHERE key = ? AND expires > ? AND typeof(value) = 'integer' RETURNING value",
                [delta, key, time.time()],
            )
            .fetchall()
        )
        if not rows:
            raise ValueError(f"Key '{key}' not found, or not a number.")
        return int(rows[0][0])

    def clear(self) -> None:
        self._db().execute("DELETE FROM entry")
