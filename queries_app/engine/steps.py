"""The contract between the engine and the kinds' steps: a step gets a `StepContext`, makes at
most one upstream operation through it, and returns an `Outcome` — the rows to write and where
the query goes next. Writing happens later, in the engine's short transaction, only if the step
still holds its claim on the query; so a step that is run again writes the same rows (it
deletes its own earlier rows first) and never duplicates them."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sessions_app.services import SessionManager
from sessions_app.upstream import EModalClient

from ..models import Query

DONE = ""  # the step after the last one


class QueryFailed(Exception):
    """The query cannot succeed; the text is the readable reason shown to users."""


@dataclass
class Outcome:
    next_step: str
    write: Callable[[], None] | None = None
    progress_done: int | None = None
    progress_total: int | None = None
    state: dict[str, Any] | None = None
    # Something the query's page should say though the query goes on (kept on `notes`).
    note: str = ""


@dataclass
class StepContext:
    query: Query
    manager: SessionManager

    def call(self, operation: Callable[[EModalClient, str], Any]) -> Any:
        """Run one upstream operation with a working session of the query's account."""
        return self.manager.run(self.query.account, operation)

    def download(self, file_url: str) -> bytes:
        buffer = io.BytesIO()
        self.manager.client_for(self.query.account).download_file(file_url, buffer)
        return buffer.getvalue()
