"""Reads for the board's pages and exports: which containers a person may see, the board's rows
(one indexed read of the board's own table), a container's history, checks and runs."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from queries_app import access
from queries_app.models import AppointmentCheck, ContainerInfo, ContainerRow, Query
from sessions_app.models import Account

from .board import BOARD_KINDS
from .models import VIEW_CONTAINERS, Container, RecurringRun, Watch

ACCOUNT_SECRETS = [f"account__{name}" for name in Account.SECRET_FIELDS]


def sees_all(user: Any) -> bool:
    return access.sees_others(user, VIEW_CONTAINERS)


def visible_containers(user: Any) -> QuerySet[Container]:
    """The containers a person may see, ready for a page: with their terminal's name, their
    account's name (never its secrets), and whether this person watches them."""
    return (
        Container.objects.visible_to(user)
        .select_related("terminal", "account__user")
        .defer(*ACCOUNT_SECRETS)
        .annotate(watched=Exists(Watch.objects.filter(user=user, container=OuterRef("pk"))))
    )


def visible_accounts(user: Any) -> QuerySet[Account]:
    return access.visible_accounts(user, VIEW_CONTAINERS)


def manageable_accounts(user: Any) -> QuerySet[Account]:
    """Accounts whose recurring runs this person may set: their own; staff allowed to start
    queries for any account (and to see their containers), every account."""
    return access.runnable_accounts(user, VIEW_CONTAINERS)


def recurring_runs(user: Any) -> QuerySet[RecurringRun]:
    return (
        RecurringRun.objects.filter(account__in=manageable_accounts(user).values("pk"))
        .select_related("account__user")
        .defer(*ACCOUNT_SECRETS)
        # What the last run says though it succeeded (e.g. its appointments not read).
        .annotate(last_query_notes=F("last_query__notes"))
        .order_by("account__user__username", "kind", "id")
    )


def start_of_day(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def filter_board(
    rows: QuerySet[Container], filters: dict[str, Any], *, today: date, zone: tzinfo
) -> QuerySet[Container]:
    show = filters.get("show") or ""
    if show == "gone":
        rows = rows.filter(gone_at__isnull=False)
    elif show != "all":
        rows = rows.filter(gone_at__isnull=True)
    if filters.get("account") is not None:
        rows = rows.filter(account=filters["account"])
    if filters.get("q"):
        rows = rows.filter(container_number__icontains=filters["q"].strip())
    if filters.get("due_within") is not None:
        # Overdue containers are the most urgent: "within N days" keeps them.
        rows = rows.filter(last_free_day__lte=today + timedelta(days=filters["due_within"]))
    if filters.get("holds") in ("yes", "no"):
        rows = rows.filter(holds=filters["holds"] == "yes")
    if filters.get("slot") == "yes":
        rows = rows.filter(slot_count__gt=0)
    elif filters.get("slot") == "no":
        rows = rows.filter(Q(slot_count=0) | Q(slot_count__isnull=True))
    if filters.get("terminal"):
        rows = rows.filter(terminal_code=filters["terminal"])
    if filters.get("changed_since"):
        rows = rows.filter(last_change_at__gte=start_of_day(filters["changed_since"], zone))
    if filters.get("watched") == "yes":
        rows = rows.filter(watched=True)
    return rows


def terminal_choices(rows: QuerySet[Container]) -> list[tuple[str, str]]:
    """The terminals among these containers (the filter's choices), by name."""
    pairs = (
        rows.exclude(terminal_code="")
        .order_by()
        .values_list("terminal_code", "terminal__name")
        .distinct()
    )
    named = sorted({(code, name or "") for code, name in pairs}, key=lambda p: p[1] or p[0])
    return [(code, f"{name} ({code})" if name else code) for code, name in named]


def board_summary(rows: QuerySet[Container], *, today: date) -> dict[str, int]:
    """Counts for the board's quick filters, in one statement."""
    present = rows.filter(gone_at__isnull=True).order_by()
    return present.aggregate(
        total=Count("pk"),
        overdue=Count("pk", filter=Q(last_free_day__lt=today)),
        due_today=Count("pk", filter=Q(last_free_day=today)),
        due_tomorrow=Count("pk", filter=Q(last_free_day=today + timedelta(days=1))),
        due_2=Count("pk", filter=Q(last_free_day__lte=today + timedelta(days=2))),
        holds=Count("pk", filter=Q(holds=True)),
        slots=Count("pk", filter=Q(slot_count__gt=0)),
    )


# How much of a container's history its page (and the API) shows, newest first.
HISTORY_LIMIT = 200
# How many of an account's runs the container page looks through (newest first).
RECENT_RUNS = 30


def recent_runs(container: Container) -> list[int]:
    """The account's latest successful runs that can have seen the container (index on
    account, kind, status, created)."""
    return list(
        Query.objects.filter(
            account_id=container.account_id,
            kind__in=BOARD_KINDS,
            status=Query.Status.SUCCEEDED,
        )
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[:RECENT_RUNS]
    )


def container_runs(container: Container, runs: list[int]) -> list[ContainerRow]:
    """The sheet rows of the container in those runs (each a look-up on the (query, number)
    unique index), with their query."""
    return list(
        ContainerRow.objects.filter(query_id__in=runs, container_number=container.container_number)
        .select_related("query")
        .defer("raw", "query__state", "query__params")
        .order_by("-query__created_at", "-query_id")
    )


def container_checks(container: Container, runs: list[int]) -> list[AppointmentCheck]:
    return list(
        AppointmentCheck.objects.filter(
            query_id__in=runs, container_number=container.container_number
        )
        .select_related("query", "screenshot")
        .defer("query__state", "query__params")
        .order_by("-query__created_at", "-query_id")
    )


def container_milestones(container: Container, runs: list[int]) -> ContainerInfo | None:
    """The latest details of the container that list its milestones."""
    infos = (
        ContainerInfo.objects.filter(
            query_id__in=runs, container_number=container.container_number, success=True
        )
        .select_related("query")
        .defer("query__state", "query__params")
        .order_by("-query__created_at", "-query_id")
    )
    return next((info for info in infos if info.milestones), None)
