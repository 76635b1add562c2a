"""The board's pages: the containers board (with its recurring runs), a container's page, the
star, and the board's exports. (The alert settings are the notifications app's page.)

A user sees only their own account's containers (anything else is a 404); staff with the
"Can view container" permission see every account's, with an account filter. Every change is a
POST with CSRF; views shape input and output, the services decide.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from emodal_portal.ids import parse_id
from portal.exports import export_response
from portal.http import AuthenticatedHttpRequest, next_or
from portal.timezones import TimeZoneForm, user_zone
from queries_app import recurring
from queries_app.models import Query, RecurringRun

from .forms import BoardFilterForm, RecurringRunForm
from .health import stopped_accounts
from .local_times import zone_of
from .models import Container, Watch
from .money import Tariffs
from .selectors import (
    HISTORY_LIMIT,
    NEEDS,
    board_rows,
    board_summary,
    container_checks,
    container_milestones,
    container_runs,
    manageable_accounts,
    money_at_risk,
    recent_runs,
    recurring_runs,
    sees_all,
    terminal_choices,
    visible_accounts,
    visible_containers,
)
from .table import (
    PER_PAGE,
    BoardTable,
    build_columns,
    page_headers,
    pickup_text,
)
from .verdict import container_verdict, needs_pickup

# How often a board with a run going asks for its rows again.
BOARD_POLL_MS = 5000
# A run that ended this recently may still be merging into the board: the page keeps following.
BOARD_SETTLING = timedelta(minutes=2)


def live_runs(user: Any, own: list[Any]) -> bool:
    """Whether a run of the accounts on this person's board is going (or just ended)."""
    queries = Query.objects.filter(
        Q(status__in=Query.LIVE_STATUSES) | Q(finished_at__gte=timezone.now() - BOARD_SETTLING)
    )
    if sees_all(user):
        return queries.exists()
    return bool(own) and queries.filter(account__in=[account.pk for account in own]).exists()


# Scheduled runs listed per page of the board (staff who manage every account see them all).
RUNS_PER_PAGE = 20

NO_ACCOUNT_MESSAGE = (
    "Your login has no E-Modal account yet, so there are no containers to show. "
    "Ask an administrator to add your E-Modal credentials."
)


def _board_table(request: HttpRequest, *, export: bool = False) -> tuple[BoardTable, Any]:
    zone = user_zone(request)
    today = timezone.localdate(timezone=zone)
    show_account = sees_all(request.user)
    visible = visible_containers(request.user)
    data: QueryDict = request.GET
    if "pickup" not in data:
        # The board opens on what still needs a pickup ("Any" shows everything).
        data = data.copy()
        data["pickup"] = NEEDS
    form = BoardFilterForm(
        data,
        terminals=terminal_choices(visible),
        accounts=visible_accounts(request.user) if show_account else None,
    )
    filters = form.board_filters(request.GET.get("sort", ""))
    sort, descending = filters.sort, filters.descending
    tariffs = Tariffs.load()
    rows = board_rows(visible, filters, today=today, zone=zone, tariffs=tariffs)
    table = BoardTable(
        rows=rows,
        columns=build_columns(today, zone, show_account=show_account, tariffs=tariffs),
        today=today,
        zone=zone,
        sort=sort,
        descending=descending,
        show_account=show_account,
        tariffs=tariffs,
    )
    if not export:
        table.csrf_token = get_token(request)
        table.next_url = request.get_full_path()
        table.headers = page_headers(sort, descending, show_account=show_account)
        table.may_book = request.user.has_perm("bookings_app.book_appointments")
    return table, form


def _board_context(
    request: HttpRequest, schedule_form: RecurringRunForm | None = None
) -> dict[str, Any]:
    table, form = _board_table(request)
    page = Paginator(table.rows, PER_PAGE).get_page(request.GET.get("page"))
    accounts = manageable_accounts(request.user)
    choose = sees_all(request.user) and len(accounts) > 1
    own = [a for a in accounts if a.user_id == request.user.pk]
    if schedule_form is None and (own or choose):
        schedule_form = RecurringRunForm(
            accounts=accounts if choose else None, zone=str(user_zone(request))
        )
    return {
        "table": table,
        "form": form,
        "page_obj": page,
        "rows": [table.row_html(row) for row in page],
        "summary": board_summary(visible_containers(request.user), today=table.today),
        "money": money_at_risk(
            visible_containers(request.user), table.tariffs or Tariffs.load(), today=table.today
        ),
        # A dispatcher's own account is loaded already; staff who see all: those stopped.
        "live_runs": live_runs(request.user, own),
        "board_poll_ms": BOARD_POLL_MS,
        "account_health": stopped_accounts(
            visible_accounts(request.user).needing_a_person() if sees_all(request.user) else own
        ),
        "show_account_names": sees_all(request.user),
        "today": table.today,
        "show_unknown": sees_all(request.user),
        "has_account": bool(own) or sees_all(request.user),
        "no_account_message": NO_ACCOUNT_MESSAGE,
        "recurring_runs": Paginator(recurring_runs(request.user), RUNS_PER_PAGE).get_page(
            request.GET.get("runs_page")
        ),
        "schedule_form": schedule_form,
        "zone_name": str(table.zone),
        "timezone_form": TimeZoneForm(
            current=str(user_zone(request)), initial={"next": request.get_full_path()}
        ),
    }


@require_GET
@login_required
def board(request: HttpRequest) -> HttpResponse:
    return render(request, "containers/board.html", _board_context(request))


@require_GET
@login_required
def export_board(request: HttpRequest, fmt: str) -> HttpResponseBase:
    table, _ = _board_table(request, export=True)
    stamp = timezone.localtime(timezone=table.zone).strftime("%Y%m%d-%H%M")
    return export_response(table, table.zone, fmt, f"containers-{stamp}.{fmt}")


def _visible_container(request: HttpRequest, number: str) -> list[Container]:
    """The container in each account the person may see (one unless staff see it twice)."""
    found = visible_containers(request.user).filter(container_number=number.upper())
    if "account" in request.GET:
        account = parse_id(request.GET["account"])
        if account is None:
            raise Http404("No such account.")
        found = found.filter(account_id=account)
    containers: list[Container] = list(found)
    if not containers:
        raise Http404("No such container on your board.")
    return containers


@require_GET
@login_required
def container_detail(request: HttpRequest, number: str) -> HttpResponse:
    containers = _visible_container(request, number)
    if len(containers) > 1:
        # The same number on two accounts (staff see both): say so, and let them choose.
        path = request.path  # this very page: the choice adds its account
        choices = [(c, f"{path}?{urlencode({'account': c.account_id})}") for c in containers]
        return render(request, "containers/choose.html", {"number": number, "choices": choices})
    container = containers[0]
    runs = recent_runs(container)
    zone = user_zone(request)
    today = timezone.localdate(timezone=zone)
    verdict = container_verdict(container)
    return render(
        request,
        "containers/container.html",
        {
            "container": container,
            "days_left": container.days_left(today),
            "pickup_label": pickup_text(container),
            "pickup_reason": verdict.reason,
            "needs_pickup": needs_pickup(container.pickup) and container.gone_at is None,
            "calm": not needs_pickup(container.pickup),
            "charges": Tariffs.load([container.terminal_id]).charges(container, today)
            if container.terminal_id
            else None,
            "history": container.history.select_related("query").defer(
                "query__state", "query__params"
            )[:HISTORY_LIMIT],
            "sheet_rows": container_runs(container, runs),
            "checks": container_checks(container, runs),
            "milestones": container_milestones(container, runs),
            "show_account": sees_all(request.user),
            "zone_name": str(zone),
            "terminal_zone": str(zone_of(container.terminal)),
        },
    )


@require_POST
@login_required
def watch(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    container = get_object_or_404(visible_containers(request.user), pk=pk)
    if request.POST.get("watch", "1") == "1":
        Watch.objects.get_or_create(user=request.user, container=container)
    else:
        Watch.objects.filter(user=request.user, container=container).delete()
    return redirect(next_or(request, reverse("containers:board")))


def _manageable_run(request: HttpRequest, pk: int) -> RecurringRun:
    return get_object_or_404(recurring_runs(request.user), pk=pk)


@require_POST
@login_required
def schedule_add(request: HttpRequest) -> HttpResponse:
    accounts = manageable_accounts(request.user)
    choose = sees_all(request.user) and len(accounts) > 1
    own = next((a for a in accounts if a.user_id == request.user.pk), None)
    if not choose and own is None:
        raise Http404("No account to schedule runs for.")
    form = RecurringRunForm(
        request.POST, accounts=accounts if choose else None, zone=str(user_zone(request))
    )
    if form.is_valid():
        account = form.cleaned_data.get("account") or own
        assert account is not None  # one chosen, or their own (checked above)
        try:
            run = recurring.save_recurring_run(
                account=account,
                kind=form.cleaned_data["kind"],
                params={},
                weekdays=form.cleaned_data["weekdays"],
                times=form.cleaned_data["times"],
                time_zone=form.cleaned_data["time_zone"],
                created_by=request.user,
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            when = timezone.localtime(run.next_run_at) if run.next_run_at else None
            messages.success(
                request,
                f"Scheduled: {run}." + (f" Next run {when:%a %Y-%m-%d %H:%M %Z}." if when else ""),
            )
            return redirect(reverse("containers:board") + "#schedules")
    response = render(request, "containers/board.html", _board_context(request, form))
    response.status_code = 400
    return response


@require_POST
@login_required
def schedule_pause(request: HttpRequest, pk: int) -> HttpResponse:
    run = _manageable_run(request, pk)
    paused = request.POST.get("paused", "1") == "1"
    recurring.set_paused(run=run, paused=paused)
    messages.success(request, f"{'Paused' if paused else 'Resumed'}: {run}.")
    return redirect(reverse("containers:board") + "#schedules")


@require_POST
@login_required
def schedule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    run = _manageable_run(request, pk)
    described = str(run)
    recurring.delete_recurring_run(run=run)
    messages.success(request, f"Deleted: {described}.")
    return redirect(reverse("containers:board") + "#schedules")
