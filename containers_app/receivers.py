"""What the board hears from the query engine."""

from __future__ import annotations

from typing import Any

from django_q.tasks import async_task

from queries_app.models import Query
from queries_app.registry import board_feed


def on_query_finished(query: Query, **kwargs: Any) -> None:
    """Sent after the commit that ended the query: enqueue the board's update of a succeeded
    run (a task of its own; the query's worker only pays for the enqueue)."""
    if query.status == Query.Status.SUCCEEDED and board_feed(query.kind):
        async_task("containers_app.tasks.update_board", query.pk, task_name=f"board-{query.pk}")
