"""Who may see and act on which queries, containers and accounts: one home for the rules the
pages, the API and the webhooks all follow (the admin asks Django's permissions the same way).

A person sees their own account's data; staff see every account's with the view permission of
that data — "Can view query" for queries (the default below), "Can view container" for the
board (`containers_app.selectors`) and its events. Staff may start queries for any account when
they may also see them and hold "Can start queries for any account", and cancel another
account's query with the latter.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from sessions_app.models import Account, AccountQuerySet

from .models import Query

VIEW_QUERIES = "queries_app.view_query"
RUN_FOR_ANY = "queries_app.run_query"
# What a person without an E-Modal account is told where they would start queries.
NO_ACCOUNT_MESSAGE = (
    "Your login has no E-Modal account yet, so you cannot start queries. "
    "Ask an administrator to add your E-Modal credentials."
)


def sees_others(user: Any, permission: str = VIEW_QUERIES) -> bool:
    """Whether a person sees every account's data of a kind (its view permission)."""
    return bool(getattr(user, "is_staff", False) and user.has_perm(permission))


def runs_for_others(user: Any) -> bool:
    return bool(getattr(user, "is_staff", False) and user.has_perm(RUN_FOR_ANY))


def may_choose_account(user: Any, permission: str = VIEW_QUERIES) -> bool:
    # Starting a query for another account leads to what it finds: seeing it takes both.
    return sees_others(user, permission) and runs_for_others(user)


def may_start_for(user: Any, account: Account) -> bool:
    return account.user_id == user.pk or may_choose_account(user)


def may_cancel(user: Any, query: Query) -> bool:
    return query.account.user_id == user.pk or runs_for_others(user)


def visible_accounts(user: Any, permission: str = VIEW_QUERIES) -> AccountQuerySet:
    """The accounts whose data (queries by default) a person may see, without their secrets."""
    accounts = _accounts()
    return accounts if sees_others(user, permission) else accounts.filter(user=user)


def runnable_accounts(user: Any, permission: str) -> QuerySet[Account]:
    """The accounts a person may start (or schedule) queries for: their own; every account for
    staff who may start queries for any and see their data (by its view permission)."""
    accounts = _accounts()
    return accounts if may_choose_account(user, permission) else accounts.filter(user=user)


def _accounts() -> AccountQuerySet:
    return Account.objects.select_related("user").defer(*Account.SECRET_FIELDS)
