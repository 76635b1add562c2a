"""What the query engine tells the rest of the portal, without knowing who listens."""

from django.dispatch import Signal

# A runner is about to run a step of a query. Keyword arguments: `query_id`, `kind`, `step`.
step_started = Signal()

# A step of a query was run (its outcome recorded). Keyword arguments: `query_id`, `kind`,
# `step` (the step's name), `outcome` ("done", "retry", "waiting", "failed", "cancelled",
# "claim lost"), `duration` (seconds, upstream call and recording together). Sent after the
# step's transaction; receivers must be quick and must not raise.
step_finished = Signal()

# A query ended: succeeded, failed or cancelled. Keyword argument: `query` (the Query, its
# final status set). Sent once per query, after the commit that ended it, with send_robust:
# a receiver that fails is logged and never holds up the query. Receivers that do slow work
# (e-mail, webhooks) enqueue a task for it.
query_finished = Signal()
