"""Reads for the board's pages and exports: which containers a person may see, the board's rows
(one indexed read of the board's own table), a container's history, checks and runs."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from queries_app import access
from queries_app.models import AppointmentCheck, ContainerInfo, ContainerRow, Query, RecurringRun
from queries_app.registry import board_kinds
from sessions_app.models import Account, AccountQuerySet
from sessions_app.secret_names import account_secrets

from .models import VIEW_CONTAINERS, Container, Watch
from .money import ZERO, Tariffs
from .verdict import NEEDS_PICKUP, Pickup


def sees_all(user: Any) -> bool:
    return access.sees_others(user, VIEW_CONTAINERS)


def visible_containers(user: Any) -> QuerySet[Container]:
    """The containers a person may see, ready for a page: with their terminal's name, their
    account's name (never its secrets), and whether this person watches them."""
    return (
        Container.objects.visible_to(user)
        .select_related("terminal", "account__user")
        .defer(*account_secrets("account"))
        .annotate(watched=Exists(Watch.objects.filter(user=user, container=OuterRef("pk"))))
    )


def visible_accounts(user: Any) -> AccountQuerySet:
    return access.visible_accounts(user, VIEW_CONTAINERS)


def manageable_accounts(user: Any) -> QuerySet[Account]:
    """Accounts whose recurring runs this person may set: their own; staff allowed to start
    queries for any account (and to see their containers), every account."""
    return access.runnable_accounts(user, VIEW_CONTAINERS)


def recurring_runs(user: Any) -> QuerySet[RecurringRun]:
    return (
        RecurringRun.objects.filter(account__in=manageable_accounts(user).values("pk"))
        .select_related("account__user")
        .defer(*account_secrets("account"))
        # What the last run says though it succeeded (e.g. its appointments not read).
        .annotate(last_query_notes=F("last_query__notes"))
        .order_by("account__user__username", "kind", "id")
    )


def start_of_day(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


# The board's `pickup` filter: a verdict, or NEEDS for both verdicts that still need a pickup.
NEEDS = "needs"
# The quick filters' due windows, in days from today (None: open), which do not overlap.
DUE_WINDOWS: dict[str, tuple[int | None, int | None]] = {
    "overdue": (None, -1),
    "today": (0, 0),
    "soon": (1, 2),
}


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
    pickup = filters.get("pickup") or ""
    if pickup == NEEDS:
        rows = rows.filter(pickup__in=NEEDS_PICKUP)
    elif pickup in Pickup.values:
        rows = rows.filter(pickup=pickup)
    if filters.get("due_within") is not None:
        # Overdue containers are the most urgent: "within N days" keeps them. Only containers
        # that still need a pickup are due at all.
        rows = rows.filter(
            pickup__in=NEEDS_PICKUP,
            last_free_day__lte=today + timedelta(days=filters["due_within"]),
        )
    due = filters.get("due") or ""
    if due in DUE_WINDOWS:
        first, last = DUE_WINDOWS[due]
        window = Q(pickup__in=NEEDS_PICKUP, last_free_day__isnull=False)
        if first is not None:
            window &= Q(last_free_day__gte=today + timedelta(days=first))
        if last is not None:
            window &= Q(last_free_day__lte=today + timedelta(days=last))
        rows = rows.filter(window)
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
    """Counts for the board's quick filters, in one statement. Due dates count only for
    containers that still need a pickup; the due windows do not overlap."""
    present = rows.filter(gone_at__isnull=True).order_by()
    needs = Q(pickup__in=NEEDS_PICKUP)
    counts = {f"pickup_{value}": Count("pk", filter=Q(pickup=value)) for value in Pickup.values}
    return present.aggregate(
        total=Count("pk"),
        needs=Count("pk", filter=needs),
        overdue=Count("pk", filter=needs & Q(last_free_day__lt=today)),
        due_today=Count("pk", filter=needs & Q(last_free_day=today)),
        due_soon=Count(
            "pk",
            filter=needs
            & Q(
                last_free_day__gte=today + timedelta(days=1),
                last_free_day__lte=today + timedelta(days=2),
            ),
        ),
        holds=Count("pk", filter=Q(pickup=Pickup.ON_HOLD)),
        slots=Count("pk", filter=needs & Q(slot_count__gt=0)),
        **counts,
    )


def money_at_risk(rows: QuerySet[Container], tariffs: Tariffs, *, today: date) -> dict[str, Any]:
    """What the containers still to pull cost so far and what another day adds, over those
    whose free time is over or ends today (the others cost nothing yet); how many of those
    have no tariff (no amount is made up for them). One grouped read: what a container costs
    depends on its terminal and last free day alone."""
    groups = (
        rows.filter(gone_at__isnull=True, pickup__in=NEEDS_PICKUP, last_free_day__lte=today)
        .order_by()
        .values_list("terminal_id", "last_free_day")
        .annotate(count=Count("pk"))
    )
    to_date, per_day, costing, without = ZERO, ZERO, 0, 0
    for terminal_id, last_free_day, count in groups:
        owed = tariffs.charges_of(
            pickup=NEEDS_PICKUP[0],
            last_free_day=last_free_day,
            terminal_id=terminal_id,
            today=today,
        )
        if owed is None:
            without += count
            continue
        to_date += owed.to_date * count
        per_day += owed.per_day * count
        costing += count if owed.to_date or owed.per_day else 0
    return {"to_date": to_date, "per_day": per_day, "costing": costing, "no_tariff": without}


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
            kind__in=board_kinds(),
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
