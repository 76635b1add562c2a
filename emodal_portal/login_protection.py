"""Login brute-force protection: django-axes' database handler with a second limit, told.

django-axes locks a (username, client address) pair after AXES_FAILURE_LIMIT failures, so
that nobody can lock someone else out from their own address. That alone would let a guesser
with many addresses try AXES_FAILURE_LIMIT passwords from each; so a username is also locked,
from everywhere, once the failures against it from all addresses reach
AXES_USERNAME_FAILURE_LIMIT. Each address counts for at most AXES_FAILURE_LIMIT failures
(those are all the guesses it gets before its own lock), so one address alone never reaches
the username limit, however often it keeps trying.

A username locked everywhere shuts its person out too, so it is told: when a failure starts
such a lock (not at each failure during it), the person (if they have an e-mail address) and
the staff who may lift it get one e-mail each, saying how to lift it. Staff lift it in the
admin (Access attempts › "Lift the lock-out"), which forgets the username's failures.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from axes.admin import AccessAttemptAdmin
from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

logger = logging.getLogger(__name__)

LIFT_ACTION = "Lift the lock-out: forget the failed logins of the selected usernames"


def username_failures(request: HttpRequest, username: str, per_address_cap: int) -> int:
    """Failures against `username` within the cool-off time, from all addresses, each
    address counting for at most `per_address_cap`."""
    attempts = AccessAttempt.objects.filter(username=username)
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    per_address = (
        attempts.values("ip_address")
        .annotate(failures=Sum("failures_since_start"))
        .values_list("failures", flat=True)
    )
    return sum(min(failures or 0, per_address_cap) for failures in per_address)


def username_locked(request: HttpRequest, username: str, limit: int) -> bool:
    username_limit = settings.AXES_USERNAME_FAILURE_LIMIT
    return bool(username_limit) and (
        username_failures(request, username, per_address_cap=limit) >= username_limit
    )


def locked_usernames(now: datetime) -> set[str]:
    """Every username locked everywhere at `now` (for the admin's filter)."""
    limit, username_limit = settings.AXES_FAILURE_LIMIT, settings.AXES_USERNAME_FAILURE_LIMIT
    if not username_limit or not isinstance(limit, int):
        return set()
    attempts = AccessAttempt.objects.all()
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=now - settings.AXES_COOLOFF_TIME)
    totals: dict[str, int] = defaultdict(int)
    for username, failures in (
        attempts.values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"))
        .values_list("username", "failures")
    ):
        totals[username] += min(failures or 0, limit)
    return {username for username, total in totals.items() if total >= username_limit}


class PortalAxesHandler(AxesDatabaseHandler):
    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        """The pair's failures, or the failure limit itself once the username's own limit is
        reached: django-axes then locks this login out as it would the pair."""
        failures = super().get_failures(request, credentials)
        limit = get_failure_limit(request, credentials)
        username = get_client_username(request, credentials)
        if failures >= limit or not username:
            return failures
        if username_locked(request, username, limit):
            return limit
        return failures

    def user_login_failed(
        self,
        sender: Any,
        credentials: dict[str, Any],
        request: HttpRequest | None = None,
        **kwargs: Any,
    ) -> None:
        """Records the failure (django-axes), and tells of a username lock this failure
        started."""
        username = get_client_username(request, credentials) if request is not None else None
        users = get_user_model().objects
        user = users.filter(username=username).first() if username else None
        if (
            request is None
            or not username
            or user is None
            or not settings.AXES_USERNAME_FAILURE_LIMIT
        ):
            # Nobody to tell (an unknown username locks nobody out).
            super().user_login_failed(sender, credentials, request, **kwargs)
            return
        limit = get_failure_limit(request, credentials)
        with transaction.atomic():
            # One failing login of this person at a time: two at once would both see the lock
            # begin.
            users.select_for_update().filter(pk=user.pk).exists()
            locked_before = username_locked(request, username, limit)
            super().user_login_failed(sender, credentials, request, **kwargs)
            if not locked_before and username_locked(request, username, limit):
                failures = username_failures(request, username, per_address_cap=limit)
                addresses = sorted(
                    set(
                        AccessAttempt.objects.filter(
                            username=username, attempt_time__gte=get_cool_off_threshold(request)
                        ).values_list("ip_address", flat=True)
                    )
                )
                logger.warning(
                    "Login %s locked from every address after %d failed logins from %d addresses",
                    username,
                    failures,
                    len(addresses),
                )
                transaction.on_commit(
                    lambda: tell_of_lockout(user_id=user.pk, failures=failures, addresses=addresses)
                )


# --- Telling ------------------------------------------------------------------------------


def lift_url(username: str) -> str:
    path = reverse("admin:axes_accessattempt_changelist") + "?" + urlencode({"username": username})
    return settings.PORTAL_URL.rstrip("/") + path


def lift_staff(locked: AbstractBaseUser) -> list[User]:
    """Active staff with an e-mail address who may lift a lock (but the locked person)."""
    staff = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .exclude(email="")
        .exclude(pk=locked.pk)
        .order_by("pk")
    )
    return [person for person in staff if person.has_perm("axes.delete_accessattempt")]


def tell_of_lockout(*, user_id: int, failures: int, addresses: list[str]) -> None:
    """One e-mail to the locked person and one to each member of staff who may lift the lock.
    A failure to send is logged: the lock holds either way."""
    user = get_user_model().objects.get(pk=user_id)
    username = user.get_username()
    minutes = f"{settings.AXES_COOLOFF_TIME.total_seconds() / 60:g}"
    until = timezone.localtime(timezone.now() + settings.AXES_COOLOFF_TIME)
    when = f"{until:%H:%M} ({settings.TIME_ZONE})"
    counted = (
        f"{failures} failed logins in the last {minutes} minutes, from "
        f"{len(addresses)} address{'es' if len(addresses) != 1 else ''}"
    )
    lift = (
        f"To lift it now: open\n\n    {lift_url(username)}\n\n"
        f'tick the rows, choose the action "{LIFT_ACTION}" and press Go. This forgets every '
        f"failed login of {username} (from all addresses), so a guesser may start again: if "
        "the failures are an attack, block its addresses first (at the proxy or firewall)."
    )
    messages = []
    if user.email:
        messages.append(
            EmailMessage(
                subject="E-Modal Portal: your login is locked after failed logins",
                body=(
                    f"Hello {username},\n\n"
                    f"Someone tried to log in to the E-Modal Portal as {username} and failed: "
                    f"{counted}. To protect your login, the portal refuses it from every "
                    f"address until about {when}, later if the failures go on.\n\n"
                    "If it was you, wait until then and try again. If it was not, or you cannot "
                    "wait, ask an administrator: they can lift the lock at once in the portal's "
                    "admin (Access attempts) and see where the failures came from.\n"
                ),
                to=[user.email],
            )
        )
    staff = lift_staff(user)
    who = f"{username} (staff)" if user.is_staff else username
    no_address = "" if user.email else f"\n{username} has no e-mail address: tell them.\n"
    messages.extend(
        EmailMessage(
            subject=f"E-Modal Portal: the login {username} is locked on every address",
            body=(
                f"Hello {person.get_username()},\n\n"
                f"The portal login {who} is locked on every address after {counted}: "
                f"{', '.join(addresses[:20])}{' …' if len(addresses) > 20 else ''}. "
                f"It ends by itself at about {when}, later if the failures go on.\n\n"
                f"{lift}\n{no_address}"
            ),
            to=[person.email],
        )
        for person in staff
    )
    if not staff:
        logger.warning("Login %s locked: no member of staff with an e-mail to tell", username)
    try:
        get_connection().send_messages(messages)
    except Exception:
        logger.exception("Login %s locked: the e-mails telling of it could not be sent", username)


# --- The admin: lock records, and lifting a lock ------------------------------------------


class LockedEverywhereFilter(admin.SimpleListFilter):
    title = "username locked everywhere"
    parameter_name = "locked_everywhere"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(username__in=locked_usernames(timezone.now()))
        return queryset


class PortalAccessAttemptAdmin(AccessAttemptAdmin):
    """django-axes' records of failed logins (one per username, address and browser), with
    the action that lifts a lock-out."""

    list_filter = [LockedEverywhereFilter, *AccessAttemptAdmin.list_filter]
    actions = ["lift_lockouts", *AccessAttemptAdmin.actions]

    @admin.action(description=LIFT_ACTION, permissions=["delete"])
    def lift_lockouts(self, request: HttpRequest, queryset: QuerySet) -> None:
        usernames = sorted({name for name in queryset.values_list("username", flat=True) if name})
        forgotten = sum(self.handler.reset_attempts(username=name) for name in usernames)
        logger.warning(
            "%s lifted the lock-out of %s", request.user.get_username(), ", ".join(usernames)
        )
        self.message_user(
            request,
            f"Lifted the lock-out of {len(usernames)} username"
            f"{'s' if len(usernames) != 1 else ''} ({', '.join(usernames)}): "
            f"{forgotten} failed-login record{'s' if forgotten != 1 else ''} forgotten.",
        )
