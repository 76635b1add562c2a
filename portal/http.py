"""What the portal's views may assume of a request."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """A request past `login_required`: its user is a signed-in person, never anonymous. Only
    a type (django-stubs' way of saying so); nothing changes at run time."""

    user: User
