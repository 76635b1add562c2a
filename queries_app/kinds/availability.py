"""The availability run, as operators run it (docs/upstream-contract.md, "The availability
run"): the account's containers; those with Holds `NO` and no pregate ticket; one bulk-info
call for them; an appointment check per container (move type and terminal by the operators'
rule); the account's appointments; what changed since the last run. It never books anything,
one container's failure never fails the rest, and progress is one container at a time."""

from __future__ import annotations

from typing import Any

import queries_app.kinds.checking as checking
from sessions_app.upstream import UpstreamError

from .. import parsing
from ..engine.steps import DONE, Outcome, QueryFailed, StepContext
from ..models import ContainerInfo, Query
from ..registry import Feed, QueryKind, Step, register
from ..results import TERMINAL_FIELDS
from ..terminal_rule import operators_terminal
from .appointments import SHEET_SECONDS as APPOINTMENTS_SECONDS
from .appointments import read_appointments
from .bulk_info import SECONDS_PER_CONTAINER, read_bulk_info
from .containers import CHANGES_STEP, SHEET_SECONDS, read_containers
from .params import NoParams

PREGATE_UNKNOWN = (
    "Pregate status unknown: checked as a pick-up, as for a container not through pregate."
)
# Containers to check in a run whose container list is not known yet (for its work left).
UNKNOWN_CHECKS = 40


class AvailabilityParams(NoParams):
    needs_appointment_details = True


def containers(ctx: StepContext) -> Outcome:
    rows, write, note = read_containers(ctx)
    candidates = [
        {
            "container": number,
            "trade_type": fields["trade_type"],
            **{name: fields[name] for name in TERMINAL_FIELDS},
            "line": fields["line"],
            "size_type": fields["size_type"],
        }
        for number, fields in rows.items()
        if parsing.is_availability_candidate(fields)
    ]
    return Outcome(
        next_step="bulk_info" if candidates else "appointments",
        write=write,
        progress_done=0,
        progress_total=len(candidates),
        state={"candidates": candidates},
        note=note,
    )


def bulk_info(ctx: StepContext) -> Outcome:
    query = ctx.query
    candidates = query.state["candidates"]
    imports = [c["container"] for c in candidates if c["trade_type"] != "EXPORT"]
    exports = [c["container"] for c in candidates if c["trade_type"] == "EXPORT"]
    infos, write, note = read_bulk_info(ctx, imports, exports)
    by_number = {info.container_number: info for info in infos}
    checks = [plan_check(c, by_number.get(c["container"])) for c in candidates]
    return Outcome(
        next_step="appointment_check" if checks else "appointments",
        write=write,
        progress_done=0,
        progress_total=len(checks),
        state={**query.state, "checks": checks},
        note=note,
    )


def plan_check(candidate: dict[str, Any], info: ContainerInfo | None) -> dict[str, Any]:
    """Move type and terminal for one container, as operators decide them: an import not
    through pregate is picked up full, one through pregate drops its empty, an export drops
    full; the terminal by `operators_terminal`. The terminal is kept as a code: it is named
    when the check runs."""
    through_pregate = bool(info and info.passed_pregate)
    terminal = operators_terminal(
        trade_type=candidate["trade_type"],
        passed_pregate=through_pregate,
        origin=candidate["origin"],
        destination=candidate["destination"],
        current_location=candidate.get("current_location", ""),
    )
    if candidate["trade_type"] == "EXPORT":
        return {
            "container": candidate["container"],
            "container_type": "export",
            "move_type": "DROP FULL",
            "terminal_code": terminal,
            "booking_number": info.booking_number if info else "",
        }
    return {
        "container": candidate["container"],
        "container_type": "import",
        "move_type": "DROP EMPTY" if through_pregate else "PICK FULL",
        "terminal_code": terminal,
        "booking_number": "",
        "line": candidate.get("line", ""),
        "equip_size": candidate.get("size_type", ""),
        # The rule takes an unknown pregate status as "not through pregate"; the result says
        # the status was not known rather than passing it off as read.
        "note": "" if info and info.passed_pregate is not None else PREGATE_UNKNOWN,
    }


def planned(query: Query) -> checking.Checks:
    total = query.progress_total
    return checking.Checks(
        items=query.state["checks"],
        index=query.progress_done,
        after=lambda done: "appointment_check" if done < total else "appointments",
        single=False,
    )


def appointment_check(ctx: StepContext) -> Outcome:
    return checking.check(ctx, planned(ctx.query))


def give_up_check(query: Query, reason: str) -> Outcome:
    return checking.give_up(query, planned(query), reason)


def appointments(ctx: StepContext) -> Outcome:
    """The run's last upstream call: whatever becomes of it, the run keeps its checks. A
    passing failure is tried again (then `give_up_appointments`); any other is a note."""
    try:
        return Outcome(next_step=DONE, write=read_appointments(ctx))
    except QueryFailed as exc:
        reason = str(exc)
    except UpstreamError as exc:
        if exc.retryable or not exc.counts_as_failure:
            raise
        reason = exc.first_line()
    return give_up_appointments(ctx.query, reason)


def give_up_appointments(query: Query, reason: str) -> Outcome:
    """A run whose appointments sheet keeps failing keeps its checks: it goes on without the
    sheet, saying so."""
    return Outcome(next_step=DONE, note=f"The account's appointments were not read: {reason}")


def work_left(query: Query) -> int:
    """Upstream seconds still to go, from the contract's timings."""
    step, state = query.step, query.state or {}
    per_check = checking.CHECK_SECONDS
    if step == "containers":
        per_container = SECONDS_PER_CONTAINER + per_check
        return SHEET_SECONDS + per_container * UNKNOWN_CHECKS + APPOINTMENTS_SECONDS
    if step == "bulk_info":
        per_container = SECONDS_PER_CONTAINER + per_check
        return per_container * len(state.get("candidates", [])) + APPOINTMENTS_SECONDS
    if step == "appointment_check":
        left = max(query.progress_total - query.progress_done, 0)
        return per_check * left + APPOINTMENTS_SECONDS
    if step == "appointments":
        return APPOINTMENTS_SECONDS
    return 0


AVAILABILITY = register(
    QueryKind(
        code="availability",
        label="Availability run",
        params=AvailabilityParams,
        steps={
            "containers": Step(containers, "Reading the containers sheet", SHEET_SECONDS),
            "bulk_info": Step(bulk_info, "Reading container details"),
            "appointment_check": Step(
                appointment_check,
                "Checking appointment slots",
                checking.CHECK_SECONDS,
                give_up=give_up_check,
                per_item=True,
            ),
            "appointments": Step(
                appointments,
                "Reading the appointments sheet",
                APPOINTMENTS_SECONDS,
                give_up=give_up_appointments,
            ),
            "changes": CHANGES_STEP,
        },
        first_step="containers",
        work_left=work_left,
        help_text="Containers with no holds and no pregate ticket, checked for slots.",
        order=10,
        feeds_board=frozenset({Feed.SHEET, Feed.DETAILS, Feed.CHECKS}),
    )
)
