"""What the API's container endpoints read — the one seam to switch to the container board.

Until the board (issue #15: a per-container merged-state table and its event history) lands,
"the board" is the containers of the latest runs: for each account the caller may see, the
rows of its latest successful `containers` or `availability` query, and a container's history
is what change detection recorded about it run after run (`ContainerChange`). When the board
exists, these two functions read its tables instead; the views, serializers, filters and
tests of /api/v1/containers/ stay as they are (the rows keep the fields below).
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, OuterRef, QuerySet, Subquery

from queries_app.access import visible_accounts
from queries_app.models import ContainerChange, ContainerRow, Query
from queries_app.selectors import annotate_containers

# The kinds whose runs list all of an account's containers.
CONTAINER_KINDS = ("containers", "availability")
HISTORY_LIMIT = 100


def latest_runs(user: Any, *, account_id: int | None = None) -> QuerySet[Query]:
    """Each visible account's latest successful run that listed its containers."""
    accounts = visible_accounts(user)
    if account_id is not None:
        accounts = accounts.filter(pk=account_id)
    latest = (
        Query.objects.filter(
            account=OuterRef("pk"), kind__in=CONTAINER_KINDS, status=Query.Status.SUCCEEDED
        )
        .order_by("-finished_at", "-pk")
        .values("pk")[:1]
    )
    run_ids = accounts.annotate(run=Subquery(latest)).exclude(run=None).values("run")
    return Query.objects.filter(pk__in=run_ids)


def board_containers(user: Any, *, account_id: int | None = None) -> QuerySet[ContainerRow]:
    """The containers the caller may see, one row per account and container, with the fields
    of a results table (slot check and change joined) plus `account_id`, `query_id` and
    `observed_at` (when that state was read from E-Modal). Filter and sort it like a query's
    containers (`queries_app.selectors.filter_containers`, `tables.sort_containers`)."""
    rows = ContainerRow.objects.filter(query__in=latest_runs(user, account_id=account_id))
    return annotate_containers(rows).annotate(
        account_id=F("query__account_id"), observed_at=F("query__finished_at")
    )


def container_history(user: Any, number: str) -> QuerySet[ContainerChange]:
    """What happened to one container in the accounts the caller may see, newest first: each
    change a run found (new, changed with before and after, gone) and when."""
    return (
        ContainerChange.objects.filter(
            container_number=number,
            query__account__in=visible_accounts(user),
            query__status=Query.Status.SUCCEEDED,
        )
        .annotate(account_id=F("query__account_id"), occurred_at=F("query__finished_at"))
        .order_by("-query__finished_at", "-pk")[:HISTORY_LIMIT]
    )
