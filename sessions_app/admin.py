from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict, cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import Count, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.timesince import timesince
from django.utils.translation import ngettext

from portal.admin import ReadOnlyAdmin

from . import tasks
from .forms import AccountForm
from .models import Account, AccountQuerySet, ListedOption, SessionEvent
from .services import (
    BUDGET_WINDOW,
    allow_logins,
    drop_session_locally,
    name_warnings,
    update_account_credentials,
)
from .services.options import TRUCKING

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class SessionStateFilter(admin.SimpleListFilter):
    title = "session"
    parameter_name = "session"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live"), ("expired", "Expired"), ("none", "None")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        usable = settings.EMODAL_SESSION_IDLE_SECONDS - settings.EMODAL_SESSION_MARGIN_SECONDS
        # With the idle heuristic off, every stored session counts as live.
        cutoff = (
            timezone.now() - timedelta(seconds=usable)
            if settings.EMODAL_SESSION_IDLE_SECONDS
            else timezone.now() - timedelta(days=36500)
        )
        # The admin's accounts are read through `Account.objects`: an AccountQuerySet.
        accounts = cast(AccountQuerySet, queryset)
        if self.value() == "live":
            return accounts.with_session().filter(session_last_used_at__gt=cutoff)
        if self.value() == "expired":
            return accounts.with_session().filter(session_last_used_at__lte=cutoff)
        if self.value() == "none":
            return queryset.filter(session_id=None)
        return queryset


# What the portal knows of an account's state: shown, never edited.
STATE_FIELDS = (
    "credential_state",
    "credential_error",
    "login_failures",
    "credentials_changed_at",
    "session_state_display",
    "in_use_display",
    "session_created_at",
    "session_last_used_at",
    "session_uses",
    "held_workflows",
    "browser_closes_at",
    "created_at",
    "updated_at",
)


class NeedsPersonFilter(admin.SimpleListFilter):
    title = "needs a person"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes: logins or appointment checks stopped")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        if self.value() == "yes":
            return cast(AccountQuerySet, queryset).needing_a_person()
        return queryset


class CaptchaSolves(TypedDict):
    """What `AccountAdmin.get_queryset` adds to each account."""

    solves_24h: int
    solves_1h: int
    solves_all_1h: int


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = AccountForm
    list_display = [
        "user",
        "credential_state_display",
        "session_state_display",
        "session_age",
        "session_last_used_at",
        "session_uses",
        "in_use_display",
        "captcha_solves_24h",
        "upstream_url",
        "trucking_company",
    ]
    list_filter = [
        NeedsPersonFilter,
        SessionStateFilter,
        "credential_state",
        "upstream_url",
        "trucking_company",
    ]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__email", "trucking_company", "truck_plate"]
    readonly_fields = [*STATE_FIELDS, "appointment_error", "trucking_company_warnings"]
    fieldsets = [
        (None, {"fields": ["user", "upstream_url"]}),
        (
            "E-Modal credentials",
            {"fields": ["emodal_username", "new_password", "new_captcha_api_key"]},
        ),
        (
            "Appointment checks",
            {
                "fields": [
                    "trucking_company",
                    "trucking_company_warnings",
                    "truck_plate",
                    "own_chassis",
                    "appointment_error",
                ],
                "description": "The trucking company is sent exactly as written here: it must "
                "match its name in E-Modal's appointment page (e.g. K &amp; R TRANSPORTATION "
                "LLC); when it does not, checks stop and the options E-Modal listed are shown "
                "below. The truck plate is never refused: E-Modal silently uses the first "
                "plate it lists for one it does not, so the plate used is not knowable.",
            },
        ),
        ("State", {"fields": STATE_FIELDS}),
    ]
    actions = ["force_session_refresh", "drop_session", "allow_logins_again"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        since = timezone.now() - timedelta(hours=24)
        hour_ago = timezone.now() - BUDGET_WINDOW
        # The portal-wide count of the budget window, in the same SELECT (no query per row).
        solves_all_1h = (
            SessionEvent.objects.captcha_spent()
            .since(hour_ago)
            .order_by()
            .values("captcha_spent")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                solves_24h=Count(
                    "events",
                    filter=Q(events__captcha_spent=True, events__created_at__gte=since),
                ),
                solves_1h=Count(
                    "events",
                    filter=Q(events__captcha_spent=True, events__created_at__gte=hour_ago),
                ),
                solves_all_1h=Coalesce(Subquery(solves_all_1h), 0),
            )
        )

    @admin.display(description="session")
    def session_state_display(self, account: Account) -> str:
        return {"live": "Live", "expired": "Expired", "none": "None"}[account.session_state]

    @admin.display(description="in use")
    def in_use_display(self, account: Account) -> str:
        """Whether a task holds the account's lease (drives its browser) now, and until when
        at the latest: a booking whose answer never came holds it until the server can no
        longer be booking in that browser."""
        until = account.lease_expires_at
        if not account.lease_token or until is None or until <= timezone.now():
            return "—"
        return f"In use until {timezone.localtime(until):%H:%M:%S}"

    @admin.display(description="session age")
    def session_age(self, account: Account) -> str:
        if not account.session_created_at:
            return "—"
        return timesince(account.session_created_at)

    @admin.display(description="credentials", ordering="credential_state")
    def credential_state_display(self, account: Account) -> str:
        """The state in full (the stored reason and since when): it wraps, never cut off."""
        lines = [account.get_credential_state_display()]
        if account.logins_blocked:
            since = account.logins_stopped_at
            when = f" (since {timezone.localtime(since):%Y-%m-%d %H:%M %Z})" if since else ""
            lines[0] = f"{lines[0]}{when}: {account.credential_error}"
        if account.appointment_error:
            since = account.appointment_error_at
            when = f" (since {timezone.localtime(since):%Y-%m-%d %H:%M %Z})" if since else ""
            lines.append(f"Appointment checks stopped{when}: {account.appointment_error}")
        return format_html_join(
            "", '<span class="credentials-state">{}</span>', ((line,) for line in lines)
        )

    @admin.display(description="compared with E-Modal's list")
    def trucking_company_warnings(self, account: Account) -> str:
        if account.pk is None or not account.trucking_company:
            return "—"
        warnings = name_warnings(TRUCKING, account.trucking_company, account_id=account.pk)
        if not warnings:
            return "No warning."
        return format_html_join(
            "", '<p class="errornote">{}</p>', ((warning,) for warning in warnings)
        )

    @admin.display(description="captcha solves (24 h)", ordering="solves_24h")
    def captcha_solves_24h(self, account: WithAnnotations[Account, CaptchaSolves]) -> str:
        per_account = settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR
        portal = settings.EMODAL_CAPTCHA_BUDGET_PER_HOUR
        if 0 < per_account <= account.solves_1h:
            return f"{account.solves_24h} (budget reached)"
        if 0 < portal <= account.solves_all_1h:
            return f"{account.solves_24h} (portal budget reached)"
        return str(account.solves_24h)

    def save_model(
        self, request: HttpRequest, obj: Account, form: AccountForm, change: bool
    ) -> None:
        changed = update_account_credentials(
            account=obj,
            emodal_username=form.cleaned_data.get("emodal_username"),
            password=form.cleaned_data.get("new_password"),
            captcha_api_key=form.cleaned_data.get("new_captcha_api_key"),
            commit=False,
        )
        if change and "trucking_company" in form.changed_data:
            obj.appointment_error = ""  # the next run tries appointment checks again
        if change and "upstream_url" in form.changed_data and obj.session_id:
            # The session lives on the former server; the account starts afresh on the new one.
            drop_session_locally(account=obj)
            changed.append("upstream_url")
        obj.save()
        for warning in name_warnings(TRUCKING, obj.trucking_company, account_id=obj.pk):
            messages.warning(request, f"Trucking company: {warning}")
        if changed and change:
            messages.info(
                request,
                f"Changed {', '.join(changed)}: the old session was dropped; the next query "
                "will log in.",
            )

    def construct_change_message(
        self, request: HttpRequest, form: Form, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        # Audited by field name only: Django's default does that too, but the secret fields
        # are not model form fields here, so name them explicitly.
        message = super().construct_change_message(request, form, formsets, add)
        secrets_changed = [
            name
            for name, field in (
                ("password", "new_password"),
                ("captcha_api_key", "new_captcha_api_key"),
            )
            if form.cleaned_data.get(field)
        ]
        if secrets_changed and not add:
            message.append({"changed": {"fields": secrets_changed}})
        return message

    def has_refresh_session_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sessions_app.refresh_session")

    @admin.action(
        description="Force session refresh (spends a captcha per account)",
        permissions=["refresh_session"],
    )
    def force_session_refresh(
        self, request: HttpRequest, queryset: QuerySet[Account]
    ) -> HttpResponse | None:
        if request.POST.get("confirmed") != "yes":
            return TemplateResponse(
                request,
                "admin/sessions_app/account/confirm_refresh.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Force session refresh?",
                    "accounts": queryset,
                    "queryset": queryset,
                    "opts": self.model._meta,
                    "action_name": "force_session_refresh",
                    "action_checkbox_name": ACTION_CHECKBOX_NAME,
                },
            )
        count = 0
        for account in queryset:
            tasks.enqueue_refresh_session(account_id=account.pk)
            log_action(request, account, "Queued a forced session refresh")
            count += 1
        self.message_user(
            request,
            counted(
                "Queued a session refresh for %(count)d account.",
                "Queued session refreshes for %(count)d accounts.",
                count,
            ),
            messages.SUCCESS,
        )
        return None

    @admin.action(
        description="Allow logins again (captcha key checked, or E-Modal login tried by hand)",
        permissions=["change"],
    )
    def allow_logins_again(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        count = 0
        for account in queryset:
            if allow_logins(account=account):
                log_action(request, account, "Allowed logins again")
                count += 1
        self.message_user(
            request,
            counted(
                "Logins allowed again for %(count)d account.",
                "Logins allowed again for %(count)d accounts.",
                count,
            )
            + (
                ""
                if count == queryset.count()
                else " Accounts with rejected credentials need the credentials changed."
            ),
            messages.SUCCESS,
        )

    @admin.action(description="Drop session", permissions=["change"])
    def drop_session(self, request: HttpRequest, queryset: AccountQuerySet) -> None:
        count = 0
        for account in queryset.with_session():
            tasks.enqueue_drop_session(account_id=account.pk)
            log_action(request, account, "Queued dropping the session")
            count += 1
        self.message_user(
            request,
            counted(
                "Queued dropping the session of %(count)d account.",
                "Queued dropping the sessions of %(count)d accounts.",
                count,
            ),
            messages.SUCCESS,
        )


def counted(singular: str, plural: str, count: int) -> str:
    """An action's message for `count` objects (`%(count)d` in the texts)."""
    return ngettext(singular, plural, count) % {"count": count}


def log_action(request: HttpRequest, obj: Any, text: str, flag: int = CHANGE) -> None:
    """An admin log entry for a custom action (Django writes none by itself)."""
    LogEntry.objects.log_actions(
        # Admin actions are run by a signed-in person: their id is never None.
        user_id=cast(int, request.user.pk),
        queryset=[obj],
        action_flag=flag,
        change_message=text,
        single_object=True,
    )


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    deletable = False  # the log of logins and captchas staff count the cost by

    list_display = ["created_at", "account", "kind", "captcha_spent", "duration_ms", "detail"]
    list_filter = ["kind", "captcha_spent", "created_at"]
    list_select_related = ["account__user"]
    search_fields = ["account__user__username", "detail"]
    date_hierarchy = "created_at"


@admin.register(ListedOption)
class ListedOptionAdmin(ReadOnlyAdmin):
    """What E-Modal's appointment page has listed, read from its own failures: kept by the
    portal, deleted by staff when stale, never edited."""

    list_display = ["label", "text", "account", "first_seen_at", "last_seen_at"]
    list_filter = ["label"]
    list_select_related = ["account__user"]
    search_fields = ["text", "account__user__username"]
