"""Claims: a runner holds a query for a step (`portal.claims`: one runner at a time; a dead
runner's claim expires, a live one's is renewed while its step runs), gives it back, or hands
it to the broker between steps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task

from portal.claims import CLAIM
from sessions_app.services import drop_broken_connections

from ..models import Query
from .steps import DONE

logger = logging.getLogger(__name__)


def enqueue_step(*, query_id: int | None) -> None:
    """Wake a worker (after commit) to run steps, starting with this query's if it is free."""
    name = f"query-{query_id}" if query_id is not None else "queries"
    transaction.on_commit(
        lambda: async_task("queries_app.tasks.run_query_step", query_id, task_name=name)
    )


def claim_seconds() -> float:
    """How long a claim lasts unless renewed (`claim_kept` renews it while a step runs)."""
    return settings.QUERY_CLAIM_SECONDS


@contextmanager
def claim_kept(query_id: int, token: str) -> Iterator[None]:
    """Renew the claim on the query every quarter of its length while the block (a step) runs.

    A step's upstream call can take minutes (a full containers scroll, a login), longer than
    a claim should outlive a dead worker: the claim stays short, so that after a SIGKILL of
    every cluster the sweep takes the query back within minutes, and a thread renews it while
    its worker is alive. The renewals stop with the block, when the claim is no longer the
    caller's (given back, or expired and taken), or with the process."""
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(query_id, token, stop), name=f"claim-{query_id}", daemon=True
    )
    renewer.start()
    try:
        yield
    finally:
        stop.set()


def _renew(query_id: int, token: str, stop: threading.Event) -> None:
    seconds = claim_seconds()
    try:
        while not stop.wait(seconds / 4):
            try:
                kept = CLAIM.renew(Query.objects.filter(pk=query_id), token=token, seconds=seconds)
            except DatabaseError as exc:
                # The next renewal tries again: three more before the claim lapses.
                logger.warning("Query %s: claim not renewed this time: %s", query_id, exc)
                drop_broken_connections()
                continue
            if not kept:
                return
    finally:
        connections.close_all()  # this thread's own connection


def _account_busy(token: str, now: datetime) -> Exists:
    """Another runner holds a live claim on a query of the same account."""
    return Exists(
        Query.objects.filter(account_id=OuterRef("account_id"), claim_expires_at__gte=now)
        .exclude(claim_token="")
        .exclude(claim_token=token)
    )


def claim(query_id: int, token: str, now: datetime, *, account_checked: bool = False) -> bool:
    """Claim the query for a step. Unless the caller has just seen its account free (the
    choice of the next step does), no other runner may hold a query of the same account: a
    scheduling rule — the account's lease is what keeps calls on one browser one at a time."""
    not_waiting = Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    claimable = Query.objects.filter(
        not_waiting, pk=query_id, status__in=Query.LIVE_STATUSES
    ).exclude(step=DONE)
    if not account_checked:
        claimable = claimable.exclude(_account_busy(token, now))
    return CLAIM.take(
        claimable,
        token=token,
        seconds=claim_seconds(),
        now=now,
        retry_at=None,
        waiting_for="",
        status=Query.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=Coalesce(F("started_at"), Value(now)),
    )


def load(query_id: int) -> Query:
    return Query.objects.select_related("account__user").get(pk=query_id)


def give_back(query_id: int, token: str) -> None:
    try:
        CLAIM.give_back(Query.objects.filter(pk=query_id), token=token)
    except Exception:
        logger.exception("Query %s: could not give back its claim; it expires", query_id)


def release(query: Query, token: str) -> None:
    """Give the query back to the broker between two steps."""
    now = timezone.now()
    with transaction.atomic():
        if CLAIM.give_back(Query.objects.filter(pk=query.pk), token=token, enqueued_at=now):
            enqueue_step(query_id=query.pk)


def wake_waiting_queries(*, server: str, count: int = 1) -> int:
    """A browser on `server` was given back: enqueue the queries that wait longest for one
    there now, instead of at their retry time."""
    now = timezone.now()
    waiting = (
        Query.objects.live()
        .filter(
            claim_token="",
            retry_at__isnull=False,
            waiting_for__gt="",
            account__upstream_url=server,
        )
        .order_by("retry_at", "pk")
        .values_list("pk", flat=True)[:count]
    )
    return sum(requeue(pk, now, Q(retry_at__isnull=False)) for pk in waiting)


def requeue(query_id: int, now: datetime, still: Q) -> int:
    with transaction.atomic():
        requeued = Query.objects.filter(
            still, pk=query_id, claim_token="", status__in=Query.LIVE_STATUSES
        ).update(retry_at=None, enqueued_at=now)
        if requeued:
            enqueue_step(query_id=query_id)
    return requeued
