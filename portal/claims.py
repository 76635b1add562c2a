"""Claiming a row for one worker: a conditional UPDATE that exactly one caller wins — the same
on SQLite and PostgreSQL, across threads, processes and hosts — with an expiry, so that a dead
holder's claim lapses on its own. Only the holder (its token) renews the claim or gives it
back. The engine claims queries with it, the dispatcher events and deliveries, the session
manager an account's lease (healthchecks' `sendalerts`: `q.update(...)` and a row count of 1
means "mine")."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone


def new_token() -> str:
    """A holder's token: random, never guessed, never shared between two claims."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Claim:
    """The two columns a claimable model keeps: the holder's token ("" when free) and when the
    claim lapses. `take`, `renew` and `give_back` each run one UPDATE and say whether it
    changed the one row asked for."""

    token_field: str = "claim_token"  # noqa: S105 - a column name
    expires_field: str = "claim_expires_at"

    def free(self, now: datetime) -> Q:
        """Rows nobody holds, or whose holder's claim has lapsed."""
        return Q(**{self.token_field: ""}) | Q(**{f"{self.expires_field}__lt": now})

    def held_by(self, token: str) -> Q:
        return Q(**{self.token_field: token})

    def take(
        self,
        rows: QuerySet[Any],
        *,
        token: str,
        seconds: float,
        now: datetime | None = None,
        **changes: Any,
    ) -> bool:
        """Claim the one row of `rows` (already filtered to it and to whatever else must hold)
        if it is free, writing `changes` with the claim. True if this caller won it."""
        return self.take_all(rows, token=token, seconds=seconds, now=now, **changes) == 1

    def take_all(
        self,
        rows: QuerySet[Any],
        *,
        token: str,
        seconds: float,
        now: datetime | None = None,
        **changes: Any,
    ) -> int:
        """Claim every free row of `rows` in one UPDATE; how many this caller won (rows another
        holder took meanwhile are left out, never shared)."""
        now = now or timezone.now()
        return rows.filter(self.free(now)).update(
            **{self.token_field: token, self.expires_field: now + timedelta(seconds=seconds)},
            **changes,
        )

    def renew(
        self,
        rows: QuerySet[Any],
        *,
        token: str,
        seconds: float,
        now: datetime | None = None,
        **changes: Any,
    ) -> bool:
        """Push the holder's claim `seconds` on from now. False if it is no longer theirs."""
        now = now or timezone.now()
        kept = rows.filter(self.held_by(token)).update(
            **{self.expires_field: now + timedelta(seconds=seconds)}, **changes
        )
        return kept == 1

    def give_back(self, rows: QuerySet[Any], *, token: str, **changes: Any) -> bool:
        """Free the row (writing `changes` with it) if the holder still has it."""
        released = rows.filter(self.held_by(token)).update(
            **{self.token_field: "", self.expires_field: None}, **changes
        )
        return released == 1

    def released(self) -> dict[str, Any]:
        """The column values of a free row (for an UPDATE that does more than give back)."""
        return {self.token_field: "", self.expires_field: None}


CLAIM = Claim()
