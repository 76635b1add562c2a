"""django-q2 entry points for session work. They take an account id, never a secret."""

from __future__ import annotations

import logging

from django.db import transaction
from django_q.tasks import async_task

from .models import Account
from .services import SessionError, SessionManager

logger = logging.getLogger(__name__)


def refresh_session(account_id: int) -> str:
    account = Account.objects.select_related("user").get(pk=account_id)
    try:
        SessionManager().refresh_session(account)
    except SessionError as exc:
        logger.warning("Session refresh for account %s failed: %s", account_id, exc)
        return f"failed: {exc}"
    return "refreshed"


def drop_session(account_id: int) -> str:
    account = Account.objects.select_related("user").get(pk=account_id)
    return "dropped" if SessionManager().drop_session(account) else "no session"


def enqueue_refresh_session(*, account_id: int) -> None:
    transaction.on_commit(
        lambda: async_task(
            "sessions_app.tasks.refresh_session",
            account_id,
            task_name=f"refresh-session-{account_id}",
        )
    )


def enqueue_drop_session(*, account_id: int) -> None:
    transaction.on_commit(
        lambda: async_task(
            "sessions_app.tasks.drop_session", account_id, task_name=f"drop-session-{account_id}"
        )
    )
