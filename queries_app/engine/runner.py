"""Running steps: a worker claims a runnable step, runs it with no transaction open, records
its outcome (`recording`), and goes on with the next runnable step until its time is up."""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter

from django.conf import settings
from django.utils import timezone

from sessions_app.services import SessionError, SessionManager, drop_broken_connections
from sessions_app.upstream import UpstreamError

from ..models import Query
from ..registry import get_kind
from ..signals import step_finished, step_started
from .claims import claim, claim_kept, enqueue_step, give_back, load, release
from .recording import commit, failed_for_now, finish, wait
from .scheduler import candidates, claim_next, wait_for_a_retry
from .steps import QueryFailed, StepContext

logger = logging.getLogger(__name__)


def run_queries(
    *,
    first: int | None = None,
    manager: SessionManager | None = None,
    budget_seconds: float | None = None,
) -> str:
    """Run steps on this worker back to back: `first`'s query if it can run now, then the
    next runnable step each time (see above), until none is left or the budget is spent;
    then hand the rest to the broker. Returns a summary (for the task's result)."""
    manager = manager or SessionManager()
    budget = settings.QUERY_CHAIN_SECONDS if budget_seconds is None else budget_seconds
    ends = time.monotonic() + budget
    token = secrets.token_hex(16)
    query = None
    ran: Counter[int] = Counter()  # steps run, by query
    while True:
        if query is None:
            try:
                query = claim_next(token, manager, prefer=first)
            except Exception:
                # Not a step's failure (those are recorded on their query): e.g. the
                # database went away. Another task, or the sweep, carries on.
                logger.exception("Choosing the next query step failed")
                enqueue_later()
                break
            first = None
            if query is None:
                if wait_for_a_retry(ends):
                    continue
                break
        ran[query.pk] += 1
        more = time.monotonic() < ends
        last = query.pk
        try:
            _, query = run_claimed(query, token, manager, chain=more)
        except Exception:
            # The step's own failures are recorded on the query; this is the recording
            # failing (e.g. the database went away mid-step). Give the query back so that it
            # does not wait for its claim to expire, and let another task carry on.
            logger.exception("Query %s: its step could not be recorded", last)
            drop_broken_connections()
            give_back(last, token)
            enqueue_later()
            break
        if not more:
            if query is not None:  # still ours: let another task take it from here
                release(query, token)
            # Runnable queries that were left to this runner get a task of their own (the
            # last one's next step, if any, has one already).
            if candidates(token, timezone.now(), exclude=last):
                enqueue_step(query_id=None)
            break
    return describe_steps(ran)


def describe_steps(ran: Counter[int]) -> str:
    """What a task did, for its result in the admin: "3 steps: #12 x2, #15 x1"."""
    total = sum(ran.values())
    text = f"{total} step{'s' if total != 1 else ''}"
    if ran:
        text += ": " + ", ".join(f"#{pk} x{count}" for pk, count in ran.items())
    return text


def run_query_step(query_id: int, *, manager: SessionManager | None = None) -> str:
    """Run the next step of one query, if nobody else is, and enqueue the one after. Returns
    what happened (for logs)."""
    token = secrets.token_hex(16)
    if not claim(query_id, token, timezone.now()):
        return "nothing to do"
    result, _ = run_claimed(load(query_id), token, manager or SessionManager(), chain=False)
    return result


def run_claimed(
    query: Query, token: str, manager: SessionManager, *, chain: bool
) -> tuple[str, Query | None]:
    """Run the claimed query's next step, telling `step_started` and `step_finished`."""
    step, kind, started = query.step, query.kind, time.monotonic()
    step_started.send_robust(sender=Query, query_id=query.pk, kind=kind, step=step)
    with claim_kept(query.pk, token):
        result, kept = run_step(query, token, manager, chain=chain)
    outcome = ("done" if result.startswith("step ") or result == "succeeded" else result).replace(
        "will retry", "retry"
    )
    step_finished.send_robust(
        sender=Query,
        query_id=query.pk,
        kind=kind,
        step=step,
        outcome=outcome,
        duration=time.monotonic() - started,
    )
    return result, kept


def run_step(
    query: Query, token: str, manager: SessionManager, *, chain: bool
) -> tuple[str, Query | None]:
    """Run the claimed query's next step. With `chain`, the runner goes on: the result says
    whether it still holds this query for its next step (the query) or not (None)."""
    if query.cancel_requested:
        finish(query, token, Query.Status.CANCELLED, "Cancelled.")
        return "cancelled", None
    step = query.step
    try:
        outcome = get_kind(query.kind).step(step).run(StepContext(query=query, manager=manager))
    except QueryFailed as exc:
        finish(query, token, Query.Status.FAILED, str(exc))
        return "failed", None
    except (SessionError, UpstreamError) as exc:
        reason = exc.readable() if isinstance(exc, UpstreamError) else str(exc)
        if not exc.retryable:
            finish(query, token, Query.Status.FAILED, reason)
            return "failed", None
        if not exc.counts_as_failure:
            return wait(query, token, reason), None
        return failed_for_now(query, token, step, reason), None
    except Exception:
        logger.exception("Query %s: step %s crashed", query.pk, step)
        drop_broken_connections()
        return failed_for_now(query, token, step, f"Internal error in step {step}."), None
    return commit(query, token, outcome, chain=chain)


def enqueue_later() -> None:
    try:
        enqueue_step(query_id=None)
    except Exception:
        logger.exception("Could not enqueue a task; the sweep will start one")
