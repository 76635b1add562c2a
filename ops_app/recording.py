"""Signal receivers: each upstream call and each query step adds itself to its hour's
histogram row, with one UPDATE in the usual case.

The receivers run inside the engine's call path: they are quick, and never raise (a failure to
record is logged and forgotten; the call or step it describes goes on).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .health import public_name
from .models import LatencyHistogram, StepStat, UpstreamCallStat, bucket_field

logger = logging.getLogger(__name__)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def add_duration(
    model: type[LatencyHistogram], *, labels: dict[str, str], seconds: float, at: datetime
) -> None:
    """Count one duration in its hour's row, safely under concurrency on SQLite and
    PostgreSQL: increment in SQL; if no row exists, insert one; if another process inserted it
    first (unique constraint), increment that one."""
    seconds = max(float(seconds), 0.0)
    field = bucket_field(seconds)
    keys = {"hour": _hour(at), **labels}
    increments: dict[str, Any] = {
        "count": F("count") + 1,
        "sum_seconds": F("sum_seconds") + seconds,
    }
    if field:
        increments[field] = F(field) + 1
    # A savepoint when the caller is in a transaction: a failure here must not break theirs.
    with transaction.atomic():
        if model._default_manager.filter(**keys).update(**increments):
            return
    try:
        with transaction.atomic():
            model._default_manager.create(
                **keys, count=1, sum_seconds=seconds, **({field: 1} if field else {})
            )
    except IntegrityError:
        with transaction.atomic():
            model._default_manager.filter(**keys).update(**increments)


def on_upstream_call(
    *, server: str, endpoint: str, outcome: str, duration: float, **kwargs: Any
) -> None:
    try:
        add_duration(
            UpstreamCallStat,
            labels={
                "server": public_name(server)[:200],
                "endpoint": endpoint[:100],
                "outcome": outcome[:60],
            },
            seconds=duration,
            at=timezone.now(),
        )
    except Exception as exc:
        logger.warning("Could not record an upstream call's duration: %s", type(exc).__name__)


def on_step_finished(*, kind: str, step: str, outcome: str, duration: float, **kwargs: Any) -> None:
    try:
        add_duration(
            StepStat,
            labels={"kind": kind[:20], "step": (step or "")[:40], "outcome": outcome[:20]},
            seconds=duration,
            at=timezone.now(),
        )
    except Exception as exc:
        logger.warning("Could not record a query step's duration: %s", type(exc).__name__)
