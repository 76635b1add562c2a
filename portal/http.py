"""What the portal's views may assume of a request, and where one sends its user next."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


class AuthenticatedHttpRequest(HttpRequest):
    """A request past `login_required`: its user is a signed-in person, never anonymous. Only
    a type (django-stubs' way of saying so); nothing changes at run time."""

    user: User


def next_or(request: HttpRequest, fallback: str) -> str:
    """The POSTed `next` page when it is on this site, else `fallback`."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback
