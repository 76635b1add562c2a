"""Reads for the board's pages and exports: which containers a person may see, the board's rows
(one indexed read of the board's own table), a container's history, checks and runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from django.db.models import (
    Case,
    Count,
    DecimalField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone

from queries_app import access
from queries_app.models import AppointmentCheck, ContainerInfo, ContainerRow, Query, RecurringRun
from queries_app.registry import board_kinds
from sessions_app.models import Account, AccountQuerySet
from sessions_app.secret_names import account_secrets

from .models import VIEW_CONTAINERS, Container, Watch
from .money import ZERO, Tariffs
from .verdict import NEEDS_PICKUP, Pickup

if TYPE_CHECKING:
    from .models import BoardContainer


def sees_all(user: Any) -> bool:
    return access.sees_others(user, VIEW_CONTAINERS)


def visible_containers(user: Any) -> QuerySet[BoardContainer]:
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


# The board's sorts, as the page's column headers and the API's `sort` name them, each with what
# it orders by (a leading - : the most first).
SORTS: dict[str, str] = {
    "container": "container_number",
    "account": "account__user__username",
    "status": "status",
    "holds": "holds",
    "lfd": "last_free_day",
    "pickup": "pickup",
    # Charges to date, then what another day costs (computed: see `sort_by_money`).
    "money": "-charges",
    "terminal": "terminal_code",
    "slot": "earliest_slot",
    "changed": "-last_change_at",
    "seen": "-sheet_seen_at",
}


def parse_sort(value: str) -> tuple[str, bool]:
    """A sort as the page's headers and the API's `sort` give it ("-lfd": by last free day,
    descending); an unknown one is the default."""
    descending = value.startswith("-")
    key = value.removeprefix("-")
    if key not in SORTS:
        return DEFAULT_SORT, False
    return key, descending


def sort_by_money(
    rows: QuerySet[BoardContainer], descending: bool, *, today: date, tariffs: Tariffs
) -> QuerySet[BoardContainer]:
    """Most money first (charges so far, then what another day adds), then the soonest last
    free day. Only containers still to pull whose free time is over or ends today can cost
    anything, and what they cost depends on their terminal and last free day alone: the amount
    of each such pair is computed here and handed to the database as one CASE (a few hundred
    branches at most, whatever the number of containers)."""
    pairs = (
        rows.filter(gone_at__isnull=True, pickup__in=NEEDS_PICKUP, last_free_day__lte=today)
        .exclude(terminal_id__isnull=True)
        .order_by()
        .values_list("terminal_id", "last_free_day")
        .distinct()
    )
    so_far, per_day = [], []
    for terminal_id, lfd in pairs:
        owed = tariffs.charges_of(
            pickup=NEEDS_PICKUP[0], last_free_day=lfd, terminal_id=terminal_id, today=today
        )
        if owed is not None:
            match = Q(terminal_id=terminal_id, last_free_day=lfd)
            so_far.append(When(match, then=Value(owed.to_date)))
            per_day.append(When(match, then=Value(owed.per_day)))
    money = DecimalField(max_digits=14, decimal_places=2)
    costing = Q(gone_at__isnull=True, pickup__in=NEEDS_PICKUP)
    # A container gone from the list or with nothing to pull costs nothing, whatever its pair.
    quiet = When(~costing, then=Value(None))
    rows = rows.annotate(
        charges=Case(quiet, *so_far, default=Value(None), output_field=money),
        per_day=Case(quiet, *per_day, default=Value(None), output_field=money),
    )
    order = "asc" if descending else "desc"  # the natural order is the most first
    return rows.order_by(
        getattr(F("charges"), order)(nulls_last=True),
        getattr(F("per_day"), order)(nulls_last=True),
        F("last_free_day").asc(nulls_last=True),
        "container_number",
        "pk",
    )


def sort_rows(
    rows: QuerySet[BoardContainer],
    key: str,
    descending: bool,
    *,
    today: date | None = None,
    tariffs: Tariffs | None = None,
) -> QuerySet[BoardContainer]:
    if key == "money":
        return sort_by_money(
            rows,
            descending,
            today=today or timezone.localdate(),
            tariffs=tariffs if tariffs is not None else Tariffs.load(),
        )
    target = SORTS[key]
    natural_desc = target.startswith("-")
    expression = F(target.lstrip("-"))
    # Blanks last either way: a dispatcher sorting by last free day wants dates first.
    if natural_desc != descending:
        ordered = expression.desc(nulls_last=True)
    else:
        ordered = expression.asc(nulls_last=True)
    return rows.order_by(ordered, "container_number", "pk")


DEFAULT_SORT = "lfd"


def start_of_day(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


# The board's `pickup` filter: a verdict, or NEEDS for both verdicts that still need a pickup.
NEEDS = "needs"
PICKUP_FILTERS = [NEEDS, *Pickup.values]
# The board's `show` filter: containers gone from their list, or all (blank: those on it).
SHOWS = ["gone", "all"]
# The quick filters' due windows, in days from today (None: open), which do not overlap.
DUE_WINDOWS: dict[str, tuple[int | None, int | None]] = {
    "overdue": (None, -1),
    "today": (0, 0),
    "soon": (1, 2),
}


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows and in which order, as plain values: the board page's form and the
    API's query parameters each adapt their input to it (`from_input`). A blank filters nothing."""

    q: str = ""
    pickup: str = ""  # NEEDS or a verdict
    due: str = ""  # one of DUE_WINDOWS
    due_within: int | None = None  # days from today, overdue ones included
    holds: bool | None = None
    slot: bool | None = None  # with an available slot found by the latest check
    terminal: str = ""  # a terminal's code
    changed_since: date | None = None  # a day, in the reader's zone
    watched: bool = False  # only those the reader watches
    show: str = ""  # one of SHOWS; blank: those on their list
    account: Account | None = None
    sort: str = DEFAULT_SORT  # one of SORTS
    descending: bool = False

    @classmethod
    def from_input(cls, values: Mapping[str, Any], sort: str = "") -> BoardFilters:
        """From cleaned input (the filters' names; "yes"/"no" for the yes-or-no ones; blanks or
        None for no filter) and a sort as `parse_sort` reads it."""

        def yes_no(name: str) -> bool | None:
            return {"yes": True, "no": False}.get(values.get(name) or "")

        key, descending = parse_sort(sort)
        return cls(
            q=(values.get("q") or "").strip(),
            pickup=values.get("pickup") or "",
            due=values.get("due") or "",
            due_within=values.get("due_within"),
            holds=yes_no("holds"),
            slot=yes_no("slot"),
            terminal=values.get("terminal") or "",
            changed_since=values.get("changed_since"),
            watched=values.get("watched") == "yes",
            show=values.get("show") or "",
            account=values.get("account"),
            sort=key,
            descending=descending,
        )


def board_rows(
    rows: QuerySet[BoardContainer],
    filters: BoardFilters,
    *,
    today: date,
    zone: tzinfo,
    tariffs: Tariffs | None = None,
) -> QuerySet[BoardContainer]:
    """These containers filtered and sorted as `filters` say."""
    return sort_rows(
        filter_board(rows, filters, today=today, zone=zone),
        filters.sort,
        filters.descending,
        today=today,
        tariffs=tariffs,
    )


def filter_board(
    rows: QuerySet[BoardContainer], filters: BoardFilters, *, today: date, zone: tzinfo
) -> QuerySet[BoardContainer]:
    show = filters.show
    if show == "gone":
        rows = rows.filter(gone_at__isnull=False)
    elif show != "all":
        rows = rows.filter(gone_at__isnull=True)
    if filters.account is not None:
        rows = rows.filter(account=filters.account)
    if filters.q:
        rows = rows.filter(container_number__icontains=filters.q)
    if filters.pickup == NEEDS:
        rows = rows.filter(pickup__in=NEEDS_PICKUP)
    elif filters.pickup in Pickup.values:
        rows = rows.filter(pickup=filters.pickup)
    if filters.due_within is not None:
        # Overdue containers are the most urgent: "within N days" keeps them. Only containers
        # that still need a pickup are due at all.
        rows = rows.filter(
            pickup__in=NEEDS_PICKUP,
            last_free_day__lte=today + timedelta(days=filters.due_within),
        )
    if filters.due in DUE_WINDOWS:
        first, last = DUE_WINDOWS[filters.due]
        window = Q(pickup__in=NEEDS_PICKUP, last_free_day__isnull=False)
        if first is not None:
            window &= Q(last_free_day__gte=today + timedelta(days=first))
        if last is not None:
            window &= Q(last_free_day__lte=today + timedelta(days=last))
        rows = rows.filter(window)
    if filters.holds is not None:
        rows = rows.filter(holds=filters.holds)
    if filters.slot is True:
        rows = rows.filter(slot_count__gt=0)
    elif filters.slot is False:
        rows = rows.filter(Q(slot_count=0) | Q(slot_count__isnull=True))
    if filters.terminal:
        rows = rows.filter(terminal_code=filters.terminal)
    if filters.changed_since:
        rows = rows.filter(last_change_at__gte=start_of_day(filters.changed_since, zone))
    if filters.watched:
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
