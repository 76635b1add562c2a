"""Captcha budgets: how many paid solves an account, and the whole portal, may spend per
hour. Counted from the `SessionEvent.captcha_spent` rows, so every process agrees."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ..models import Account, SessionEvent
from .errors import CaptchaBudgetReached

BUDGET_WINDOW = timedelta(hours=1)


def captcha_budget_frees_at(*, account: Account | None = None) -> datetime | None:
    """When the hourly captcha budget lets a login spend again: the account's budget
    (EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR) or, without an account, the portal's
    (EMODAL_CAPTCHA_BUDGET_PER_HOUR). None while the budget is not reached; a limit of 0
    turns that budget off. Counted from the `SessionEvent.captcha_spent` rows."""
    limit = (
        settings.EMODAL_CAPTCHA_BUDGET_PER_HOUR
        if account is None
        else settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR
    )
    if limit <= 0:
        return None
    spent = SessionEvent.objects.captcha_spent().since(timezone.now() - BUDGET_WINDOW)
    if account is not None:
        spent = spent.filter(account=account)
    newest = list(spent.order_by("-created_at").values_list("created_at", flat=True)[:limit])
    if len(newest) < limit:
        return None
    # Below the limit again once the limit-th newest solve leaves the window.
    return newest[limit - 1] + BUDGET_WINDOW


def check_captcha_budget(*, account: Account) -> None:
    """Raise `CaptchaBudgetReached` when a login now could go over a budget. Per account this
    is exact (logins run under the account's lease); the portal-wide budget can be overrun by
    the logins already in flight when it is reached."""
    frees_at = captcha_budget_frees_at(account=account)
    if frees_at is not None:
        limit = settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR
        raise CaptchaBudgetReached(
            f"Captcha budget reached for account {account}: {limit} solves in the last hour "
            f"(EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR); no new session before "
            f"{timezone.localtime(frees_at):%H:%M:%S}."
        )
    frees_at = captcha_budget_frees_at()
    if frees_at is not None:
        limit = settings.EMODAL_CAPTCHA_BUDGET_PER_HOUR
        raise CaptchaBudgetReached(
            f"Captcha budget reached for the portal: {limit} solves in the last hour across "
            f"all accounts (EMODAL_CAPTCHA_BUDGET_PER_HOUR); no new session before "
            f"{timezone.localtime(frees_at):%H:%M:%S}."
        )
