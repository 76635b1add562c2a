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


def blocked_text(account: Account) -> str:
    """Why no login is tried for the account, and what a person does about it."""
    state = account.credential_state
    reason = account.credential_error or account.get_credential_state_display()
    if state == Account.CredentialState.REJECTED:
        fix = "Fix the credentials (admin or `manage.py set_credentials`) to try again."
    elif state == Account.CredentialState.KEY_SUSPECT:
        fix = (
            "Check the key with the captcha service, then enter it again or choose "
            "“Allow logins again” in the admin."
        )
    else:
        fix = "Then choose “Allow logins again” in the admin, or enter the credentials again."
    return f"Account {account}: {reason}. {fix}"


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
