"""Start, run, cancel and recover queries.

A query runs as a chain of short django-q2 tasks, one step each (see `steps.py`). A task
claims the query with a conditional UPDATE (one runner at a time, a dead runner's claim
expires), does the step's upstream work with no transaction open, then in one short
transaction writes the step's rows and moves the query to its next step — only if it still
holds the claim. The next task is enqueued after that commit. So a killed worker costs at
most the step in flight, a redelivered task finds its step already done and simply runs the
next one, and progress is on the row all along. `sweep_queries` (scheduled every minute)
re-enqueues queries whose task was lost or whose worker died, and retries steps that failed
for a passing reason after their back-off.
"""

from __future__ import annotations

import logging
import random
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task

from sessions_app.client import UpstreamError
from sessions_app.models import Account
from sessions_app.services import SessionError, SessionManager, drop_broken_connections

from . import parsing
from .models import Query
from .steps import DONE, FIRST_STEP, GIVE_UP, STEPS, Outcome, QueryFailed, StepContext

logger = logging.getLogger(__name__)

# The parameters each kind takes (the forms and the command read this too).
KIND_PARAMS: dict[str, list[str]] = {
    Query.Kind.AVAILABILITY: [],
    Query.Kind.CONTAINERS: [],
    Query.Kind.APPOINTMENTS: [],
    Query.Kind.TIMELINE: ["container_id"],
    Query.Kind.BOOKING_NUMBER: ["container_id"],
    Query.Kind.BULK_INFO: ["import_containers", "export_containers"],
    Query.Kind.APPOINTMENT_CHECK: [
        "container_type",
        "container_id",
        "booking_number",
        "terminal",
        "move_type",
    ],
}
# Kinds that read the whole account: a second trigger while one runs returns the running one.
ACCOUNT_WIDE_KINDS = (Query.Kind.AVAILABILITY, Query.Kind.CONTAINERS, Query.Kind.APPOINTMENTS)
MOVE_TYPES = ("PICK FULL", "DROP EMPTY", "DROP FULL", "PICK EMPTY")
MAX_BULK_CONTAINERS = 200

# A step that fails for a passing reason is tried this many times in all.
MAX_STEP_FAILURES = 3


# -- validation and starting ---------------------------------------------------------------------


def _container(value: Any, errors: dict[str, list[str]], field: str) -> str:
    number = parsing.normalise_container_number(str(value or ""))
    if not number:
        errors.setdefault(field, []).append("A container number is required.")
    elif not parsing.is_container_number(number):
        errors.setdefault(field, []).append(
            f"“{value}” is not a container number (4 letters and 7 digits, e.g. MSCU1234567)."
        )
    return number


def _container_list(value: Any, errors: dict[str, list[str]], field: str) -> list[str]:
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    numbers = []
    for item in value or []:
        number = _container(item, errors, field)
        if number and number not in numbers:
            numbers.append(number)
    return numbers


def validate_params(*, account: Account, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Clean a query's parameters; raise ValidationError naming each bad one."""
    if kind not in KIND_PARAMS:
        raise ValidationError(
            f"Unknown query kind “{kind}”; choose one of: {', '.join(KIND_PARAMS)}."
        )
    unknown = set(params) - set(KIND_PARAMS[kind])
    if unknown:
        raise ValidationError(
            f"{Query.Kind(kind).label} takes no parameter {', '.join(sorted(unknown))}."
        )
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    if kind in (Query.Kind.TIMELINE, Query.Kind.BOOKING_NUMBER):
        cleaned["container_id"] = _container(params.get("container_id"), errors, "container_id")
    elif kind == Query.Kind.BULK_INFO:
        for field in ("import_containers", "export_containers"):
            cleaned[field] = _container_list(params.get(field), errors, field)
        total = len(cleaned["import_containers"]) + len(cleaned["export_containers"])
        if not total and not errors:
            errors["import_containers"] = ["Give at least one import or export container."]
        if total > MAX_BULK_CONTAINERS:
            errors["import_containers"] = [f"At most {MAX_BULK_CONTAINERS} containers at once."]
    elif kind == Query.Kind.APPOINTMENT_CHECK:
        container_type = str(params.get("container_type") or "").lower()
        if container_type not in ("import", "export"):
            errors["container_type"] = ["Choose import or export."]
        cleaned["container_type"] = container_type
        if container_type == "export":
            booking = str(params.get("booking_number") or "").strip().upper()
            if not booking:
                errors["booking_number"] = ["An export check needs the booking number."]
            cleaned["booking_number"] = booking
        elif container_type == "import":
            cleaned["container_id"] = _container(params.get("container_id"), errors, "container_id")
        cleaned["terminal"] = str(params.get("terminal") or "").strip()
        if not cleaned["terminal"]:
            errors["terminal"] = ["Name the terminal."]
        move_type = str(params.get("move_type") or "").strip().upper()
        if move_type not in MOVE_TYPES:
            errors["move_type"] = [f"Choose one of: {', '.join(MOVE_TYPES)}."]
        cleaned["move_type"] = move_type
    if kind in (Query.Kind.AVAILABILITY, Query.Kind.APPOINTMENT_CHECK) and not (
        account.trucking_company and account.truck_plate
    ):
        errors.setdefault("__all__", []).append(
            "Appointment checks need the account's trucking company and truck plate; "
            "set them on the account first."
        )
    if errors:
        raise ValidationError(errors)
    return cleaned


def start_query(
    *,
    account: Account,
    kind: str,
    params: dict[str, Any] | None = None,
    started_by: Any = None,
    batch: str = "",
) -> Query:
    """Create a query and enqueue its first step (after commit). For account-wide kinds, a
    query of the same kind already live for the account is returned instead."""
    cleaned = validate_params(account=account, kind=kind, params=params or {})
    with transaction.atomic():
        if kind in ACCOUNT_WIDE_KINDS:
            existing = Query.objects.live().filter(account=account, kind=kind).first()
            if existing is not None:
                return existing
        query = Query.objects.create(
            account=account,
            kind=kind,
            params=cleaned,
            started_by=started_by if getattr(started_by, "pk", None) else None,
            batch=batch,
            step=FIRST_STEP[kind],
            enqueued_at=timezone.now(),
        )
        enqueue_step(query_id=query.pk)
    return query


def rerun_query(*, query: Query, started_by: Any = None) -> Query:
    return start_query(
        account=query.account, kind=query.kind, params=query.params, started_by=started_by
    )


def cancel_query(*, query: Query) -> bool:
    """Cancel a live query: at once if no step is running, else between steps. False if
    it had already ended."""
    now = timezone.now()
    stopped = Query.objects.filter(
        Q(claim_token="") | Q(claim_expires_at__lt=now), pk=query.pk, status__in=Query.LIVE_STATUSES
    ).update(
        status=Query.Status.CANCELLED,
        finished_at=now,
        error="Cancelled.",
        claim_token="",
        claim_expires_at=None,
        retry_at=None,
    )
    if not stopped:
        stopped = Query.objects.filter(pk=query.pk, status__in=Query.LIVE_STATUSES).update(
            cancel_requested=True
        )
    query.refresh_from_db()
    return bool(stopped)


def accounts_with_live_queries(account_ids: list[int]) -> set[int]:
    """The accounts among these with a query still to run (EMODAL_SESSION_DEMAND)."""
    return set(
        Query.objects.live().filter(account_id__in=account_ids).values_list("account_id", flat=True)
    )


def enqueue_step(*, query_id: int) -> None:
    transaction.on_commit(
        lambda: async_task(
            "queries_app.tasks.run_query_step", query_id, task_name=f"query-{query_id}"
        )
    )


# -- running a step ------------------------------------------------------------------------------


def _claim_seconds() -> float:
    # django-q kills a task at its timeout; past that the claim is certainly stale.
    return settings.Q_CLUSTER["timeout"] + 60


def _claim(query_id: int, token: str, now: datetime) -> bool:
    free = Q(claim_token="") | Q(claim_expires_at__lt=now)
    not_waiting = Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    claimed = (
        Query.objects.filter(free, not_waiting, pk=query_id, status__in=Query.LIVE_STATUSES)
        .exclude(step=DONE)
        .update(
            claim_token=token,
            claim_expires_at=now + timedelta(seconds=_claim_seconds()),
            retry_at=None,
            status=Query.Status.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
        )
    )
    return claimed == 1


def run_query_step(query_id: int, *, manager: SessionManager | None = None) -> str:
    """Run the next step of a query, if nobody else is. Returns what happened (for logs)."""
    token = secrets.token_hex(16)
    if not _claim(query_id, token, timezone.now()):
        return "nothing to do"
    query = Query.objects.select_related("account__user").get(pk=query_id)
    if query.cancel_requested:
        _finish(query, token, Query.Status.CANCELLED, "Cancelled.")
        return "cancelled"
    step = query.step
    try:
        outcome = STEPS[step](StepContext(query=query, manager=manager or SessionManager()))
    except QueryFailed as exc:
        _finish(query, token, Query.Status.FAILED, str(exc))
        return "failed"
    except (SessionError, UpstreamError) as exc:
        reason = exc.readable() if isinstance(exc, UpstreamError) else str(exc)
        if not exc.retryable:
            _finish(query, token, Query.Status.FAILED, reason)
            return "failed"
        if not exc.counts_as_failure:
            return _wait(query, token, reason)
        return _failed_for_now(query, token, step, reason)
    except Exception:
        logger.exception("Query %s: step %s crashed", query_id, step)
        drop_broken_connections()
        return _failed_for_now(query, token, step, f"Internal error in step {step}.")
    return _commit(query, token, outcome)


def _commit(query: Query, token: str, outcome: Outcome) -> str:
    now = timezone.now()
    changes: dict[str, Any] = {
        "step": outcome.next_step,
        "claim_token": "",
        "claim_expires_at": None,
        "step_failures": 0,
        "error": "",
    }
    if outcome.progress_total is not None:
        changes["progress_total"] = outcome.progress_total
    if outcome.progress_done is not None:
        changes["progress_done"] = outcome.progress_done
    if outcome.state is not None:
        changes["state"] = outcome.state
    finished = outcome.next_step == DONE
    if finished:
        changes.update(status=Query.Status.SUCCEEDED, finished_at=now)
    else:
        changes["enqueued_at"] = now
    with transaction.atomic():
        if Query.objects.filter(pk=query.pk, claim_token=token).update(**changes) != 1:
            # Our claim expired and another worker took the query: its result stands.
            transaction.set_rollback(True)
            return "claim lost"
        if outcome.write is not None:
            outcome.write()
        if not finished:
            enqueue_step(query_id=query.pk)
    if finished:
        _ended(query)
    return "succeeded" if finished else f"step {query.step} done"


WAITING = "Waiting: "


def wake_waiting_queries(*, server: str, count: int = 1) -> int:
    """A browser on `server` was given back: enqueue the queries that wait longest for one
    there now, instead of at their retry time."""
    now = timezone.now()
    waiting = (
        Query.objects.live()
        .filter(
            claim_token="",
            retry_at__isnull=False,
            error__startswith=WAITING,
            account__upstream_url=server,
        )
        .order_by("retry_at", "pk")[:count]
    )
    return sum(_requeue(query, now, Q(retry_at__isnull=False)) for query in waiting)


def _wait(query: Query, token: str, reason: str) -> str:
    """The step was not tried (the upstream's breaker is open, or the captcha budget is
    spent): come back later without counting it against the step's tries."""
    retry_at = timezone.now() + timedelta(seconds=settings.QUERY_RETRY_BASE_SECONDS)
    Query.objects.filter(pk=query.pk, claim_token=token).update(
        claim_token="", claim_expires_at=None, retry_at=retry_at, error=f"{WAITING}{reason}"[:2000]
    )
    return "waiting"


def _failed_for_now(query: Query, token: str, step: str, reason: str) -> str:
    failures = query.step_failures + 1
    if failures < MAX_STEP_FAILURES:
        delay = min(settings.QUERY_RETRY_BASE_SECONDS * 2 ** (failures - 1), 600)
        retry_at = timezone.now() + timedelta(seconds=delay * random.uniform(0.8, 1.2))  # noqa: S311
        Query.objects.filter(pk=query.pk, claim_token=token).update(
            claim_token="",
            claim_expires_at=None,
            step_failures=failures,
            retry_at=retry_at,
            error=f"Retrying after: {reason}"[:2000],
        )
        return "will retry"
    give_up = GIVE_UP.get(step) if query.kind == Query.Kind.AVAILABILITY else None
    if give_up is not None:
        return _commit(query, token, give_up(query, f"Gave up after {failures} tries: {reason}"))
    _finish(query, token, Query.Status.FAILED, f"{reason} (gave up after {failures} tries)")
    return "failed"


def _finish(query: Query, token: str, status: str, error: str) -> None:
    ended = Query.objects.filter(pk=query.pk, claim_token=token).update(
        status=status,
        error=error[:2000],
        finished_at=timezone.now(),
        claim_token="",
        claim_expires_at=None,
        retry_at=None,
    )
    if ended:
        _ended(query)


def _ended(query: Query) -> None:
    """The account may have no work left: its browser can now go to a query waiting for one."""
    server = query.account.upstream_url
    if server:
        wake_waiting_queries(server=server)


# -- recovery ------------------------------------------------------------------------------------


def sweep_queries(*, now: datetime | None = None) -> dict[str, int]:
    """Find live queries that nobody is advancing and set them going again (or fail them).

    - a claim past its expiry: the worker died mid-step (counts as a failure of that step);
    - a retry whose back-off has passed;
    - no claim and no task seen for too long: the broker lost the task (e.g. Redis restart).
    """
    now = now or timezone.now()
    counts = {"dead_workers": 0, "retries": 0, "lost_tasks": 0, "failed": 0}
    dead = Query.objects.live().exclude(claim_token="").filter(claim_expires_at__lt=now)
    for query in dead:
        failures = query.step_failures + 1
        if failures >= MAX_STEP_FAILURES:
            ended = Query.objects.filter(pk=query.pk, claim_token=query.claim_token).update(
                status=Query.Status.FAILED,
                finished_at=now,
                claim_token="",
                claim_expires_at=None,
                error=f"The worker running step “{query.step}” stopped {failures} times; "
                "giving up.",
            )
            counts["failed"] += ended
            continue
        with transaction.atomic():
            released = Query.objects.filter(pk=query.pk, claim_token=query.claim_token).update(
                claim_token="", claim_expires_at=None, step_failures=failures, enqueued_at=now
            )
            if released:
                enqueue_step(query_id=query.pk)
        counts["dead_workers"] += released
    lost_before = now - timedelta(seconds=settings.QUERY_LOST_AFTER_SECONDS)
    idle = Query.objects.live().filter(claim_token="")
    for query in idle.filter(retry_at__lte=now):
        counts["retries"] += _requeue(query, now, Q(retry_at__lte=now))
    for query in idle.filter(retry_at__isnull=True, enqueued_at__lt=lost_before):
        counts["lost_tasks"] += _requeue(query, now, Q(enqueued_at__lt=lost_before))
    return counts


def _requeue(query: Query, now: datetime, still: Q) -> int:
    with transaction.atomic():
        requeued = Query.objects.filter(
            still, pk=query.pk, claim_token="", status__in=Query.LIVE_STATUSES
        ).update(retry_at=None, enqueued_at=now)
        if requeued:
            enqueue_step(query_id=query.pk)
    return requeued
