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
import math
import random
import re
import secrets
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Min, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import ngettext
from django_q.tasks import async_task

from sessions_app.models import Account
from sessions_app.services import SessionError, SessionManager, drop_broken_connections
from sessions_app.upstream import UpstreamError

from . import parsing
from .models import AppointmentCheck, ContainerRow, Query, Terminal, params_key
from .signals import query_finished, step_finished
from .steps import (
    DONE,
    FIRST_STEP,
    GIVE_UP,
    STEP_SECONDS,
    STEPS,
    Outcome,
    QueryFailed,
    StepContext,
    work_left,
)

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
        "line",
        "equip_size",
    ],
}
MOVE_TYPES = ("PICK FULL", "DROP EMPTY", "DROP FULL", "PICK EMPTY")
# The most containers one bulk-info query takes (the upstream reads them one after another,
# 5-10 s each: 200 is already half an hour).
MAX_BULK_CONTAINERS = 200

# A step that fails for a passing reason is tried this many times in all.
MAX_STEP_FAILURES = 3


# -- validation and starting ---------------------------------------------------------------------


def _container(value: Any, errors: dict[str, list[str]], field: str) -> str:
    number = parsing.normalise_container_number(str(value or ""))
    if not number:
        errors.setdefault(field, []).append("A container number is required.")
    elif not parsing.is_container_number(number):
        shown = str(value)[:24] + ("…" if len(str(value)) > 24 else "")
        errors.setdefault(field, []).append(
            f"“{shown}” is not a container number (4 letters and 7 digits, e.g. MSCU1234567)."
        )
    return number


def _container_list(value: Any, errors: dict[str, list[str]], field: str) -> list[str]:
    """A list of container numbers, each checked once (order kept, repeats dropped). The size is
    checked first, so that a huge list costs no more than counting it."""
    if value is None:
        value = []
    elif isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list | tuple):
        errors.setdefault(field, []).append("Give a list of container numbers.")
        return []
    if len(value) > MAX_BULK_CONTAINERS:
        errors.setdefault(field, []).append(
            f"At most {MAX_BULK_CONTAINERS} containers at once (got {len(value)})."
        )
        return []
    numbers: dict[str, None] = {}
    mine: dict[str, list[str]] = {}
    for item in value:
        number = _container(item, mine, field)
        if number:
            numbers[number] = None
    wrong = mine.get(field, [])
    if wrong:
        more = f" ({len(wrong) - 3} more like these)" if len(wrong) > 3 else ""
        errors.setdefault(field, []).extend(wrong[:3])
        if more:
            errors[field][-1] += more
    return list(numbers)


BOOKING_NUMBER_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]*$", re.ASCII)


def _booking_number(value: Any, errors: dict[str, list[str]]) -> str:
    booking = str(value or "").strip().upper()
    width = AppointmentCheck._meta.get_field("booking_number").max_length
    if not booking:
        errors["booking_number"] = ["An export check needs the booking number."]
    elif len(booking) > width:
        errors["booking_number"] = [f"A booking number has at most {width} characters."]
    elif not BOOKING_NUMBER_RE.match(booking):
        errors["booking_number"] = ["A booking number has only letters, digits and dashes."]
    return booking


def _text_param(params: dict[str, Any], name: str, field: Any, errors: dict[str, list[str]]) -> str:
    """An optional text parameter, upper case, no longer than the column it is stored in."""
    value = str(params.get(name) or "").strip().upper()
    if len(value) > field.max_length:
        errors[name] = [f"At most {field.max_length} characters."]
    elif value and not value.isprintable():
        errors[name] = ["Only printable characters, please."]
    return value


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
        both = set(cleaned["import_containers"]) & set(cleaned["export_containers"])
        if both:
            named = ", ".join(sorted(both)[:5])
            errors["export_containers"] = [
                f"A container is either an import or an export, not both: {named}."
            ]
    elif kind == Query.Kind.APPOINTMENT_CHECK:
        container_type = str(params.get("container_type") or "").lower()
        if container_type not in ("import", "export"):
            errors["container_type"] = ["Choose import or export."]
        cleaned["container_type"] = container_type
        if container_type == "export":
            cleaned["booking_number"] = _booking_number(params.get("booking_number"), errors)
        elif container_type == "import":
            cleaned["container_id"] = _container(params.get("container_id"), errors, "container_id")
        cleaned["terminal"] = _terminal_code(params.get("terminal"), errors)
        if container_type == "import":
            for name, column in (("line", "line"), ("equip_size", "size_type")):
                value = _text_param(params, name, ContainerRow._meta.get_field(column), errors)
                if value:
                    cleaned[name] = value
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


def _terminal_code(value: Any, errors: dict[str, list[str]]) -> str:
    """A terminal given by its code (`TTI`) or its E-Modal name → the code, if staff have
    named it (checks go out with the name the appointment page lists)."""
    text = str(value or "").strip()
    if not text:
        errors["terminal"] = ["Choose the terminal."]
        return ""
    named = Terminal.objects.filter(active=True).exclude(name="")
    code = (
        named.filter(code__iexact=text).values_list("code", flat=True).first()
        or named.filter(name__iexact=text).values_list("code", flat=True).first()
    )
    if code is None:
        errors["terminal"] = [
            f"“{text}” is not a terminal with an E-Modal name; choose one from the list "
            "(staff add terminals in the admin)."
        ]
        return text
    return code


class TriggerLimitReached(Exception):
    """A person started as many queries as QUERY_TRIGGER_LIMIT allows per window."""

    def __init__(self, *, limit: int, window_seconds: int, retry_at: datetime) -> None:
        super().__init__(f"{limit} queries started within {window_seconds} s")
        self.limit = limit
        self.window_seconds = window_seconds
        self.retry_at = retry_at

    def retry_after_seconds(self) -> int:
        return max(1, math.ceil((self.retry_at - timezone.now()).total_seconds()))

    def readable(self) -> str:
        """What to tell the person, with the time in the zone now active."""
        now = timezone.now()
        wait = self.retry_after_seconds()
        in_words = _seconds(wait) if wait < 60 else timesince(now, self.retry_at)
        window = (
            _seconds(self.window_seconds)
            if self.window_seconds % 60
            else timesince(now - timedelta(seconds=self.window_seconds), now)
        )
        at = timezone.localtime(self.retry_at).strftime("%H:%M:%S %Z")
        return (
            f"You have started {self.limit} queries in the last {window}, the most allowed. "
            f"You can start another at {at} (in {in_words})."
        )


def _seconds(count: int) -> str:
    return ngettext("%(n)d second", "%(n)d seconds", count) % {"n": count}


def _trigger_limit_reached(person: Any, now: datetime) -> TriggerLimitReached | None:
    """Counting the person's own rows is exact and shared by every process (a cache counter
    would be neither on the database cache, whose incr is a read then a write)."""
    limit, window = settings.QUERY_TRIGGER_LIMIT, settings.QUERY_TRIGGER_WINDOW_SECONDS
    if not limit:
        return None
    since = now - timedelta(seconds=window)
    recent = Query.objects.filter(started_by=person, created_at__gt=since).order_by("-created_at")
    # The limit-th newest leaves the window first among those that fill it.
    times = list(recent.values_list("created_at", flat=True)[:limit])
    if len(times) < limit:
        return None
    return TriggerLimitReached(
        limit=limit, window_seconds=window, retry_at=times[-1] + timedelta(seconds=window)
    )


def start_query(
    *,
    account: Account,
    kind: str,
    params: dict[str, Any] | None = None,
    started_by: Any = None,
    batch: str = "",
) -> Query:
    """Create a query and enqueue its first step (after commit).

    A live query of the same account, kind and cleaned parameters is returned instead, with
    `already_running` set: a second one would fetch the same data. A query started by a
    person (`started_by`: the pages, the admin) counts against their QUERY_TRIGGER_LIMIT;
    past it TriggerLimitReached is raised and nothing is started. Commands and schedules
    start queries for operators, with no person, and are not limited."""
    cleaned = validate_params(account=account, kind=kind, params=params or {})
    key = params_key(cleaned)
    person = started_by if getattr(started_by, "pk", None) else None
    with transaction.atomic():
        if person is not None:
            # One person's triggers one at a time, so that the count below is exact across
            # processes (on SQLite the IMMEDIATE transaction already serialises them). No-key:
            # rows that merely reference the user (admin log entries) are not held up.
            users = get_user_model().objects.select_for_update(no_key=True)
            list(users.filter(pk=person.pk).values("pk"))
        existing = _live_twin(account=account, kind=kind, key=key)
        if existing is not None:
            return existing
        if person is not None:
            reached = _trigger_limit_reached(person, timezone.now())
            if reached is not None:
                raise reached
        try:
            with transaction.atomic():
                query = Query(
                    account=account,
                    kind=kind,
                    params=cleaned,
                    params_key=key,
                    started_by=person,
                    batch=batch,
                    step=FIRST_STEP[kind],
                    enqueued_at=timezone.now(),
                )
                query.work_left = work_left(query)
                query.save(force_insert=True)
        except IntegrityError:
            # Another process started the same query since we looked (PostgreSQL: its
            # insert committed while ours waited on the unique index): return that one.
            existing = _live_twin(account=account, kind=kind, key=key)
            if existing is None:
                raise
            return existing
        enqueue_step(query_id=query.pk)
    return query


def _live_twin(*, account: Account, kind: str, key: str) -> Query | None:
    query = Query.objects.live().filter(account=account, kind=kind, params_key=key).first()
    if query is not None:
        query.already_running = True
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
    if stopped:
        announce_end(query.pk)
    else:
        stopped = Query.objects.filter(pk=query.pk, status__in=Query.LIVE_STATUSES).update(
            cancel_requested=True
        )
    query.refresh_from_db()
    return bool(stopped)


def accounts_with_live_queries(account_ids: list[int]) -> set[int]:
    """The accounts among these with a query still to run (a demand provider of
    sessions_app's capacity)."""
    return set(
        Query.objects.live().filter(account_id__in=account_ids).values_list("account_id", flat=True)
    )


def enqueue_step(*, query_id: int | None) -> None:
    """Wake a worker (after commit) to run steps, starting with this query's if it is free."""
    name = f"query-{query_id}" if query_id is not None else "queries"
    transaction.on_commit(
        lambda: async_task("queries_app.tasks.run_query_step", query_id, task_name=name)
    )


# -- running steps ------------------------------------------------------------------------------
#
# A worker runs steps back to back (`run_queries`): after each step it takes whichever runnable
# step should come next, often the same query's (its account's browser is warm and no hand-off
# through the broker is needed). "Runnable": live, not claimed, not waiting for a retry, its
# account not busy with another runner (one browser, one call at a time), and a browser to be
# had for it. "Next": queries a person started come before batches; among those the one with
# the least work left (a short look-up is not stuck behind availability runs); among batch
# queries the one with the most work left, so that a batch's long runs start early and its
# accounts finish together. The broker's tasks only wake workers up; the Query rows are the
# queue.

# A runner keeps its query unless another has this much more claim on the worker (upstream
# seconds, see `steps.work_left`), so that near-equal queries do not swap at every step.
SWITCH_MARGIN = 2 * STEP_SECONDS["appointment_check"]


def _claim_seconds() -> float:
    # django-q kills a task at its timeout; past that the claim is certainly stale.
    return settings.Q_CLUSTER["timeout"] + 60


def _account_busy(token: str, now: datetime) -> Exists:
    """Another runner holds a live claim on a query of the same account."""
    return Exists(
        Query.objects.filter(account_id=OuterRef("account_id"), claim_expires_at__gte=now)
        .exclude(claim_token="")
        .exclude(claim_token=token)
    )


def _claim(query_id: int, token: str, now: datetime, *, account_checked: bool = False) -> bool:
    """Claim the query for a step. Unless the caller has just seen its account free (the
    choice of the next step does), no other runner may hold a query of the same account: a
    scheduling rule — the account's lease is what keeps calls on one browser one at a time."""
    free = Q(claim_token="") | Q(claim_expires_at__lt=now)
    not_waiting = Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    claimable = Query.objects.filter(
        free, not_waiting, pk=query_id, status__in=Query.LIVE_STATUSES
    ).exclude(step=DONE)
    if not account_checked:
        claimable = claimable.exclude(_account_busy(token, now))
    claimed = claimable.update(
        claim_token=token,
        claim_expires_at=now + timedelta(seconds=_claim_seconds()),
        retry_at=None,
        status=Query.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=Coalesce(F("started_at"), Value(now)),
    )
    return claimed == 1


def _load(query_id: int) -> Query:
    return Query.objects.select_related("account__user").get(pk=query_id)


def _order_key(query: Query | _Live) -> tuple[int, int]:
    """Smaller runs first (see above)."""
    if query.batch:
        return (1, -query.work_left)
    return (0, query.work_left)


class _Live(NamedTuple):
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


def _candidates(
    token: str, now: datetime, *, exclude: int | None = None, prefer: int | None = None
) -> list[_Live]:
    """Runnable queries in the order they should run (see above), a few at most; `prefer`
    (the query a task was enqueued for) first if it is runnable. One read of the live
    queries (there are as many as accounts with work, not more), sorted here."""
    live = [
        _Live(*row)
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
        q.pk for q in live if q.claim_token and q.claim_token != token and q.claim_expires_at >= now
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
        key=lambda q: (q.pk != prefer, *_order_key(q), q.created_at, q.pk),
    )
    # Browsers free for a login on each server: the session limit less those held by accounts
    # with work (never taken from them) and those other runners are logging in to take now.
    limit = settings.EMODAL_MAX_SESSIONS
    taken: dict[str, set[int]] = {}
    for q in live:
        if q.slot is not None or q.pk in others:
            taken.setdefault(q.server, set()).add(q.account_id)

    def browser_for(q: _Live) -> bool:
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


def _claim_next(
    token: str, manager: SessionManager, *, exclude: int | None = None, prefer: int | None = None
) -> Query | None:
    for _ in range(3):  # another runner may take a candidate first
        now = timezone.now()
        candidates = _candidates(token, now, exclude=exclude, prefer=prefer)
        if not candidates:
            return None
        for candidate in candidates:
            if candidate.slot is None and not manager.reserve_browser(
                Account.objects.get(pk=candidate.account_id)
            ):
                # Another runner took the last browser since the read: this account waits.
                continue
            if _claim(candidate.pk, token, now, account_checked=True):
                return _load(candidate.pk)
    return None


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
                query = _claim_next(token, manager, prefer=first)
            except Exception:
                # Not a step's failure (those are recorded on their query): e.g. the
                # database went away. Another task, or the sweep, carries on.
                logger.exception("Choosing the next query step failed")
                _enqueue_later()
                break
            first = None
            if query is None:
                if _wait_for_a_retry(ends):
                    continue
                break
        ran[query.pk] += 1
        more = time.monotonic() < ends
        last = query.pk
        try:
            _, query = _run_claimed(query, token, manager, chain=more)
        except Exception:
            # The step's own failures are recorded on the query; this is the recording
            # failing (e.g. the database went away mid-step). Give the query back so that it
            # does not wait for its claim to expire, and let another task carry on.
            logger.exception("Query %s: its step could not be recorded", last)
            drop_broken_connections()
            _give_back(last, token)
            _enqueue_later()
            break
        if not more:
            if query is not None:  # still ours: let another task take it from here
                _release(query, token)
            # Runnable queries that were left to this runner get a task of their own (the
            # last one's next step, if any, has one already).
            if _candidates(token, timezone.now(), exclude=last):
                enqueue_step(query_id=None)
            break
    return describe_steps(ran)


def _wait_for_a_retry(ends: float) -> bool:
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
    if not _claim(query_id, token, timezone.now()):
        return "nothing to do"
    result, _ = _run_claimed(_load(query_id), token, manager or SessionManager(), chain=False)
    return result


def _run_claimed(
    query: Query, token: str, manager: SessionManager, *, chain: bool
) -> tuple[str, Query | None]:
    """Run the claimed query's next step and tell `step_finished` how it went."""
    step, kind, started = query.step, query.kind, time.monotonic()
    result, kept = _run_step(query, token, manager, chain=chain)
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


def _run_step(
    query: Query, token: str, manager: SessionManager, *, chain: bool
) -> tuple[str, Query | None]:
    """Run the claimed query's next step. With `chain`, the runner goes on: the result says
    whether it still holds this query for its next step (the query) or not (None)."""
    if query.cancel_requested:
        _finish(query, token, Query.Status.CANCELLED, "Cancelled.")
        return "cancelled", None
    step = query.step
    try:
        outcome = STEPS[step](StepContext(query=query, manager=manager))
    except QueryFailed as exc:
        _finish(query, token, Query.Status.FAILED, str(exc))
        return "failed", None
    except (SessionError, UpstreamError) as exc:
        reason = exc.readable() if isinstance(exc, UpstreamError) else str(exc)
        if not exc.retryable:
            _finish(query, token, Query.Status.FAILED, reason)
            return "failed", None
        if not exc.counts_as_failure:
            return _wait(query, token, reason), None
        return _failed_for_now(query, token, step, reason), None
    except Exception:
        logger.exception("Query %s: step %s crashed", query.pk, step)
        drop_broken_connections()
        return _failed_for_now(query, token, step, f"Internal error in step {step}."), None
    return _commit(query, token, outcome, chain=chain)


def _commit(
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
        return _write_outcome(query, token, outcome, chain=chain)
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
            _finish(query, token, Query.Status.FAILED, reason)
            return "failed", None
        return _failed_for_now(query, token, query.step, reason), None


def _write_outcome(
    query: Query, token: str, outcome: Outcome, *, chain: bool
) -> tuple[str, Query | None]:
    now = timezone.now()
    ran = query.step
    kept = {name: getattr(query, name) for name in _OUTCOME_FIELDS}
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
    query.work_left = changes["work_left"] = work_left(query)
    finished = outcome.next_step == DONE
    rival = None
    if finished:
        changes.update(status=Query.Status.SUCCEEDED, finished_at=now)
    elif chain and query.work_left > 0:  # (see `_should_switch`)
        rivals = _candidates(token, now, exclude=query.pk)
        rival = rivals[0] if rivals else None
        if rival is not None and not _should_switch(query, rival):
            rival = None
    keep = chain and not finished and rival is None
    if keep:
        changes.update(
            claim_expires_at=now + timedelta(seconds=_claim_seconds()),
            attempts=F("attempts") + 1,
        )
    else:
        changes.update(claim_token="", claim_expires_at=None, enqueued_at=now)
    try:
        with transaction.atomic():
            if Query.objects.filter(pk=query.pk, claim_token=token).update(**changes) != 1:
                # Our claim expired and another worker took the query: its result stands.
                transaction.set_rollback(True)
                return "claim lost", None
            if outcome.write is not None:
                outcome.write()
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
        _ended(query)
        result = "succeeded"
    else:
        result = f"step {ran} done"
    return result, (query if keep else None)


# What `_write_outcome` changes on the query object before it knows the write went through.
_OUTCOME_FIELDS = (
    "step",
    "step_failures",
    "error",
    "notes",
    "progress_total",
    "progress_done",
    "state",
    "work_left",
)


def _should_switch(current: Query, rival: _Live) -> bool:
    if current.work_left == 0:
        # What is left needs no upstream call (e.g. comparing with the previous run): finish
        # it, so the account's browser is free for another.
        return False
    (current_class, current_rank), (rival_class, rival_rank) = (
        _order_key(current),
        _order_key(rival),
    )
    if rival_class != current_class:
        return rival_class < current_class
    return rival_rank + SWITCH_MARGIN < current_rank


def _give_back(query_id: int, token: str) -> None:
    try:
        Query.objects.filter(pk=query_id, claim_token=token).update(
            claim_token="", claim_expires_at=None
        )
    except Exception:
        logger.exception("Query %s: could not give back its claim; it expires", query_id)


def _enqueue_later() -> None:
    try:
        enqueue_step(query_id=None)
    except Exception:
        logger.exception("Could not enqueue a task; the sweep will start one")


def _release(query: Query, token: str) -> None:
    """Give the query back to the broker between two steps."""
    now = timezone.now()
    with transaction.atomic():
        if Query.objects.filter(pk=query.pk, claim_token=token).update(
            claim_token="", claim_expires_at=None, enqueued_at=now
        ):
            enqueue_step(query_id=query.pk)


WAITING = "Waiting: "


def on_browser_freed(*, server: str, count: int, **kwargs: Any) -> None:
    wake_waiting_queries(server=server, count=count)


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
        .order_by("retry_at", "pk")
        .values_list("pk", flat=True)[:count]
    )
    return sum(_requeue(pk, now, Q(retry_at__isnull=False)) for pk in waiting)


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
        outcome = give_up(query, f"Gave up after {failures} tries: {reason}")
        return _commit(query, token, outcome, giving_up=True)[0]
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
            ended = Query.objects.filter(pk=query.pk, claim_token=query.claim_token).update(
                status=Query.Status.FAILED,
                finished_at=now,
                claim_token="",
                claim_expires_at=None,
                error=f"The worker running step “{query.step}” stopped {failures} times; "
                "giving up.",
            )
            if ended:
                announce_end(query.pk)
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
        counts["retries"] += _requeue(query.pk, now, Q(retry_at__lte=now))
    for query in idle.filter(retry_at__isnull=True, enqueued_at__lt=lost_before):
        counts["lost_tasks"] += _requeue(query.pk, now, Q(enqueued_at__lt=lost_before))
    # Runnable work with no runner at all (e.g. a wake-up lost with the broker): one task
    # starts a runner, which takes the rest in turn.
    running = Query.objects.live().exclude(claim_token="").filter(claim_expires_at__gte=now)
    if not running.exists() and _candidates("", now):
        enqueue_step(query_id=None)
        counts["woken"] = 1
    return counts


def _requeue(query_id: int, now: datetime, still: Q) -> int:
    with transaction.atomic():
        requeued = Query.objects.filter(
            still, pk=query_id, claim_token="", status__in=Query.LIVE_STATUSES
        ).update(retry_at=None, enqueued_at=now)
        if requeued:
            enqueue_step(query_id=query_id)
    return requeued
