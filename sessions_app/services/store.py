"""The session store: an account's upstream session as the portal keeps it (the session
columns of its row, changed by short autocommit writes), closing it upstream, and the
`SessionEvent` record of everything that happens to it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ..models import Account, SessionEvent
from ..upstream import EModalClient, UpstreamError
from .capacity import release_slot

logger = logging.getLogger(__name__)


class SessionStore:
    """Stores, forgets and closes accounts' sessions, and records each event; upstream calls
    go through `client_for(account)`."""

    def __init__(self, *, client_for: Callable[[Account], EModalClient]) -> None:
        self.client_for = client_for

    def store(
        self,
        account: Account,
        session_id: str,
        *,
        last_used: datetime | None,
        created_here: bool,
    ) -> None:
        now = timezone.now()
        account.session_id = session_id
        account.session_version += 1
        account.session_created_at = now
        account.session_last_used_at = last_used or now
        account.session_uses = 0
        account.session_created_here = created_here
        account.held_workflows = 0
        account.browser_closes_at = None
        with transaction.atomic():
            account.save(
                update_fields=[
                    "session_id",
                    "session_version",
                    "session_created_at",
                    "session_last_used_at",
                    "session_uses",
                    "session_created_here",
                    "held_workflows",
                    "browser_closes_at",
                    "updated_at",
                ]
            )

    def clear(self, account: Account, version: int) -> bool:
        """Forget the session only if it is still the one of `version` (compare-and-set), and
        give its browser back."""
        cleared = Account.objects.filter(pk=account.pk, session_version=version).update(
            session_id=None,
            session_version=version + 1,
            session_created_at=None,
            session_last_used_at=None,
            session_uses=0,
            held_workflows=0,
            browser_closes_at=None,
        )
        if cleared:
            release_slot(account)
        account.refresh_from_db()
        return cleared == 1

    def close_upstream(self, account: Account) -> None:
        """Close the account's session upstream — only one the portal created itself: one
        adopted from the upstream may be another system's, which it would break."""
        if not account.session_created_here:
            return
        try:
            self.client_for(account).delete_session(str(account.session_id))
        except UpstreamError as exc:
            logger.warning("Could not close the session of %s upstream: %s", account, exc)

    def record(
        self,
        account: Account,
        kind: str,
        started: float,
        *,
        detail: str = "",
        captcha_spent: bool = False,
    ) -> None:
        """One `SessionEvent` for the account, timed from `started` (time.monotonic())."""
        duration_ms = int((time.monotonic() - started) * 1000)
        SessionEvent.objects.create(
            account=account,
            kind=kind,
            detail=detail,
            captcha_spent=captcha_spent,
            duration_ms=duration_ms,
        )
        logger.info("account %s: %s (%d ms)", account.pk, kind, duration_ms)
