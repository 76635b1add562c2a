"""django-q2's "Scheduled tasks" in the admin, locked down.

A schedule names a dotted path that a worker imports and calls: whoever may write one runs
code on the workers. So only superusers may add, change or delete schedules (other staff see
them read-only, whatever permissions they were given), and even a superuser may only name a
function (and a hook) from the portal's own allowlist, `SCHEDULED_TASK_FUNCS` and
`SCHEDULED_TASK_HOOKS` in the settings, with arguments that fit its signature.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.utils.module_loading import import_string
from django_q.admin import ScheduleAdmin
from django_q.models import Schedule

# Keywords that django-q2 takes for itself when a schedule's kwargs reach `async_task`: a
# schedule could otherwise set a hook, a chain or another broker through its arguments.
Q_OPTION_KEYWORDS = frozenset(
    {
        "q_options",
        "hook",
        "group",
        "save",
        "sync",
        "cached",
        "ack_failure",
        "iter_count",
        "iter_cached",
        "chain",
        "broker",
        "timeout",
        "cluster",
        "task_name",
        "broker_name",
    }
)


def parse_arguments(args_text: str, kwargs_text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A schedule's positional and keyword arguments, read the way django-q2's scheduler
    reads them (Python literals; keywords as a dict or as `x=1, y=2`). ValueError when they
    are not literals (the scheduler would silently drop such keywords)."""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if args_text and args_text.strip():
        try:
            parsed = ast.literal_eval(args_text)
        except (SyntaxError, ValueError) as exc:
            raise ValueError("Arguments must be Python literals, e.g. 1, 'containers'.") from exc
        args = parsed if isinstance(parsed, tuple) else (parsed,)
    if kwargs_text and kwargs_text.strip():
        try:
            parsed = ast.literal_eval(kwargs_text)
        except (SyntaxError, ValueError):
            try:
                call = ast.parse(f"f({kwargs_text})", mode="eval").body
                if not isinstance(call, ast.Call) or call.args:
                    raise ValueError
                parsed = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
            except (SyntaxError, ValueError) as exc:
                raise ValueError(
                    "Keyword arguments must be Python literals, e.g. params_json='{}'."
                ) from exc
        if not isinstance(parsed, dict) or not all(isinstance(k, str) for k in parsed):
            raise ValueError("Keyword arguments must be name=value pairs.")
        kwargs = parsed
    return args, kwargs


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = "__all__"  # noqa: DJ007 - django-q2's own admin shows every field

    def clean_func(self) -> str:
        func = (self.cleaned_data.get("func") or "").strip()
        allowed = settings.SCHEDULED_TASK_FUNCS
        if func not in allowed:
            raise forms.ValidationError(
                "Only the portal's own tasks can be scheduled: %(allowed)s.",
                code="func_not_allowed",
                params={"allowed": ", ".join(allowed)},
            )
        return func

    def clean_hook(self) -> str | None:
        hook = (self.cleaned_data.get("hook") or "").strip()
        if not hook:
            return None
        allowed = settings.SCHEDULED_TASK_HOOKS
        if hook not in allowed:
            raise forms.ValidationError(
                "This hook is not allowed. Allowed hooks: %(allowed)s.",
                code="hook_not_allowed",
                params={"allowed": ", ".join(allowed) or "none"},
            )
        return hook

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        func = cleaned.get("func")
        if not func or self.has_error("func"):
            return cleaned
        try:
            args, kwargs = parse_arguments(cleaned.get("args") or "", cleaned.get("kwargs") or "")
        except ValueError as exc:
            self.add_error("kwargs" if "Keyword" in str(exc) else "args", str(exc))
            return cleaned
        options = Q_OPTION_KEYWORDS & set(kwargs)
        if options:
            self.add_error(
                "kwargs",
                f"Task options cannot be set through the arguments: {', '.join(sorted(options))}.",
            )
            return cleaned
        if cleaned.get("intended_date_kwarg"):
            kwargs[cleaned["intended_date_kwarg"]] = "2000-01-01T00:00:00+00:00"
        try:
            inspect.signature(import_string(func)).bind(*args, **kwargs)
        except TypeError as exc:
            self.add_error(None, f"These arguments do not fit {func}: {exc}.")
        return cleaned


class PortalScheduleAdmin(ScheduleAdmin):
    form = ScheduleForm

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


admin.site.unregister(Schedule)
admin.site.register(Schedule, PortalScheduleAdmin)
