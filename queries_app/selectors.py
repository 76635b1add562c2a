"""Reads for the pages and exports: which queries a person may see, a query's result tables,
the containers table's rows with their checks and changes joined in SQL. Writes live in the
services; presentation in `tables.py` and the views.

A run's changes are what the board's merge of it observed (`history.models.HistoryEntry`, the
one change model, with the run as its `query`): new, back, gone, which fields moved."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from django.db.models import Exists, F, JSONField, OuterRef, QuerySet, Subquery

from history.models import HistoryEntry
from sessions_app.models import Account
from sessions_app.secret_names import account_secrets

from .models import AppointmentCheck, ContainerRow, Query

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

# A containers table's sorts, as the page's column headers and the API's `sort` name them, each
# with what it orders by (a field of ContainerRow or an annotation of `annotate_containers`).
CONTAINER_SORTS: dict[str, str] = {
    "container_number": "container_number",
    "change": "change_kind",
    "trade_type": "trade_type",
    "status": "status",
    "holds": "holds",
    "last_free_day": "last_free_day",
    "good_through": "good_through",
    "earliest_slot": "earliest_slot",
    "slot_count": "slot_count",
    "pregate_ticket": "pregate_ticket",
    "pregate_status": "pregate_status",
    "gate_status": "gate_status",
    "origin": "origin",
    "destination": "destination",
    "current_location": "current_location",
    "line": "line",
    "vessel_name": "vessel_name",
    "vessel_code": "vessel_code",
    "voyage": "voyage",
    "size_type": "size_type",
    "fees": "fees",
    "tags": "tags",
}
DEFAULT_CONTAINER_SORT = "container_number"


def own_account(user: Any) -> Account | None:
    return Account.objects.defer(*Account.SECRET_FIELDS).filter(user=user).first()


def visible_queries(user: Any) -> QuerySet[Query]:
    """The queries a person may see, ready for a page: with their account's name, without
    the account's secrets or a long run's plan (`state`, which no page shows)."""
    return (
        Query.objects.visible_to(user)
        .select_related("account__user")
        .defer("state", *account_secrets("account"))
    )


def result_counts(query: Query) -> dict[str, int]:
    return {
        "containers": query.containers.count(),
        "infos": query.infos.count(),
        "checks": query.checks.count(),
        "appointments": query.appointments.count(),
        "changes": query.changes.count(),
    }


def run_changes(query: Query) -> QuerySet[HistoryEntry]:
    """What the board observed changing when it merged this run, by container number."""
    return HistoryEntry.objects.filter(query=query).order_by("container_number", "id")


def container_trades(query: Query) -> list[str]:
    """The trade types among a query's containers (the filter's choices)."""
    return list(
        ContainerRow.objects.filter(query=query)
        .exclude(trade_type="")
        .order_by("trade_type")
        .values_list("trade_type", flat=True)
        .distinct()
    )


class CheckAndChange(TypedDict):
    """What `annotate_containers` adds to each row: its query's slot check and change."""

    earliest_slot: datetime | None
    slot_count: int | None
    check_outcome: str | None
    change_kind: str | None
    change_fields: dict[str, Any] | None


if TYPE_CHECKING:
    AnnotatedRow = WithAnnotations[ContainerRow, CheckAndChange]


def annotated_containers(query: Query) -> QuerySet[AnnotatedRow]:
    """The query's containers with their slot check and change joined in SQL (one query for
    any number of rows; both joins use the (query, container_number) unique indexes)."""
    return annotate_containers(ContainerRow.objects.filter(query=query))


def annotate_containers(rows: QuerySet[ContainerRow]) -> QuerySet[AnnotatedRow]:
    """Container rows (of one query or several) with their own query's slot check and change."""
    checks = AppointmentCheck.objects.filter(
        query=OuterRef("query"), container_number=OuterRef("container_number")
    )
    changes = HistoryEntry.objects.filter(
        query=OuterRef("query"), container_number=OuterRef("container_number")
    )
    return (
        # The raw sheet row is kept for audit, never shown.
        rows.defer("raw").annotate(
            earliest_slot=Subquery(checks.values("earliest_slot")[:1]),
            slot_count=Subquery(checks.values("slot_count")[:1]),
            check_outcome=Subquery(checks.values("outcome")[:1]),
            change_kind=Subquery(changes.values("change")[:1]),
            change_fields=Subquery(changes.values("fields")[:1], output_field=JSONField()),
        )
    )


def filter_containers(
    rows: QuerySet[AnnotatedRow], filters: dict[str, Any], *, today: date
) -> QuerySet[AnnotatedRow]:
    if filters.get("q"):
        rows = rows.filter(container_number__icontains=filters["q"].strip())
    if filters.get("holds") in ("yes", "no"):
        rows = rows.filter(holds=filters["holds"] == "yes")
    if filters.get("trade"):
        rows = rows.filter(trade_type=filters["trade"])
    if filters.get("lfd_within") is not None:
        # Overdue containers are the most urgent, so "within N days" keeps them.
        rows = rows.filter(last_free_day__lte=today + timedelta(days=filters["lfd_within"]))
    if filters.get("slot") in ("yes", "no"):
        has_slot = Exists(
            AppointmentCheck.objects.filter(
                query=OuterRef("query"),
                container_number=OuterRef("container_number"),
                slot_count__gt=0,
            )
        )
        if filters["slot"] == "yes":
            rows = rows.filter(has_slot)
        else:
            # "No slot" only where a check said so: an unknown answer is not "none".
            unknown = Exists(
                AppointmentCheck.objects.filter(
                    query=OuterRef("query"),
                    container_number=OuterRef("container_number"),
                    outcome=AppointmentCheck.Outcome.UNKNOWN,
                )
            )
            rows = rows.filter(~has_slot & ~unknown)
    if filters.get("changed") == "yes":
        rows = rows.filter(
            Exists(
                HistoryEntry.objects.filter(
                    query=OuterRef("query"), container_number=OuterRef("container_number")
                )
            )
        )
    return rows


def sort_containers(
    rows: QuerySet[AnnotatedRow], key: str, descending: bool
) -> QuerySet[AnnotatedRow]:
    """Rows in the order of one of `CONTAINER_SORTS`."""
    expression = F(CONTAINER_SORTS[key])
    # Blanks go last either way: a dispatcher sorting by last free day wants dates first.
    ordered = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    # The container number breaks ties so that pages do not overlap.
    return rows.order_by(ordered, "container_number")
