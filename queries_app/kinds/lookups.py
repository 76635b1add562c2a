"""Look-ups of one container: its timeline (milestones, pregate), its booking number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sessions_app.upstream import EModalClient, UpstreamRejected

from .. import parsing
from ..engine.steps import DONE, Outcome, QueryFailed, StepContext
from ..models import ContainerInfo, Query
from ..registry import Feed, QueryKind, Step, register
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


def unread(query: Query, number: str, problems: list[str]) -> Outcome:
    """An answer whose fields have the wrong types: the container's row says so (nothing of
    it is stored), and so does the run."""
    info = ContainerInfo(
        query=query, container_number=number, success=False, error=parsing.unreadable(problems)
    )
    return Outcome(
        DONE,
        write_infos(query, [info]),
        progress_done=1,
        progress_total=1,
        note=f"Container {number}: {info.error}",
    )


def timeline(ctx: StepContext) -> Outcome:
    number, body = look_up(ctx, EModalClient.get_container_timeline)
    return timeline_outcome(ctx.query, number, body)


def timeline_outcome(query: Query, number: str, body: dict[str, Any]) -> Outcome:
    items = body.get("timeline")
    problems = parsing.wrong_types(body, {"passed_pregate": parsing.FLAG_OR_NULL})
    problems += parsing.timeline_problems(items)
    if problems:
        return unread(query, number, problems)
    info = ContainerInfo(
        query=query,
        container_number=number,
        passed_pregate=body.get("passed_pregate"),
        milestones=items or [],
        unknown_milestones=parsing.unknown_milestones(items or []),
        **parsing.milestone_dates(items or []),
    )
    return Outcome(DONE, write_infos(query, [info]), progress_done=1, progress_total=1)


def booking_number(ctx: StepContext) -> Outcome:
    number, body = look_up(ctx, EModalClient.get_booking_number)
    return booking_outcome(ctx.query, number, body)


def booking_outcome(query: Query, number: str, body: dict[str, Any]) -> Outcome:
    problems = parsing.wrong_types(
        body, {"booking_number": parsing.TEXT_OR_NULL, "message": parsing.TEXT_OR_NULL}
    )
    if problems:
        return unread(query, number, problems)
    booking = parsing.cell(body.get("booking_number"))
    info = ContainerInfo(
        query=query,
        container_number=number,
        booking_number=booking[:40],
        success=bool(booking),
        error="" if booking else (body.get("message") or "No booking number for it.")[:255],
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
        feeds_board=frozenset({Feed.DETAILS}),
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
        feeds_board=frozenset({Feed.DETAILS}),
    )
)
