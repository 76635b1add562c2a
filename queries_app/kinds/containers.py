"""Containers: the account's containers sheet (scrolled to the end), stored as typed rows. What
changed since the account's previous sheet is the board's to say: its merge of the run records
the run's changes (`history`)."""

from __future__ import annotations

from typing import Any

from sessions_app.upstream import UpstreamRejected

from .. import parsing
from ..engine.steps import DONE, Outcome, QueryFailed, StepContext
from ..registry import Feed, QueryKind, Step, register
from ..results import container_rows, note_terminal_codes, store_container_rows, terminal_codes
from .params import NoParams

# The contract's timings (upstream seconds): a full scroll of the sheet takes 90-180 s.
SHEET_SECONDS = 165


def read_containers(ctx: StepContext) -> tuple[dict[str, dict[str, Any]], Any, str]:
    """The account's containers, as ContainerRow values by number; a write that stores them
    with the sheet and records the terminal codes it names; and the run's note on the rows
    left out (a container number that is not one), if any."""
    try:
        meta = ctx.call(lambda api, sid: api.get_containers(sid))
    except UpstreamRejected as exc:
        raise QueryFailed(f"E-Modal gave no containers sheet: {exc.readable()}") from None
    content = ctx.download(meta["file_url"])
    refused: list[str] = []
    rows = container_rows(content, refused=refused)
    codes = terminal_codes(rows)
    query = ctx.query

    def write() -> None:
        store_container_rows(query, rows, content)
        note_terminal_codes(codes)

    return rows, write, parsing.refused_numbers_note("The containers sheet", refused)


def containers(ctx: StepContext) -> Outcome:
    _, write, note = read_containers(ctx)
    return Outcome(next_step=DONE, write=write, progress_done=1, progress_total=1, note=note)


def compared(ctx: StepContext) -> Outcome:
    """A run stored at its former last step (comparing with the previous run, which the board's
    merge does now) ends there."""
    return Outcome(DONE)


# The former last step, kept for runs stored at it: nothing runs next.
CHANGES_STEP = Step(compared, "Comparing with the previous run")

CONTAINERS = register(
    QueryKind(
        code="containers",
        label="Containers",
        params=NoParams,
        steps={
            "containers": Step(containers, "Reading the containers sheet", SHEET_SECONDS),
            "changes": CHANGES_STEP,
        },
        first_step="containers",
        help_text="Every container of the account, with what changed since the last run.",
        order=20,
        feeds_board=frozenset({Feed.SHEET}),
    )
)
