"""The step engine: runs any kind's steps (asking the registry), with no knowledge of any
particular kind. `claims` (who runs a query), `scheduler` (which step runs next), `runner`
(running a step), `recording` (writing its outcome), `recovery` (the sweep and wake-ups);
`steps` is the contract a kind's steps follow."""

from .claims import enqueue_step
from .recording import MAX_STEP_FAILURES, announce_end
from .recovery import (
    accounts_with_live_queries,
    on_browser_freed,
    sweep_queries,
    wake_waiting_queries,
)
from .runner import describe_steps, run_queries, run_query_step
from .steps import DONE, Outcome, QueryFailed, StepContext

__all__ = [
    "DONE",
    "MAX_STEP_FAILURES",
    "Outcome",
    "QueryFailed",
    "StepContext",
    "accounts_with_live_queries",
    "announce_end",
    "describe_steps",
    "enqueue_step",
    "on_browser_freed",
    "run_queries",
    "run_query_step",
    "sweep_queries",
    "wake_waiting_queries",
]
