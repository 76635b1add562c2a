"""Which step runs next.

A worker runs steps back to back (`runner.run_queries`): after each step it takes whichever
runnable step should come next, often the same query's (its account's browser is warm and no
hand-off through the broker is needed). "Runnable": live, not claimed, not waiting for a
retry, its account not busy with another runner (one browser, one call at a time), and a
browser to be had for it. "Next": queries a person started come before batches; among those the
one with the least work left (a short look-up is not stuck behind availability runs); among
batch queries the one with the most work left, so that a batch's long runs start early and its
accounts finish together. The broker's tasks only wake workers up; the Query rows are the
queue. The work left is each kind's own estimate (`registry.QueryKind.estimate`)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from sessions_app.models import Account
from sessions_app.services import SessionManager

from ..models import Query
from .claims import claim, load
from .steps import DONE

SWITCH_MARGIN = 70  # upstream seconds: about two appointment checks


def order_key(query: Query | Live) -> tuple[int, int]:
    """Smaller runs first (see above)."""
    if query.batch:
        return (1, -query.work_left)
    return (0, query.work_left)


class Live(NamedTuple):
    """What choosing the next step needs to know of a live query."""

    pk: int
    account_id: int
    batch: str
    work_left: int
    created_at: datetime
    step: str
    claim_token: str
    claim_expires_at: datetime | None
    retry_at: datetime | None
    server: str
    slot: int | None


def candidates(
    token: str, now: datetime, *, exclude: int | None = None, prefer: int | None = None
) -> list[Live]:
    """Runnable queries in the order they should run (see above), a few at most; `prefer`
    (the query a task was enqueued for) first if it is runnable. One read of the live
    queries (there are as many as accounts with work, not more), sorted here."""
    live = [
        Live(*row)
        for row in Query.objects.live().values_list(
            "pk",
            "account_id",
            "batch",
            "work_left",
            "created_at",
            "step",
            "claim_token",
            "claim_expires_at",
            "retry_at",
            "account__upstream_url",
            "account__slot",
        )
    ]
    others = {
        q.pk
        for q in live
        if q.claim_token
        and q.claim_token != token
        and q.claim_expires_at is not None
        and q.claim_expires_at >= now
    }
    busy = {q.account_id for q in live if q.pk in others}
    runnable = sorted(
        (
            q
            for q in live
            if not q.claim_token
            and q.step != DONE
            and (q.retry_at is None or q.retry_at <= now)
            and q.account_id not in busy
            and q.pk != exclude
        ),
        key=lambda q: (q.pk != prefer, *order_key(q), q.created_at, q.pk),
    )
    # Browsers free for a login on each server: the session limit less those held by accounts
    # with work (never taken from them) and those other runners are logging in to take now.
    limit = settings.EMODAL_MAX_SESSIONS
    taken: dict[str, set[int]] = {}
    for q in live:
        if q.slot is not None or q.pk in others:
            taken.setdefault(q.server, set()).add(q.account_id)

    def browser_for(q: Live) -> bool:
        if q.slot is not None:
            return True
        servers = [q.server] if q.server in settings.EMODAL_API_URLS else settings.EMODAL_API_URLS
        for server in servers:
            if len(taken.get(server, ())) < limit:
                taken.setdefault(server, set()).add(q.account_id)
                return True
        return False

    found = []
    for q in runnable:
        if browser_for(q):
            found.append(q)
            if len(found) == 3:
                break
    return found


def claim_next(
    token: str, manager: SessionManager, *, exclude: int | None = None, prefer: int | None = None
) -> Query | None:
    for _ in range(3):  # another runner may take a candidate first
        now = timezone.now()
        found = candidates(token, now, exclude=exclude, prefer=prefer)
        if not found:
            return None
        for candidate in found:
            if candidate.slot is None and not manager.reserve_browser(
                Account.objects.get(pk=candidate.account_id)
            ):
                # Another runner took the last browser since the read: this account waits.
                continue
            if claim(candidate.pk, token, now, account_checked=True):
                return load(candidate.pk)
    return None


def wait_for_a_retry(ends: float) -> bool:
    """Nothing runnable now: if a step's retry falls due within QUERY_RETRY_WAIT_SECONDS
    (and this runner's budget), wait for it here rather than leave it to the sweep's next
    round, up to a minute away. True once it is due."""
    horizon = min(settings.QUERY_RETRY_WAIT_SECONDS, ends - time.monotonic())
    if horizon <= 0:
        return False
    now = timezone.now()
    due = (
        Query.objects.live()
        .filter(claim_token="", retry_at__gt=now)
        .exclude(step=DONE)
        .aggregate(first=Min("retry_at"))["first"]
    )
    if due is None or (due - now).total_seconds() > horizon:
        return False
    time.sleep((due - now).total_seconds())
    return True


def should_switch(current: Query, rival: Live) -> bool:
    if current.work_left == 0:
        # What is left needs no upstream call (e.g. a step that only stores): finish
        # it, so the account's browser is free for another.
        return False
    (current_class, current_rank), (rival_class, rival_rank) = (
        order_key(current),
        order_key(rival),
    )
    if rival_class != current_class:
        return rival_class < current_class
    return rival_rank + SWITCH_MARGIN < current_rank
