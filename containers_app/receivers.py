"""What the board hears from the query engine and the session manager."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from queries_app.models import Query

from .board import BOARD_KINDS


def on_query_finished(query: Query, **kwargs: Any) -> None:
    """Sent after the commit that ended the query: enqueue the board's update (a task of its
    own; the query's worker only pays for the enqueue)."""
    if query.status in (Query.Status.FAILED, Query.Status.CANCELLED) or (
        query.status == Query.Status.SUCCEEDED and query.kind in BOARD_KINDS
    ):
        async_task("containers_app.tasks.update_board", query.pk, task_name=f"board-{query.pk}")


def on_logins_stopped(account_id: int, **kwargs: Any) -> None:
    """An account's logins stopped until a person acts, whichever login found it (a query's, a
    refresh staff forced, a warm-up): record it for the owner's alerts and webhooks, by a task
    (the login's process only pays for the enqueue), once its row says so."""
    stopped_at = timezone.now()
    transaction.on_commit(
        lambda: async_task(
            "containers_app.tasks.record_logins_stopped",
            account_id,
            stopped_at,
            task_name=f"logins-stopped-{account_id}",
        )
    )
