"""Look-ups of one container: its timeline (milestones, pregate), its booking number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sessions_app.upstream import EModalClient, UpstreamRejected

from .. import parsing
from ..engine.steps import DONE, Outcome, QueryFailed, StepContext
from ..models import ContainerInfo
from ..registry import QueryKind, Step, register
from ..results import write_infos
from .params import ContainerNumberField, KindParams

# The contract's timings (upstream seconds): 2-15 s.
LOOKUP_SECONDS = 8


class OneContainer(KindParams):
    container_id = ContainerNumberField()


def look_up(ctx: StepContext, operation: Callable[..., dict[str, Any]]) -> tuple[str, Any]:
    """(the container, the upstream's answer) of `operation(api, session_id, container_id=)`;
    a container the upstream cannot find fails the query, saying which."""
    number = ctx.query.params["container_id"]
    try:
        body = ctx.call(lambda api, sid: operation(api, sid, container_id=number))
    except UpstreamRejected as exc:
        raise QueryFailed(f"Container {number}: {exc.readable()}") from None
    return number, body


def timeline(ctx: StepContext) -> Outcome:
    query = ctx.query
    number, body = look_up(ctx, EModalClient.get_container_timeline)
    items = body.get("timeline") or []
    passed = body.get("passed_pregate")
    info = ContainerInfo(
        query=query,
        container_number=number,
        passed_pregate=passed if isinstance(passed, bool) else None,
        milestones=items,
        **parsing.milestone_dates(items),
    )
    return Outcome(DONE, write_infos(query, [info]), progress_done=1, progress_total=1)


def booking_number(ctx: StepContext) -> Outcome:
    query = ctx.query
    number, body = look_up(ctx, EModalClient.get_booking_number)
    booking = parsing.cell(body.get("booking_number"))
    info = ContainerInfo(
        query=query,
        container_number=number,
        booking_number=booking[:40],
        success=bool(booking),
        error="" if booking else str(body.get("message") or "No booking number for it.")[:255],
    )
    return Outcome(DONE, write_infos(query, [info]), progress_done=1, progress_total=1)


TIMELINE = register(
    QueryKind(
        code="timeline",
        label="Container timeline",
        params=OneContainer,
        steps={"timeline": Step(timeline, "Reading the container's timeline", LOOKUP_SECONDS)},
        first_step="timeline",
        help_text="One container's milestones and whether it passed pregate.",
        order=40,
    )
)
BOOKING_NUMBER = register(
    QueryKind(
        code="booking_number",
        label="Booking number",
        params=OneContainer,
        steps={
            "booking_number": Step(booking_number, "Looking up the booking number", LOOKUP_SECONDS)
        },
        first_step="booking_number",
        help_text="The booking number of one export container.",
        order=50,
    )
)
