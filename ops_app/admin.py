"""The operations page, in the admin: charts of what the portal costs and how it is doing,
for staff holding "Can view the operations page"."""

from __future__ import annotations

from typing import Any

from axes.models import AccessAttempt
from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from emodal_portal.login_protection import PortalAccessAttemptAdmin
from portal.admin import ReadOnlyAdmin

from .charts import Series, bar_chart, column_chart
from .dashboard import CAPTCHA_OUTCOMES, DEFAULT_PERIOD, PERIODS, operations_figures
from .models import Operations

PERMISSION = "ops_app.view_operations"


class PeriodForm(forms.Form):
    days = forms.TypedChoiceField(
        label="Period",
        choices=[(days, f"last {days} days") for days in PERIODS],
        coerce=int,
        initial=DEFAULT_PERIOD,
    )


@admin.register(Operations)
class OperationsAdmin(ReadOnlyAdmin):
    """No table behind it: one page, no objects to list, add, change or delete."""

    deletable = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Operations]:
        return Operations.objects.none()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm(PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def get_urls(self) -> list[Any]:
        info = (self.opts.app_label, self.opts.model_name)
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.operations_view), name="{}_{}_changelist".format(*info)),
            path("add/", wrap(self.add_view), name="{}_{}_add".format(*info)),
        ]

    def operations_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PeriodForm(request.GET or {"days": DEFAULT_PERIOD})
        status = 200
        if form.is_valid():
            days = form.cleaned_data["days"]
        else:
            days, status = DEFAULT_PERIOD, 400
        figures = operations_figures(days=days)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Operations",
            "subtitle": f"last {days} days",
            "form": form,
            "days": days,
            "figures": figures,
            "charts": charts(figures),
            "now": timezone.now(),
            "account_url": reverse("admin:sessions_app_account_changelist"),
        }
        return TemplateResponse(request, "admin/ops_app/operations.html", context, status=status)


def charts(figures: Any) -> dict[str, Any]:
    labels = [day.strftime("%m-%d") for day in figures.days]
    captcha_css = {"created": "s0", "rejected": "s3", "failed": "s2"}
    query_css = {"succeeded": "s1", "failed": "s3", "cancelled": "s4", "running": "s5"}
    return {
        "captchas_per_day": column_chart(
            label="Captcha solves per day",
            categories=labels,
            series=[
                Series(kind.label, figures.captchas_per_day[kind.value], captcha_css[kind.value])
                for kind in CAPTCHA_OUTCOMES
            ],
        ),
        "captchas_per_account": bar_chart(
            label="Captcha solves per account",
            labels=[name for name, _ in figures.captchas_per_account],
            series=[Series("solves", [n for _, n in figures.captchas_per_account], "s0")],
        ),
        "queries_per_day": column_chart(
            label="Queries per day by outcome",
            categories=labels,
            series=[
                Series(name.capitalize(), values, query_css[name])
                for name, values in figures.queries_per_day.items()
            ],
        ),
        "login_share": column_chart(
            label="Share of queries that needed a login, per day",
            categories=labels,
            series=[Series("needed a login", figures.login_share_per_day, "s2")],
            unit=" %",
            maximum=100,
        ),
        "latency": bar_chart(
            label="Upstream latency per endpoint",
            labels=[endpoint for endpoint, *_ in figures.latency],
            series=[
                Series("p50", [p50 for _, p50, _, _ in figures.latency], "s1"),
                Series("p95", [p95 for _, _, p95, _ in figures.latency], "s2"),
            ],
            unit=" s",
            label_width=200,
        ),
        "failures": bar_chart(
            label="Why queries failed this week",
            labels=[reason for reason, _ in figures.failure_reasons],
            series=[Series("queries", [n for _, n in figures.failure_reasons], "s3")],
            label_width=320,
        ),
    }


# django-axes' records of failed logins, with the action that lifts a lock-out (the e-mails
# telling of a lock link here): emodal_portal/login_protection.py.
if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, PortalAccessAttemptAdmin)
