"""The results pages: a user's queries, one query's progress and results, exports, files.

A user reaches only their own account's queries (anything else is a 404, as if it did not
exist); staff reach everyone's with the permission the admin asks for the same (view
queries), and cancel someone else's only with the one the admin's Cancel action asks for
(start queries for any account). Views shape input and output; starting and cancelling are
the services' business.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from portal.exports import export_response
from portal.http import AuthenticatedHttpRequest
from portal.timezones import TimeZoneForm, user_zone
from sessions_app.models import Account

from . import access
from .access import NO_ACCOUNT_MESSAGE
from .forms import StartQueryForm
from .models import Query, QueryFile
from .progress import run_progress
from .registry import get_kind
from .selectors import own_account, result_counts, run_changes, visible_queries
from .services import TriggerLimitReached, cancel_query, start_query
from .tables import containers_table

QUERIES_PER_PAGE = 25
RESULT_ROWS_PER_PAGE = 100
# How often a live query's page asks for its progress.
PROGRESS_POLL_MS = 2000


# -- helpers ----------------------------------------------------------------------------------


def _visible_query(request: HttpRequest, pk: int) -> Query:
    return get_object_or_404(visible_queries(request.user), pk=pk)


def _page(request: HttpRequest, rows: QuerySet, param: str, per_page: int) -> Page:
    return Paginator(rows, per_page).get_page(request.GET.get(param))


# -- my queries --------------------------------------------------------------------------------


def _start_form(
    request: HttpRequest, own: Account | None, data: Any = None
) -> StartQueryForm | None:
    """The start form, or None for a user who has no account to run queries with."""
    choose = access.may_choose_account(request.user)
    if own is None and not choose:
        return None
    return StartQueryForm(data, choose_account=choose, initial={"account": own})


def _render_list(
    request: HttpRequest, form: StartQueryForm | None, account: Account | None
) -> HttpResponse:
    page = _page(request, visible_queries(request.user), "page", QUERIES_PER_PAGE)
    context = {
        "page_obj": page,
        "has_live": any(query.is_live for query in page),
        "poll_ms": PROGRESS_POLL_MS,
        "form": form,
        "account": account,
        "no_account_message": NO_ACCOUNT_MESSAGE,
        "show_account": access.sees_others(request.user),
        "timezone_form": TimeZoneForm(
            current=str(user_zone(request)), initial={"next": request.get_full_path()}
        ),
    }
    return render(request, "queries/list.html", context)


@require_GET
@login_required
def query_list(request: HttpRequest) -> HttpResponse:
    own = own_account(request.user)
    return _render_list(request, _start_form(request, own), own)


@require_POST
@login_required
def query_start(request: HttpRequest) -> HttpResponse:
    own = own_account(request.user)
    form = _start_form(request, own, request.POST)
    if form is None:
        raise PermissionDenied(NO_ACCOUNT_MESSAGE)
    if form.is_valid():
        account = form.cleaned_data.get("account") or own
        assert account is not None  # a form is only offered with an account to run on
        kind = get_kind(form.cleaned_data["kind"])
        try:
            query, created = start_query(
                account=account,
                kind=kind.code,
                params=form.params(kind),
                started_by=request.user,
            )
        except ValidationError as error:
            form.add_service_error(error)
        except TriggerLimitReached as limit:
            form.add_error(None, limit.readable())
            response = _render_list(request, form, own)
            response.status_code = 429
            response["Retry-After"] = str(limit.retry_after_seconds())
            return response
        else:
            if not created:
                same = " with the same parameters" if kind.params.base_fields else ""
                messages.info(
                    request,
                    f"A {query.get_kind_display().lower()} query for this account{same} was "
                    f"already running (#{query.pk}): showing it.",
                )
            else:
                messages.success(
                    request, f"Query #{query.pk} ({query.get_kind_display()}) started."
                )
            return redirect("queries:detail", pk=query.pk)
    return _render_list(request, form, own)


# -- one query ---------------------------------------------------------------------------------


def _results(request: HttpRequest, query: Query) -> dict[str, Any]:
    """The result tables that have rows, each on its own page of rows."""
    counts = result_counts(query)
    files = list(query.files.all())
    results: dict[str, Any] = {
        "counts": counts,
        "files": files,
        "sheets": [f for f in files if f.kind != QueryFile.Kind.SCREENSHOT],
        "screenshots": [f for f in files if f.kind == QueryFile.Kind.SCREENSHOT],
    }
    if counts["containers"]:
        zone = timezone.get_current_timezone()
        table = containers_table(
            query,
            request.GET,
            has_checks=bool(counts["checks"]),
            has_changes=bool(counts["changes"]),
            today=timezone.localdate(),
        )
        page = table.page(request)
        results["table"] = table
        results["containers_page"] = page
        results["container_rows"] = [(row, table.row_html(row, zone)) for row in page]
    if counts["infos"]:
        results["infos_page"] = _page(
            request, query.infos.all(), "infos_page", RESULT_ROWS_PER_PAGE
        )
    if counts["checks"]:
        results["checks_page"] = _page(
            request, query.checks.select_related("screenshot"), "checks_page", RESULT_ROWS_PER_PAGE
        )
    if counts["appointments"]:
        results["appointments_page"] = _page(
            request, query.appointments.defer("raw"), "appointments_page", RESULT_ROWS_PER_PAGE
        )
    if counts["changes"]:
        results["changes_page"] = _page(
            request, run_changes(query), "changes_page", RESULT_ROWS_PER_PAGE
        )
    return results


@require_GET
@login_required
def query_detail(request: HttpRequest, pk: int) -> HttpResponse:
    query = _visible_query(request, pk)
    context = {
        "query": query,
        "poll_ms": PROGRESS_POLL_MS,
        "may_cancel": access.may_cancel(request.user, query),
        **_results(request, query),
    }
    return render(request, "queries/detail.html", context)


@never_cache
@require_GET
@login_required
def query_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """What the detail page's poller needs: the figures, and the status panel re-rendered so
    that the page and the script never disagree on wording."""
    query = _visible_query(request, pk)
    progress = run_progress(query)
    return JsonResponse(
        {
            "status": query.status,
            "status_label": query.get_status_display(),
            "step": query.step,
            "progress_done": query.progress_done,
            "progress_total": query.progress_total,
            "percent": query.progress_percent,
            # Every step of the run (the sheet, the details, each check...), and the time left
            # estimated from the contract's timings.
            "steps_done": progress.done,
            "steps_total": progress.total,
            "steps_percent": progress.percent,
            "seconds_left": progress.seconds_left,
            "progress_text": progress.text,
            # Each step stores its results before the next one: a new step or item means new
            # results to show while the run goes on.
            "results_version": f"{query.step}:{query.progress_done}:{query.progress_total}",
            "error": query.error,
            "is_live": query.is_live,
            # The result tables are only worth reloading once the query has ended.
            "reload_results": not query.is_live,
            "status_html": render_to_string(
                "queries/_status.html",
                {"query": query, "may_cancel": access.may_cancel(request.user, query)},
                request=request,
            ),
        }
    )


@require_POST
@login_required
def query_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    query = _visible_query(request, pk)
    if not access.may_cancel(request.user, query):
        raise PermissionDenied("Cancelling another account's query needs a permission.")
    if cancel_query(query=query):
        query.refresh_from_db(fields=["status"])
        if query.status == Query.Status.CANCELLED:
            messages.success(request, f"Query #{query.pk} is cancelled.")
        else:
            messages.info(
                request, f"Query #{query.pk} will stop once the step in progress has finished."
            )
    else:
        messages.warning(request, f"Query #{query.pk} had already ended.")
    return redirect("queries:detail", pk=query.pk)


@require_GET
@login_required
def export_containers(request: HttpRequest, pk: int, fmt: str) -> HttpResponseBase:
    query = _visible_query(request, pk)
    zone = user_zone(request)
    table = containers_table(
        query,
        request.GET,
        has_checks=query.checks.exists(),
        has_changes=query.changes.exists(),
        today=timezone.localdate(timezone=zone),
    )
    return export_response(table, zone, fmt, f"query-{query.pk}-containers.{fmt}")


@require_GET
@login_required
def query_file(request: AuthenticatedHttpRequest, pk: int, file_id: int) -> FileResponse:
    """An upstream file, only to whoever may see its query (media is never served as is)."""
    visible = Query.objects.visible_to(request.user)
    stored = get_object_or_404(QueryFile, pk=file_id, query_id=pk, query__in=visible)
    try:
        handle = stored.file.open("rb")
    except FileNotFoundError:
        raise Http404("This file is no longer stored.") from None
    return FileResponse(
        handle,
        as_attachment=True,
        filename=stored.name,
        content_type=stored.content_type or "application/octet-stream",
    )
