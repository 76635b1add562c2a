"""Accounts' credentials and the states that stop logins: what a person changes, confirms or
reads about an account."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..fields import SecretUnreadable
from ..models import Account
from .capacity import release_slot

SESSION_FIELDS = (
    "session_id",
    "session_version",
    "session_created_at",
    "session_last_used_at",
    "session_uses",
)


def drop_session_locally(*, account: Account) -> None:
    """Forget the account's session without an upstream call (it idles out upstream); the
    caller saves the account."""
    account.session_id = None
    account.session_version += 1
    account.session_created_at = None
    account.session_last_used_at = None
    account.session_uses = 0
    account.held_workflows = 0
    account.browser_closes_at = None
    release_slot(account)


def hold_workflow(*, account: Account, version: int) -> None:
    """A failed appointment check left its workflow held on the browser of the account's
    session `version`: count it, and note when the first held one closes that browser (the
    SessionManager replaces the session before then). Nothing if the session has changed."""
    closes_at = timezone.now() + timedelta(seconds=settings.EMODAL_POISON_SECONDS)
    Account.objects.filter(pk=account.pk, session_version=version).update(
        held_workflows=F("held_workflows") + 1,
        browser_closes_at=Coalesce(F("browser_closes_at"), closes_at),
    )


def release_workflow(*, account: Account, version: int) -> None:
    """A resumed check succeeded: its workflow, held by the failure, is dropped upstream."""
    held = Account.objects.filter(pk=account.pk, session_version=version, held_workflows__gt=0)
    held.filter(held_workflows=1).update(held_workflows=0, browser_closes_at=None)
    held.update(held_workflows=F("held_workflows") - 1)


def staff_contact() -> str:
    """Who can fix an account, as dispatchers read it (PORTAL_STAFF_CONTACT)."""
    return settings.PORTAL_STAFF_CONTACT


def stop_words(state: str, detail: str = "") -> str:
    """Why an account's logins stopped (its credential state and stored reason), in a
    dispatcher's words: never a state's or an upstream error's code, never a command (staff
    read `credential_error` for the detail)."""
    if state == Account.CredentialState.REJECTED:
        if "VPN" in detail:
            return "E-Modal refused the account's login: it asks for a VPN connection"
        return "E-Modal refused the account's user name or password"
    if state == Account.CredentialState.KEY_SUSPECT:
        return (
            "E-Modal's login puzzle (captcha) was not solved several times in a row: the "
            "captcha service's key may be wrong or out of credit"
        )
    if state == Account.CredentialState.LOGIN_FAILING:
        return "logins to E-Modal kept failing for a reason E-Modal did not give"
    return ""


def blocked_text(account: Account) -> str:
    """Why no login is tried for the account, and who can fix it (the text a failed run shows
    its dispatcher)."""
    state = account.credential_state
    what = (
        "the credentials are corrected"
        if state == Account.CredentialState.REJECTED
        else "someone checks the account"
    )
    why = stop_words(state, account.credential_error)
    return f"Account {account}: {why}. No login is tried until {what}: ask {staff_contact()}."


def allow_logins(*, account: Account) -> bool:
    """A person confirmed the account's credentials (after a suspect key or failing logins):
    logins may spend again. False if it was not blocked for one of those reasons (rejected
    credentials are cleared only by changing them)."""
    updated = Account.objects.filter(
        pk=account.pk,
        credential_state__in=[
            Account.CredentialState.KEY_SUSPECT,
            Account.CredentialState.LOGIN_FAILING,
        ],
    ).update(
        credential_state=Account.CredentialState.UNKNOWN, credential_error="", login_failures=0
    )
    account.refresh_from_db()
    return updated == 1


def update_account_credentials(
    *,
    account: Account,
    emodal_username: str | None = None,
    password: str | None = None,
    captcha_api_key: str | None = None,
    commit: bool = True,
) -> list[str]:
    """Store new credentials (None or "" keeps a field). A change clears a rejected state and
    drops the stored session, which belonged to the old credentials. Returns the names of
    the fields that changed (never their values)."""
    changed = []
    session_fields: list[str] = []
    for name, value in (
        ("emodal_username", emodal_username),
        ("password", password),
        ("captcha_api_key", captcha_api_key),
    ):
        if not value:
            continue
        current = getattr(account, name)
        try:
            same = str(current) == value if current is not None else False
        except SecretUnreadable:
            same = False
        if not same:
            setattr(account, name, value)
            changed.append(name)
    if changed:
        account.credential_state = Account.CredentialState.UNKNOWN
        account.credential_error = ""
        account.login_failures = 0
        account.credentials_changed_at = timezone.now()
        if account.session_id:
            drop_session_locally(account=account)
            session_fields = list(SESSION_FIELDS)
    if commit and account.pk is None:
        account.save()
    elif commit and changed:
        # Only what this changes: the object may be older than the row's lease and session
        # columns, which other workers keep (writing them back would hold a lease forever).
        state = ["credential_state", "credential_error", "login_failures", "credentials_changed_at"]
        account.save(update_fields=[*changed, *state, *session_fields, "updated_at"])
    return changed
