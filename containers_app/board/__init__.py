"""Bringing the board up to date when a run ends: what the run saw is merged into each
container's latest known state, what changed is kept as history, and what people and other
systems may want to hear about is recorded as events — once each (stable keys) — in the
outbox, in the merge's own transaction (the dispatcher turns them into e-mails and webhooks).

In three steps, one module each: `observe` reads what the run saw, `merge` works out the
board's changes and events in memory, `orchestrate` runs the two under the account's lock and
stores the result (and records the day's due dates of every account).

Runs by a task (`tasks.update_board`) after the query has ended, never in the query's path.
Each account's update holds the account's row lock, so two runs ending together are merged one
after the other, and a run older than what the board already shows changes nothing.
"""

from .merge import terminal_code
from .observe import SHEET_FIELDS
from .orchestrate import BoardUpdate, record_due_dates, update_board

__all__ = [
    "SHEET_FIELDS",
    "BoardUpdate",
    "record_due_dates",
    "terminal_code",
    "update_board",
]
