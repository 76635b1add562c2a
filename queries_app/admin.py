from __future__ import annotations

from contextvars import ContextVar
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import ADDITION
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from emodal_portal import ids  # noqa: F401 - registers <id:…>
from history.models import HistoryEntry
from portal.admin import ReadOnlyAdmin, ReadOnlyInline
from sessions_app.admin import AccountAdmin, log_action
from sessions_app.models import Account
from sessions_app.services.options import TERMINAL, collision, options_for, warnings_against

from . import schedule_admin  # noqa: F401  (locks down django-q2's schedule admin)
from .models import (
    AppointmentCheck,
    ContainerInfo,
    Query,
    QueryFile,
    RecurringRun,
    Terminal,
    TerminalQuerySet,
)
from .query_page_admin import query_page_urls
from .recurring import delete_recurring_run
from .registry import get_kind
from .services import TriggerLimitReached, cancel_query, rerun_query, start_query
from .views import PROGRESS_POLL_MS


class ResultInline(ReadOnlyInline):
    show_change_link = False
    max_num = 0

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(cast("list[str]", self.fields or []))  # flat: names, no groups


class FileInline(ResultInline):
    model = QueryFile
    fields = ["name", "kind", "size", "created_at"]


class ChangeInline(ResultInline):
    """The run's changes: what the board observed when it merged the run."""

    model = HistoryEntry
    fk_name = "query"
    fields = ["container_number", "change", "fields"]


class CheckInline(ResultInline):
    model = AppointmentCheck
    fields = [
        "container_number",
        "trade_type",
        "move_type",
        "terminal_code",
        "terminal",
        "outcome",
        "error",
        "note",
        "slot_count",
        "earliest_slot",
        "unreadable_times",
    ]


class InfoInline(ResultInline):
    model = ContainerInfo
    fields = [
        "container_number",
        "trade_type",
        "success",
        "error",
        "passed_pregate",
        "booking_number",
        "unknown_milestones",
    ]


@admin.register(Query)
class QueryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "account",
        "status_display",
        "step",
        "progress",
        "attempts",
        "created_at",
        "finished_at",
        "results_link",
    ]
    list_filter = ["status", "kind", "account", "created_at"]
    list_select_related = ["account__user"]
    # "=": an exact container number, so the search uses the per-query unique index.
    search_fields = ["account__user__username", "batch", "=containers__container_number"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "account",
        "kind",
        "params",
        "started_by",
        "batch",
        "status",
        "step",
        "progress_done",
        "progress_total",
        "error",
        "cancel_requested",
        "attempts",
        "step_failures",
        "retry_at",
        "created_at",
        "started_at",
        "finished_at",
        "results_link",
    ]
    exclude = ["state", "claim_token", "claim_expires_at", "enqueued_at"]
    inlines = [InfoInline, CheckInline, ChangeInline, FileInline]
    actions = ["rerun", "cancel"]

    change_form_template = "admin/queries_app/query/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # queries start from the account actions, the pages or the command

    def get_urls(self) -> list[Any]:
        return [*query_page_urls(self), *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {
            **(extra_context or {}),
            "query": self.get_object(request, object_id),
            "may_run": self.has_run_query_permission(request),
            "poll_ms": PROGRESS_POLL_MS,
        }
        return super().change_view(request, object_id, form_url, context)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_display(self, query: Query) -> str:
        return query.get_status_display()

    @admin.display(description="progress")
    def progress(self, query: Query) -> str:
        if not query.progress_total:
            return "—"
        return f"{query.progress_done} of {query.progress_total}"

    @admin.display(description="results")
    def results_link(self, query: Query) -> str:
        return format_html('<a href="{}">open</a>', reverse("queries:detail", args=[query.pk]))

    def has_run_query_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("queries_app.run_query")

    @admin.action(description="Re-run selected queries", permissions=["run_query"])
    def rerun(self, request: HttpRequest, queryset: QuerySet[Query]) -> None:
        started = running = 0
        level = messages.SUCCESS
        chosen = list(queryset.select_related("account"))
        for index, query in enumerate(chosen):
            try:
                new, created = rerun_query(query=query, started_by=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{query}: {' '.join(exc.messages)}", messages.ERROR)
                continue
            except TriggerLimitReached as limit:
                level = messages.WARNING
                _limit_message(self, request, limit, len(chosen) - index)
                break
            if not created:
                running += 1
                continue
            log_action(request, new, f"Re-run of query #{query.pk}", ADDITION)
            started += 1
        text = ngettext("Started %(n)d query.", "Started %(n)d queries.", started) % {"n": started}
        self.message_user(request, text + _running_text(running), level)

    @admin.action(description="Cancel selected queries", permissions=["run_query"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Query]) -> None:
        cancelled = 0
        for query in queryset:
            if cancel_query(query=query):
                log_action(request, query, "Cancelled")
                cancelled += 1
        self.message_user(
            request,
            ngettext("Cancelled %(n)d query.", "Cancelled %(n)d queries.", cancelled)
            % {"n": cancelled},
            messages.SUCCESS,
        )


class NeedsNameFilter(admin.SimpleListFilter):
    title = "E-Modal name"
    parameter_name = "named"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Missing (seen in sheets, checks not sent)"), ("yes", "Named")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Terminal]) -> QuerySet[Terminal]:
        if self.value() == "no":
            # The admin's terminals are read through `Terminal.objects`: a TerminalQuerySet.
            return cast(TerminalQuerySet, queryset).unnamed()
        if self.value() == "yes":
            return queryset.exclude(name="")
        return queryset


# The Terminal options E-Modal has listed, read once per changelist page.
LISTED_TERMINALS: ContextVar[list[str] | None] = ContextVar("listed_terminals", default=None)


@admin.register(RecurringRun)
class RecurringRunAdmin(ReadOnlyAdmin):
    """Set on the board (or by `run_queries --schedule`), where their schedule is kept in step;
    here they can be looked at and deleted."""

    list_display = ("__str__", "paused", "next_run_at", "last_run_at", "last_error", "created_by")
    list_filter = ("kind", "paused")
    list_select_related = ("account__user", "created_by")
    search_fields = ("account__user__username",)
    raw_id_fields = ("account", "created_by", "schedule", "last_query")

    def delete_model(self, request: HttpRequest, obj: RecurringRun) -> None:
        delete_recurring_run(run=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RecurringRun]) -> None:
        for run in queryset:
            delete_recurring_run(run=run)


@admin.register(Terminal)
class TerminalAdmin(admin.ModelAdmin):
    """Terminal codes as sheets write them, and the names the appointment page offers. A code
    a sheet named for the first time is added here with no name: until it has one, checks at
    that terminal are not sent."""

    list_display = [
        "code",
        "name",
        "name_warnings",
        "time_zone",
        "active",
        "first_seen_at",
        "last_seen_at",
    ]
    list_editable = ["name", "time_zone", "active"]
    list_filter = [NeedsNameFilter, "active"]
    search_fields = ["code", "name"]
    readonly_fields = [
        "name_warnings",
        "first_seen_at",
        "last_seen_at",
        "created_at",
        "updated_at",
    ]
    ordering = ["code"]

    @admin.display(description="compared with E-Modal's list")
    def name_warnings(self, terminal: Terminal) -> str:
        options = LISTED_TERMINALS.get()
        if options is None:
            options = options_for(TERMINAL)
        return " ".join(warnings_against(TERMINAL, terminal.name, options)) or "—"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # The listed options are read once for the whole page, not once per row.
        options = options_for(TERMINAL)
        token = LISTED_TERMINALS.set(options)
        try:
            self.warn_of_names(request, options)
            return super().changelist_view(request, extra_context)
        finally:
            LISTED_TERMINALS.reset(token)

    def warn_of_names(self, request: HttpRequest, options: list[str]) -> None:
        if request.method != "GET":
            return
        ambiguous = [
            (terminal.code, terminal.name, other)
            for terminal in Terminal.objects.filter(active=True).exclude(name="")
            if (other := collision(terminal.name, options))
        ]
        if ambiguous:
            named = "; ".join(
                f"{code} (“{name}” would select “{other}”)" for code, name, other in ambiguous
            )
            self.message_user(
                request,
                f"Names that are part of another terminal E-Modal lists: {named}. Checks "
                "with them are not sent until the name is the option's full text.",
                messages.WARNING,
            )
        unnamed = Terminal.objects.unnamed().filter(active=True).count()
        if unnamed:
            self.message_user(
                request,
                ngettext(
                    "%(n)d terminal code seen in sheets has no E-Modal name: appointment "
                    "checks there are not sent until it has one.",
                    "%(n)d terminal codes seen in sheets have no E-Modal name: appointment "
                    "checks there are not sent until they have one.",
                    unnamed,
                )
                % {"n": unnamed},
                messages.WARNING,
            )


def _start_for_accounts(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Account],
    kind: str,
    action: str,
) -> HttpResponse | None:
    """Confirmation page, then one query per account (a costly action: it logs in)."""
    label = get_kind(kind).label.lower()
    if request.POST.get("confirmed") != "yes":
        return TemplateResponse(
            request,
            "admin/queries_app/confirm_start.html",
            {
                **model_admin.admin_site.each_context(request),
                "title": f"Run {label} for {queryset.count()} account(s)?",
                "kind_label": label,
                "accounts": queryset.select_related("user"),
                "opts": model_admin.model._meta,
                "action_name": action,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )
    started = failed = running = 0
    chosen = list(queryset.select_related("user"))
    for index, account in enumerate(chosen):
        try:
            query, created = start_query(account=account, kind=kind, started_by=request.user)
        except ValidationError as exc:
            failed += 1
            model_admin.message_user(
                request, f"{account}: {' '.join(exc.messages)}", messages.ERROR
            )
            continue
        except TriggerLimitReached as limit:
            failed += 1
            _limit_message(model_admin, request, limit, len(chosen) - index)
            break
        if not created:
            running += 1
            continue
        log_action(request, account, f"Started {label} query #{query.pk}")
        started += 1
    text = ngettext(
        "Started %(label)s for %(n)d account.", "Started %(label)s for %(n)d accounts.", started
    ) % {"label": label, "n": started}
    model_admin.message_user(
        request,
        text + _running_text(running),
        messages.SUCCESS if not failed else messages.WARNING,
    )
    return None


def _running_text(running: int) -> str:
    if not running:
        return ""
    return ngettext(
        " %(n)d was already running: nothing new started for it.",
        " %(n)d were already running: nothing new started for them.",
        running,
    ) % {"n": running}


def _limit_message(
    model_admin: admin.ModelAdmin, request: HttpRequest, limit: TriggerLimitReached, left: int
) -> None:
    """The trigger limit stops the action: the rest of the selection is left alone."""
    rest = ngettext(
        "The last %(n)d of the selection was not started.",
        "The last %(n)d of the selection were not started.",
        left,
    ) % {"n": left}
    model_admin.message_user(request, f"{limit.readable()} {rest}", messages.ERROR)


@admin.action(description="Run availability query", permissions=["run_query"])
def run_availability(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Account]
) -> HttpResponse | None:
    return _start_for_accounts(model_admin, request, queryset, "availability", "run_availability")


@admin.action(description="Run containers query", permissions=["run_query"])
def run_containers(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Account]
) -> HttpResponse | None:
    return _start_for_accounts(model_admin, request, queryset, "containers", "run_containers")


class AccountAdminWithQueries(AccountAdmin):
    """The account admin of sessions_app (which knows nothing of queries), with the actions
    that start queries for the chosen accounts."""

    actions = [*AccountAdmin.actions, run_availability, run_containers]

    def has_run_query_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("queries_app.run_query")


admin.site.unregister(Account)
admin.site.register(Account, AccountAdminWithQueries)
