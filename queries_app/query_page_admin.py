"""A query's admin page: its own Cancel and Re-run buttons (POSTs, with the permission to start
queries for any account), beside the live progress its template follows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path

from emodal_portal import ids  # noqa: F401 - registers <id:…>
from sessions_app.admin import log_action

from .models import Query
from .services import TriggerLimitReached, cancel_query, rerun_query

CHANGE = "admin:queries_app_query_change"


def query_page_urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    wrap = model_admin.admin_site.admin_view

    def cancel(request: HttpRequest, pk: int) -> HttpResponse:
        return cancel_one(model_admin, request, pk)

    def rerun(request: HttpRequest, pk: int) -> HttpResponse:
        return rerun_one(model_admin, request, pk)

    return [
        path("<id:pk>/cancel/", wrap(cancel), name="queries_app_query_cancel"),
        path("<id:pk>/rerun/", wrap(rerun), name="queries_app_query_rerun"),
    ]


def chosen(model_admin: Any, request: HttpRequest, pk: int) -> Query:
    if request.method != "POST":
        raise PermissionDenied("A POST only.")
    if not model_admin.has_run_query_permission(request):
        raise PermissionDenied("Needs the permission to start queries for any account.")
    query = model_admin.get_object(request, str(pk))
    if query is None:
        raise Http404("No such query.")
    return query


def cancel_one(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    query = chosen(model_admin, request, pk)
    if not cancel_query(query=query):
        model_admin.message_user(request, f"Query #{query.pk} had already ended.", messages.WARNING)
        return redirect(CHANGE, query.pk)
    log_action(request, query, "Cancelled")
    query.refresh_from_db(fields=["status"])
    if query.status == Query.Status.CANCELLED:
        text = f"Query #{query.pk} is cancelled."
    else:
        text = f"Query #{query.pk} stops once the step in progress has finished."
    model_admin.message_user(request, text, messages.SUCCESS)
    return redirect(CHANGE, query.pk)


def rerun_one(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    query = chosen(model_admin, request, pk)
    try:
        new, created = rerun_query(query=query, started_by=request.user)
    except ValidationError as exc:
        model_admin.message_user(request, f"{query}: {' '.join(exc.messages)}", messages.ERROR)
        return redirect(CHANGE, query.pk)
    except TriggerLimitReached as limit:
        model_admin.message_user(request, limit.readable(), messages.ERROR)
        return redirect(CHANGE, query.pk)
    if created:
        log_action(request, new, f"Re-run of query #{query.pk}", ADDITION)
        model_admin.message_user(request, f"Started query #{new.pk}.", messages.SUCCESS)
    else:
        model_admin.message_user(
            request,
            f"Query #{new.pk} of this kind was already running for the account: nothing new "
            "started.",
            messages.WARNING,
        )
    return redirect(CHANGE, new.pk)
