"""Who may see and act on which queries and accounts: one home for the rules the pages and the
API both follow (the admin asks Django's permissions the same way).

A person sees their own account's queries; staff with "Can view query" see everyone's. Staff
may start queries for any account when they may also see them and hold "Can start queries for
any account", and cancel another account's query with the latter.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from sessions_app.models import Account

from .models import Query


def sees_others(user: Any) -> bool:
    return bool(user.is_staff and user.has_perm("queries_app.view_query"))


def may_choose_account(user: Any) -> bool:
    # Starting a query for another account leads to its page: seeing it takes both.
    return sees_others(user) and user.has_perm("queries_app.run_query")


def may_start_for(user: Any, account: Account) -> bool:
    return account.user_id == user.pk or may_choose_account(user)


def may_cancel(user: Any, query: Query) -> bool:
    if query.account.user_id == user.pk:
        return True
    return bool(user.is_staff and user.has_perm("queries_app.run_query"))


def visible_accounts(user: Any) -> QuerySet[Account]:
    """The accounts whose queries (and containers) a person may see, without their secrets."""
    accounts = Account.objects.select_related("user").defer(*Account.SECRET_FIELDS)
    return accounts if sees_others(user) else accounts.filter(user=user)
