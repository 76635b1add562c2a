"""Recording a step's outcome: its rows and the query's next step in one short transaction,
only while the claim holds; a failure for a passing reason as a try, with back-off, ending the
query after MAX_STEP_FAILURES; the end of a query, recorded as its event (the outbox) in the
transaction that ends it, then told to `query_finished` listeners (the board's update)."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal.claims import CLAIM
from sessions_app.services import drop_broken_connections

from ..events import record_end
from ..models import Query
from ..registry import get_kind
from ..signals import query_finished
from .claims import claim_seconds, enqueue_step, wake_waiting_queries
from .scheduler import candidates, should_switch
from .steps import DONE, Outcome

logger = logging.getLogger(__name__)

# A step that fails for a passing reason is tried this many times in all.
MAX_STEP_FAILURES = 3


def commit(
    query: Query,
    token: str,
    outcome: Outcome,
    *,
    chain: bool = False,
    giving_up: bool = False,
) -> tuple[str, Query | None]:
    """Write the step's rows and move the query on, only while the claim holds. With `chain`,
    the runner keeps the query (returned) for its next step, unless another runnable query
    should come first. Rows that cannot be written count as a failed try of the step, like an
    upstream failure (with back-off, and an end after the tries): never an endless loop."""
    try:
        return write_outcome(query, token, outcome, chain=chain)
    except Exception as exc:
        if drop_broken_connections():
            raise  # the database went away: the runner gives the query back (see run_queries)
        logger.exception(
            "Query %s: the results of step %s could not be stored", query.pk, query.step
        )
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        reason = (
            f"The results of step “{query.step}” could not be stored "
            f"({type(exc).__name__}{': ' if first_line else ''}{first_line})."
        )
        if giving_up:
            finish(query, token, Query.Status.FAILED, reason)
            return "failed", None
        return failed_for_now(query, token, query.step, reason), None


def write_outcome(
    query: Query, token: str, outcome: Outcome, *, chain: bool
) -> tuple[str, Query | None]:
    now = timezone.now()
    ran = query.step
    kept = {name: getattr(query, name) for name in OUTCOME_FIELDS}
    changes: dict[str, Any] = {"step": outcome.next_step, "step_failures": 0, "error": ""}
    if outcome.note:
        changes["notes"] = "\n".join(filter(None, [query.notes, outcome.note]))[:4000]
    if outcome.progress_total is not None:
        changes["progress_total"] = outcome.progress_total
    if outcome.progress_done is not None:
        changes["progress_done"] = outcome.progress_done
    if outcome.state is not None:
        changes["state"] = outcome.state
    for name, value in changes.items():
        setattr(query, name, value)
    query.work_left = changes["work_left"] = get_kind(query.kind).estimate(query)
    finished = outcome.next_step == DONE
    rival = None
    if finished:
        changes.update(status=Query.Status.SUCCEEDED, finished_at=now)
    elif chain and query.work_left > 0:  # (see `should_switch`)
        rivals = candidates(token, now, exclude=query.pk)
        rival = rivals[0] if rivals else None
        if rival is not None and not should_switch(query, rival):
            rival = None
    keep = chain and not finished and rival is None
    if keep:
        changes.update(
            claim_expires_at=now + timedelta(seconds=claim_seconds()),
            attempts=F("attempts") + 1,
        )
    else:
        changes.update(**CLAIM.released(), enqueued_at=now)
    try:
        with transaction.atomic():
            if Query.objects.filter(pk=query.pk, claim_token=token).update(**changes) != 1:
                # Our claim expired and another worker took the query: its result stands.
                transaction.set_rollback(True)
                return "claim lost", None
            if outcome.write is not None:
                outcome.write()
            if finished:
                record_end(query.pk)
            if keep:
                query.cancel_requested = (
                    Query.objects.filter(pk=query.pk)
                    .values_list("cancel_requested", flat=True)
                    .get()
                )
            elif not finished and not chain:
                enqueue_step(query_id=query.pk)
    except Exception:
        for name, value in kept.items():  # nothing was written: the query is as it was
            setattr(query, name, value)
        raise
    if finished:
        query_ended(query)
        result = "succeeded"
    else:
        result = f"step {ran} done"
    return result, (query if keep else None)


# What `write_outcome` changes on the query object before it knows the write went through.
OUTCOME_FIELDS = (
    "step",
    "step_failures",
    "error",
    "notes",
    "progress_total",
    "progress_done",
    "state",
    "work_left",
)


def wait(query: Query, token: str, reason: str) -> str:
    """The step was not tried (the upstream's breaker is open, or the captcha budget is
    spent): come back later without counting it against the step's tries."""
    retry_at = timezone.now() + timedelta(seconds=settings.QUERY_RETRY_BASE_SECONDS)
    CLAIM.give_back(
        Query.objects.filter(pk=query.pk),
        token=token,
        retry_at=retry_at,
        waiting_for=reason[:255],
    )
    return "waiting"


def failed_for_now(query: Query, token: str, step: str, reason: str) -> str:
    failures = query.step_failures + 1
    if failures < MAX_STEP_FAILURES:
        delay = min(settings.QUERY_RETRY_BASE_SECONDS * 2 ** (failures - 1), 600)
        retry_at = timezone.now() + timedelta(seconds=delay * random.uniform(0.8, 1.2))  # noqa: S311
        CLAIM.give_back(
            Query.objects.filter(pk=query.pk),
            token=token,
            step_failures=failures,
            retry_at=retry_at,
            error=f"Retrying after: {reason}"[:2000],
        )
        return "will retry"
    give_up = get_kind(query.kind).step(step).give_up
    if give_up is not None:
        outcome = give_up(query, f"Gave up after {failures} tries: {reason}")
        return commit(query, token, outcome, giving_up=True)[0]
    finish(query, token, Query.Status.FAILED, f"{reason} (gave up after {failures} tries)")
    return "failed"


def finish(query: Query, token: str, status: str, error: str) -> None:
    with transaction.atomic():
        ended = CLAIM.give_back(
            Query.objects.filter(pk=query.pk),
            token=token,
            status=status,
            error=error[:2000],
            finished_at=timezone.now(),
            retry_at=None,
        )
        if ended:
            record_end(query.pk)
    if ended:
        query_ended(query)


def query_ended(query: Query) -> None:
    """The account may have no work left: its browser can now go to a query waiting for one.
    And whoever listens hears that the query ended."""
    server = query.account.upstream_url
    if server:
        wake_waiting_queries(server=server)
    announce_end(query.pk)


def announce_end(query_id: int) -> None:
    """Send `query_finished` for the query, once its end is committed."""

    def send() -> None:
        query = Query.objects.select_related("account__user").get(pk=query_id)
        for receiver, error in query_finished.send_robust(sender=Query, query=query):
            if isinstance(error, Exception):
                logger.error("Query %s: %r failed on its end: %r", query_id, receiver, error)

    transaction.on_commit(send)
