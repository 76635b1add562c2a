"""A circuit breaker per upstream server, shared by every worker on every host.

After `EMODAL_BREAKER_FAILURES` transient failures of a server in a row (connection refused
or reset, 5xx automation errors, bodies that are not JSON), calls to it fail fast with
`CircuitOpen` — retryable later — instead of spending attempts, browsers and captchas on a
server that is down. `EMODAL_BREAKER_RESET_SECONDS` after it opened, exactly one call (the
probe) is let through: its success closes the breaker, its failure opens it again.

The state is a row (`UpstreamBreaker`) changed only by conditional UPDATEs, so that the
transitions hold across processes and hosts like the account lease does: one worker opens
it, one worker wins the probe. A probe whose worker died expires after the longest call.
Answers that show the server working (success, validation errors, rejected logins, a gone
session) reset the count; a read timeout neither counts nor resets (the server may only be
slow), but a probe that times out does not close the breaker.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone

from ..models import UpstreamBreaker
from .errors import CircuitOpen, Disposition, UpstreamError, UpstreamUnavailable

logger = logging.getLogger(__name__)


def counts_against_server(exc: BaseException) -> bool:
    """A transient failure of the server itself (not of a login, not a timeout)."""
    return (
        isinstance(exc, UpstreamUnavailable)
        and not isinstance(exc, CircuitOpen)
        and exc.disposition is Disposition.TRANSIENT
    )


class Breaker:
    """The breaker of one server; `guard()` wraps each upstream call."""

    def __init__(
        self,
        server: str,
        *,
        probe_seconds: float,
        failure_limit: int | None = None,
        reset_seconds: float | None = None,
        cache_seconds: float | None = None,
    ) -> None:
        self.server = server
        self.probe_seconds = probe_seconds
        self.failure_limit = (
            settings.EMODAL_BREAKER_FAILURES if failure_limit is None else failure_limit
        )
        self.reset_seconds = (
            settings.EMODAL_BREAKER_RESET_SECONDS if reset_seconds is None else reset_seconds
        )
        # A closed breaker with nothing counted is taken on trust for this long, instead of
        # being read before every call: another worker's opening it reaches this one that
        # much later. Any failure seen here ends the trust at once.
        self.cache_seconds = (
            settings.EMODAL_BREAKER_CACHE_SECONDS if cache_seconds is None else cache_seconds
        )
        self._clean_until = 0.0

    @contextmanager
    def guard(self) -> Iterator[None]:
        probe, clean = self._admit()
        try:
            yield
        except UpstreamError as exc:
            if counts_against_server(exc):
                self.failed(probe, exc.readable())
            elif exc.disposition is Disposition.INDETERMINATE:
                if probe:
                    self._reopen(probe, exc.readable())
            elif not clean:
                self.succeeded(probe)
            raise
        except BaseException:
            if probe:
                self._reopen(probe, "the probe call did not finish")
            raise
        if not clean:
            self.succeeded(probe)

    # -- transitions -------------------------------------------------------------------------

    def _rows(self) -> QuerySet[UpstreamBreaker]:
        return UpstreamBreaker.objects.filter(server=self.server)

    def admit(self) -> str:
        """Let a call through: "" for an ordinary call, a token for the probe; raise
        `CircuitOpen` when the call must not reach the server."""
        return self._admit()[0]

    def _admit(self) -> tuple[str, bool]:
        """(probe token or "", whether the breaker was closed with no failures counted — a
        success then has nothing to reset, and costs no write)."""
        if time.monotonic() < self._clean_until:
            return "", True
        row = self._rows().first()
        if row is None or row.state == UpstreamBreaker.State.CLOSED:
            clean = row is None or row.failures == 0
            if clean and self.cache_seconds > 0:
                self._clean_until = time.monotonic() + self.cache_seconds
            return "", clean
        now = timezone.now()
        token = secrets.token_hex(16)
        claim: dict[str, Any] = {"state": UpstreamBreaker.State.HALF_OPEN, "probe_token": token}
        claim["probe_expires_at"] = now + timedelta(seconds=self.probe_seconds)
        reset_before = now - timedelta(seconds=self.reset_seconds)
        if row.state == UpstreamBreaker.State.OPEN and (row.opened_at or now) <= reset_before:
            won = self._rows().filter(state=row.state, opened_at__lte=reset_before).update(**claim)
        elif row.state == UpstreamBreaker.State.HALF_OPEN and (row.probe_expires_at or now) < now:
            won = self._rows().filter(state=row.state, probe_expires_at__lt=now).update(**claim)
        else:
            won = 0
        if won:
            logger.info("upstream %s: circuit half-open, probing", self.server)
            return token, False
        raise CircuitOpen(self._open_text(row), endpoint="", status=None)

    def refuse_if_open(self) -> None:
        """For a call that must neither count nor probe (listing sessions): raise
        `CircuitOpen` unless the breaker is closed."""
        if time.monotonic() < self._clean_until:
            return
        row = self._rows().first()
        if row is not None and row.state != UpstreamBreaker.State.CLOSED:
            raise CircuitOpen(self._open_text(row), endpoint="", status=None)

    def succeeded(self, probe: str) -> None:
        if probe:
            closed = (
                self._rows()
                .filter(probe_token=probe)
                .update(
                    state=UpstreamBreaker.State.CLOSED,
                    failures=0,
                    opened_at=None,
                    probe_token="",
                    probe_expires_at=None,
                    last_error="",
                )
            )
            if closed:
                logger.info("upstream %s: circuit closed, the probe succeeded", self.server)
        else:
            self._rows().filter(state=UpstreamBreaker.State.CLOSED, failures__gt=0).update(
                failures=0
            )

    def failed(self, probe: str, error: str) -> None:
        self._clean_until = 0.0
        if probe:
            self._reopen(probe, error)
            return
        UpstreamBreaker.objects.get_or_create(server=self.server)
        closed = self._rows().filter(state=UpstreamBreaker.State.CLOSED)
        closed.update(failures=F("failures") + 1, last_error=error[:255])
        opened = closed.filter(failures__gte=self.failure_limit).update(
            state=UpstreamBreaker.State.OPEN, opened_at=timezone.now()
        )
        if opened:
            logger.warning(
                "upstream %s: circuit opened after %d failures in a row",
                self.server,
                self.failure_limit,
            )

    def _reopen(self, probe: str, error: str) -> None:
        reopened = (
            self._rows()
            .filter(probe_token=probe)
            .update(
                state=UpstreamBreaker.State.OPEN,
                opened_at=timezone.now(),
                probe_token="",
                probe_expires_at=None,
                last_error=error[:255],
            )
        )
        if reopened:
            logger.warning("upstream %s: circuit open again, the probe failed", self.server)

    def _open_text(self, row: UpstreamBreaker) -> str:
        if row.state == UpstreamBreaker.State.HALF_OPEN:
            when = "a probe call is testing it now"
        else:
            assert row.opened_at is not None
            retry_at = row.opened_at + timedelta(seconds=self.reset_seconds)
            when = f"one call tries it again from {timezone.localtime(retry_at):%H:%M:%S}"
        last = f" (last: {row.last_error})" if row.last_error else ""
        return (
            f"Upstream circuit open for {self.server} after {row.failures} failures in a row"
            f"{last}; {when}."
        )


def breaker_states() -> dict[str, dict[str, object]]:
    """Every known server's breaker, for health checks (no secrets in it)."""
    return {
        row.server: {
            "state": row.state,
            "failures": row.failures,
            "opened_at": row.opened_at.isoformat() if row.opened_at else None,
        }
        for row in UpstreamBreaker.objects.all()
    }
