"""Starting, re-running and cancelling queries — the one place their rules live, for the
pages, the admin, the command, schedules and the API alike: parameters checked by the kind's
own form (`registry`), one live query per account, kind and parameters, and a per-person
trigger limit. Running them is the engine's business (`engine`)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import ngettext

from portal.claims import CLAIM
from sessions_app.models import Account

from .engine import announce_end, enqueue_step
from .events import record_end
from .kinds.params import MAX_BULK_CONTAINERS
from .models import Query, params_key
from .registry import UnknownKind, all_kinds, get_kind


def validate_params(*, account: Account, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """A query's parameters, cleaned by its kind's form; ValidationError naming each bad one."""
    try:
        declared = get_kind(kind)
    except UnknownKind:
        codes = ", ".join(k.code for k in all_kinds())
        raise ValidationError(f"Unknown query kind “{kind}”; choose one of: {codes}.") from None
    form = declared.params(data=params, account=account)
    unknown = set(params) - set(form.fields)
    if unknown:
        raise ValidationError(f"{declared.label} takes no parameter {', '.join(sorted(unknown))}.")
    if not form.is_valid():
        raise ValidationError({name: list(messages) for name, messages in form.errors.items()})
    return form.params()


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
) -> tuple[Query, bool]:
    """(the query, whether it was created): a new query with its first step enqueued (after
    commit), or — created False — the live query of the same account, kind and cleaned
    parameters, which a second one would only repeat. A query started by a person
    (`started_by`: the pages, the admin, the API) counts against their QUERY_TRIGGER_LIMIT;
    past it TriggerLimitReached is raised and nothing is started. Commands and schedules start
    queries for operators, with no person, and are not limited."""
    cleaned = validate_params(account=account, kind=kind, params=params or {})
    declared = get_kind(kind)
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
            return existing, False
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
                    step=declared.first_step,
                    enqueued_at=timezone.now(),
                )
                query.work_left = declared.estimate(query)
                query.save(force_insert=True)
        except IntegrityError:
            # Another process started the same query since we looked (PostgreSQL: its
            # insert committed while ours waited on the unique index): return that one.
            existing = _live_twin(account=account, kind=kind, key=key)
            if existing is None:
                raise
            return existing, False
        enqueue_step(query_id=query.pk)
    return query, True


def _live_twin(*, account: Account, kind: str, key: str) -> Query | None:
    return Query.objects.live().filter(account=account, kind=kind, params_key=key).first()


def rerun_query(*, query: Query, started_by: Any = None) -> tuple[Query, bool]:
    return start_query(
        account=query.account, kind=query.kind, params=query.params, started_by=started_by
    )


def cancel_query(*, query: Query) -> bool:
    """Cancel a live query: at once if no step is running, else between steps. False if
    it had already ended."""
    now = timezone.now()
    with transaction.atomic():
        stopped = Query.objects.filter(
            CLAIM.free(now), pk=query.pk, status__in=Query.LIVE_STATUSES
        ).update(
            status=Query.Status.CANCELLED,
            finished_at=now,
            error="Cancelled.",
            retry_at=None,
            **CLAIM.released(),
        )
        if stopped:
            record_end(query.pk)
    if stopped:
        announce_end(query.pk)
    else:
        stopped = Query.objects.filter(pk=query.pk, status__in=Query.LIVE_STATUSES).update(
            cancel_requested=True
        )
    query.refresh_from_db()
    return bool(stopped)


__all__ = [
    "MAX_BULK_CONTAINERS",
    "TriggerLimitReached",
    "cancel_query",
    "rerun_query",
    "start_query",
    "validate_params",
]
