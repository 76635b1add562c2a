"""Recovery: live queries nobody is advancing are set going again (or failed), queries
waiting for a browser are woken when one is freed, and the sessions app is told which accounts
have work waiting."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.claims import CLAIM

from ..events import record_end
from ..models import Query
from .claims import enqueue_step, requeue, wake_waiting_queries
from .recording import MAX_STEP_FAILURES, announce_end
from .scheduler import candidates


def accounts_with_live_queries(account_ids: list[int]) -> set[int]:
    """The accounts among these with a query still to run (a demand provider of
    sessions_app's capacity)."""
    return set(
        Query.objects.live().filter(account_id__in=account_ids).values_list("account_id", flat=True)
    )


def on_browser_freed(*, server: str, count: int, **kwargs: Any) -> None:
    wake_waiting_queries(server=server, count=count)


# -- recovery ------------------------------------------------------------------------------------


def sweep_queries(*, now: datetime | None = None) -> dict[str, int]:
    """Find live queries that nobody is advancing and set them going again (or fail them).

    - a claim past its expiry: the worker died mid-step (counts as a failure of that step);
    - a retry whose back-off has passed;
    - no claim and no task seen for too long: the broker lost the task (e.g. Redis restart).
    """
    now = now or timezone.now()
    counts = {"dead_workers": 0, "retries": 0, "lost_tasks": 0, "failed": 0, "woken": 0}
    dead = Query.objects.live().exclude(claim_token="").filter(claim_expires_at__lt=now)
    for query in dead:
        failures = query.step_failures + 1
        if failures >= MAX_STEP_FAILURES:
            with transaction.atomic():
                ended = CLAIM.give_back(
                    Query.objects.filter(pk=query.pk),
                    token=query.claim_token,
                    status=Query.Status.FAILED,
                    finished_at=now,
                    error=f"The worker running step “{query.step}” stopped {failures} times; "
                    "giving up.",
                )
                if ended:
                    record_end(query.pk)
            if ended:
                announce_end(query.pk)
            counts["failed"] += ended
            continue
        with transaction.atomic():
            released = CLAIM.give_back(
                Query.objects.filter(pk=query.pk),
                token=query.claim_token,
                step_failures=failures,
                enqueued_at=now,
            )
            if released:
                enqueue_step(query_id=query.pk)
        counts["dead_workers"] += released
    lost_before = now - timedelta(seconds=settings.QUERY_LOST_AFTER_SECONDS)
    idle = Query.objects.live().filter(claim_token="")
    for query in idle.filter(retry_at__lte=now):
        counts["retries"] += requeue(query.pk, now, Q(retry_at__lte=now))
    for query in idle.filter(retry_at__isnull=True, enqueued_at__lt=lost_before):
        counts["lost_tasks"] += requeue(query.pk, now, Q(enqueued_at__lt=lost_before))
    # Runnable work with no runner at all (e.g. a wake-up lost with the broker): one task
    # starts a runner, which takes the rest in turn.
    running = Query.objects.live().exclude(claim_token="").filter(claim_expires_at__gte=now)
    if not running.exists() and candidates("", now):
        enqueue_step(query_id=None)
        counts["woken"] = 1
    return counts
