"""Names a check is sent with, against what E-Modal's appointment page has listed: the page
picks an option by its exact text, else silently by the first option containing the value, so
a name that is only part of a listed option is never sent (see sessions_app.services.options)."""

from __future__ import annotations

from django.conf import settings

from sessions_app.models import Account
from sessions_app.services import ambiguous_name, record_options_from_error
from sessions_app.services.options import TERMINAL, TRUCKING
from sessions_app.upstream import UpstreamError

from ..models import Terminal


def ambiguous(account: Account, terminal: str) -> str:
    """Why a check is not sent with these names ("" when it may be): a name that is not an
    option E-Modal listed but part of one would make its page check that option instead."""
    other = ambiguous_name(TERMINAL, terminal)
    if other is not None:
        return (
            f"Not sent: the terminal name “{terminal}” is part of “{other}”, which E-Modal "
            "lists, so its page would check that terminal instead. Ask "
            f"{settings.PORTAL_STAFF_CONTACT} to give the terminal its full name."
        )[:255]
    other = ambiguous_name(TRUCKING, account.trucking_company, account_id=account.pk)
    if other is not None:
        return (
            f"Not sent: the trucking company “{account.trucking_company}” is part of "
            f"“{other}”, which E-Modal lists, so its page would pick that company instead. "
            f"Ask {settings.PORTAL_STAFF_CONTACT} to correct it."
        )[:255]
    return ""


def keep_listed_options(account: Account, error: UpstreamError) -> None:
    """Keep the options an `Option 'X' not found in <Label>. Available options: …` failure
    lists (the names the portal knows help split a list whose names hold commas)."""
    known = [*Terminal.objects.exclude(name="").values_list("name", flat=True)]
    record_options_from_error(
        error.message, account_id=account.pk, known=[*known, account.trucking_company]
    )
