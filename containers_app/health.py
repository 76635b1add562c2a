"""Account health where the dispatcher looks: whether an account's updates have stopped (its
logins, or its appointment checks) and until someone acts, in a dispatcher's words, since when,
who can fix it, and how old the data under it is. The board's banner and the alert e-mails read
it; the staff pages keep the detail (`Account.credential_error`, `appointment_error`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from sessions_app.models import Account
from sessions_app.services.accounts import staff_contact, stop_words

from .models import Container


@dataclass(frozen=True)
class Stop:
    """One reason an account's updates stopped."""

    # rejected, key_suspect, login_failing (no logins) or field_refused (no appointment checks).
    reason: str
    what: str  # what stopped: "Updates" or "Appointment checks"
    words: str  # why, in a dispatcher's words
    fix: str  # what the contact does about it
    since: datetime | None
    detail: str  # staff only: the stored reason, as the upstream gave it


@dataclass(frozen=True)
class AccountHealth:
    account: Account
    stops: list[Stop]
    contact: str
    # The newest containers sheet the board holds for the account: the data under the banner.
    as_of: datetime | None


# The account's fields E-Modal's appointment page can fail to list (a truck plate is never
# refused: the page silently uses its first listed plate).
REFUSED_FIELDS = ("trucking company",)


def account_stops(account: Account) -> list[Stop]:
    stops = []
    if account.logins_blocked:
        fix = (
            "enter the account's new E-Modal user name and password"
            if account.credential_state == Account.CredentialState.REJECTED
            else "check the account and allow its logins again"
        )
        stops.append(
            Stop(
                reason=str(account.credential_state),
                what="Updates",
                words=stop_words(account.credential_state, account.credential_error),
                fix=fix,
                since=account.logins_stopped_at,
                detail=account.credential_error,
            )
        )
    if account.appointment_error:
        text = account.appointment_error.lower()
        field = next((name for name in REFUSED_FIELDS if name in text), "details")
        stops.append(
            Stop(
                reason="field_refused",
                what="Appointment checks",
                words=f"E-Modal's appointment page does not list the account's {field}",
                fix=f"correct the account's {field}",
                since=account.appointment_error_at,
                detail=account.appointment_error,
            )
        )
    return stops


def stopped_accounts(accounts: Iterable[Account]) -> list[AccountHealth]:
    """The health of those of these accounts whose updates stopped (none: an empty list)."""
    accounts = list(accounts)
    stopped = {account.pk: account_stops(account) for account in accounts}
    stopped = {pk: stops for pk, stops in stopped.items() if stops}
    if not stopped:
        return []
    as_of = dict(
        Container.objects.filter(account_id__in=list(stopped))
        .order_by()
        .values("account_id")
        .annotate(latest=Max("sheet_seen_at"))
        .values_list("account_id", "latest")
    )
    contact = staff_contact()
    return [
        AccountHealth(
            account=account, stops=stopped[account.pk], contact=contact, as_of=as_of.get(account.pk)
        )
        for account in accounts
        if account.pk in stopped
    ]


def account_health(account_id: int | None) -> AccountHealth | None:
    """One account's health, if its updates stopped."""
    if account_id is None:
        return None
    account = (
        Account.objects.select_related("user")
        .defer(*Account.SECRET_FIELDS)
        .filter(pk=account_id)
        .first()
    )
    found = stopped_accounts([account]) if account is not None else []
    return found[0] if found else None
