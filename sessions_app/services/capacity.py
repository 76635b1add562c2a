"""Browsers per upstream server: an account holds one of its server's `SessionSlot`s for as
long as it keeps a session, so that the sessions in use stay under EMODAL_MAX_SESSIONS across
all workers and hosts (claimed by conditional UPDATE). When every browser is taken, the
portal frees one itself — a session dead by its idle timer, else its own least recently used
idle one of an account no work waits for — rather than let the upstream evict blindly.

Which accounts have work waiting is told by providers registered with
`register_demand_provider` (the query engine registers one in its AppConfig.ready()); a freed
browser is announced with the `browser_freed` signal."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from portal.claims import new_token

from ..models import Account, SessionEvent, SessionSlot
from ..signals import browser_freed
from .errors import BrowsersBusy
from .lease import AccountLease, Lease

if TYPE_CHECKING:
    from .store import SessionStore

DemandProvider = Callable[[list[int]], Iterable[int]]
_demand_providers: list[DemandProvider] = []


def register_demand_provider(provider: DemandProvider) -> None:
    """`provider(account_ids)` names those of the accounts with work waiting for their session:
    their browser is not taken from them."""
    if provider not in _demand_providers:
        _demand_providers.append(provider)


class Browsers:
    """Hands out the upstream servers' browsers (see the module docstring): under accounts'
    leases (`lease`), freeing a browser by closing and forgetting a session (`store`); a
    login waits up to `wait_seconds` for one, polling every `poll_seconds`."""

    def __init__(
        self,
        *,
        lease: AccountLease,
        store: SessionStore,
        wait_seconds: float,
        poll_seconds: float,
    ) -> None:
        self.lease = lease
        self.store = store
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds

    def _assign_upstream(self, account: Account) -> None:
        """Keep the account on its server; a new (or removed) one goes to the least loaded."""
        urls = settings.EMODAL_API_URLS
        if account.upstream_url in urls:
            return
        load = dict(
            Account.objects.filter(upstream_url__in=urls)
            .values_list("upstream_url")
            .annotate(n=Count("pk"))
        )
        choice = min(urls, key=lambda url: (load.get(url, 0), urls.index(url)))
        # Compare-and-set: two workers assigning the account at once agree on the first
        # one's choice (a session on one server counted against another would let the
        # upstream evict).
        if Account.objects.filter(pk=account.pk, upstream_url=account.upstream_url).update(
            upstream_url=choice
        ):
            account.upstream_url = choice
        else:
            account.upstream_url = Account.objects.values_list("upstream_url", flat=True).get(
                pk=account.pk
            )
            self._assign_upstream(account)

    def reserve(self, account: Account) -> bool:
        """Hold one of the account's server's browsers, if one can be had now: a free one, or
        one the portal frees by closing its own least recently used idle session (rather than
        let the upstream evict someone blindly, possibly mid-call). False if every browser is
        in use by accounts with work, or the account is busy (whoever holds its lease sees
        to its browser); nothing waits. The account keeps the browser for as long as it
        keeps a session."""
        if SessionSlot.objects.filter(account=account, server=account.upstream_url).exists():
            return True
        # Under the account's lease, so that two workers starting the account at once do
        # not both free a browser for it.
        lease = Lease(token=new_token())
        if not self.lease.take(account, lease.token):
            return False
        try:
            return self._reserve(account)
        finally:
            self.lease.give_back(account, lease)

    def _reserve(self, account: Account) -> bool:
        self._assign_upstream(account)
        server = account.upstream_url
        if SessionSlot.objects.filter(account=account, server=server).exists():
            return True
        # A slot on a former server. Not one on this server: another worker may have just
        # reserved it for this account.
        release_slot(account, keep_server=server)
        limit = settings.EMODAL_MAX_SESSIONS
        if SessionSlot.objects.filter(server=server, number__lt=limit).count() < limit:
            for number in range(limit):
                SessionSlot.objects.get_or_create(server=server, number=number)
        for _ in range(3):  # others may take a browser freed here first
            free = SessionSlot.objects.filter(server=server, number__lt=limit, account=None)
            for slot_id in free.values_list("pk", flat=True)[:5]:
                try:
                    with transaction.atomic():
                        taken = SessionSlot.objects.filter(pk=slot_id, account=None).update(
                            account=account, claimed_at=timezone.now()
                        )
                except IntegrityError:
                    # Another worker reserved a browser for this account meanwhile (an
                    # account holds one slot at most).
                    return SessionSlot.objects.filter(account=account, server=server).exists()
                if taken:
                    return True
            if not self._reclaim_slot(server, limit):
                return False
        return False

    def take_or_wait(self, account: Account, token: str) -> None:
        """Hold one of the server's browsers before logging in; if every one is in use by
        accounts with work, wait for one (up to EMODAL_SLOT_WAIT_SECONDS)."""
        wait = min(self.wait_seconds, settings.EMODAL_SLOT_WAIT_SECONDS)
        deadline = time.monotonic() + wait
        while not self._reserve(account):
            if time.monotonic() >= deadline:
                raise BrowsersBusy(
                    f"All {settings.EMODAL_MAX_SESSIONS} upstream browsers stayed in use for "
                    f"{wait:.0f} s; the query waits its turn and is retried."
                )
            self.lease.extend(account, token, None)
            time.sleep(self.poll_seconds * random.uniform(0.8, 1.2))  # noqa: S311

    def _reclaim_slot(self, server: str, limit: int) -> bool:
        """Free one slot: first a session that is dead by its idle timer, else the least
        recently used idle one (closed upstream). Never one in the middle of a call: the
        victim's own lease is taken first (without waiting)."""
        holders = [
            slot.account
            for slot in SessionSlot.objects.filter(
                server=server, number__lt=limit, account__isnull=False
            )
            .select_related("account")
            .order_by("account__session_last_used_at")
            if slot.account is not None
        ]
        now = timezone.now()
        wanted = accounts_in_demand([holder.pk for holder in holders])
        # A session dead by its timer is free to take; a live one only if its account has no
        # work waiting (taking it would cost that account a new login at its next step).
        candidates = [
            holder
            for holder in holders
            if not holder.session_is_live(now) or holder.pk not in wanted
        ]
        dead_first = sorted(candidates, key=lambda holder: holder.session_is_live(now))
        for victim in dead_first:
            lease = Lease(token=new_token())
            if not self.lease.take(victim, lease.token):
                continue  # in use right now
            try:
                victim.refresh_from_db()
                started = time.monotonic()
                if not victim.session_id:
                    release_slot(victim)
                    return True
                if victim.session_is_live(now):
                    self.store.close_upstream(victim)
                    kind = SessionEvent.Kind.CLOSED_FOR_CAPACITY
                else:
                    kind = SessionEvent.Kind.EXPIRED_LOCALLY
                self.store.clear(victim, victim.session_version)
                self.store.record(victim, kind, started)
                return True
            finally:
                self.lease.give_back(victim, lease)
        return False


def accounts_in_demand(account_ids: list[int]) -> set[int]:
    """Which of these accounts have work waiting for their session (see the providers)."""
    if not account_ids:
        return set()
    found: set[int] = set()
    for provider in _demand_providers:
        found.update(provider(account_ids))
    return found


def release_slot(account: Account, *, keep_server: str | None = None) -> None:
    """Give back the account's browser (but one on `keep_server`)."""
    held = SessionSlot.objects.filter(account=account)
    if keep_server is not None:
        held = held.exclude(server=keep_server)
    for server in set(held.values_list("server", flat=True)):
        freed = held.filter(server=server).update(account=None, claimed_at=None)
        # Work that waits for a browser on that server need not wait for its retry time.
        if freed:
            browser_freed.send(sender=SessionSlot, server=server, count=freed)
