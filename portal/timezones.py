"""The time zone a person reads times in: chosen on the pages (kept in their session), else
the site's. Every page runs in it (`UserZoneMiddleware`); the API does not."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import tzinfo
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from rest_framework.views import APIView

from .http import next_or

TIMEZONE_SESSION_KEY = "timezone"

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


class UserZoneMiddleware:
    """Runs every page in the person's zone (`user_zone`): the times its templates, forms and the
    admin show, and the day it counts as today. A request without a session cookie has no
    chosen zone, and its session is left unread.

    Not the API (DRF's views): DRF writes and reads times in the current zone, and an API answer
    must not depend on a browser session that comes along with a token (nor read it): the API
    answers in the site's zone (`TIME_ZONE`) whoever calls it. After the request, the zone is
    what it was before."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with timezone.override(None):  # the site's zone, until `process_view` picks the person's
            return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        view_class = getattr(view, "view_class", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            timezone.activate(user_zone(request))


@require_POST
@login_required
def set_timezone(request: HttpRequest) -> HttpResponse:
    form = TimeZoneForm(request.POST, current=str(user_zone(request)))
    if form.is_valid():
        request.session[TIMEZONE_SESSION_KEY] = form.cleaned_data["timezone"]
    return redirect(next_or(request, reverse("queries:list")))
