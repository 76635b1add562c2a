"""The time zone a person reads times in: chosen on the pages (kept in their session), else
the site's. Pages that show times run in it (`in_user_zone`)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import tzinfo
from functools import wraps
from typing import Any, cast

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from .http import next_or

TIMEZONE_SESSION_KEY = "timezone"

View = Callable[..., HttpResponse]

TIME_ZONE_CHOICES = [
    "America/Los_Angeles",
    "America/Denver",
    "America/Phoenix",
    "America/Chicago",
    "America/New_York",
    "America/Anchorage",
    "Pacific/Honolulu",
    "UTC",
]


def time_zone_choices(current: str) -> list[tuple[str, str]]:
    """The zones offered, with the current one first when it is not among them."""
    names = TIME_ZONE_CHOICES if current in TIME_ZONE_CHOICES else [current, *TIME_ZONE_CHOICES]
    return [(name, name.replace("_", " ")) for name in names]


class TimeZoneForm(forms.Form):
    timezone = forms.ChoiceField(label="Show times in")
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, current: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["timezone"]).choices = time_zone_choices(current)
        self.fields["timezone"].initial = current


def user_zone(request: HttpRequest) -> tzinfo:
    """The zone the user chose (kept in their session), else the site's."""
    name = request.session.get(TIMEZONE_SESSION_KEY)
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return timezone.get_default_timezone()


def in_user_zone(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with timezone.override(user_zone(request)):
            return view(request, *args, **kwargs)

    return wrapper


@require_POST
@login_required
def set_timezone(request: HttpRequest) -> HttpResponse:
    form = TimeZoneForm(request.POST, current=str(user_zone(request)))
    if form.is_valid():
        request.session[TIMEZONE_SESSION_KEY] = form.cleaned_data["timezone"]
    return redirect(next_or(request, reverse("queries:list")))
