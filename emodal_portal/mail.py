"""Django's SMTP e-mail backend with one deadline for a whole send.

EMAIL_TIMEOUT bounds each socket operation of smtplib, not a send: a mail server that answers
one byte every few seconds, or never finishes its greeting, would hold the worker sending an
alert for as long as it likes. Here connecting, the SMTP conversation (TLS included) and the
message together end within EMAIL_SEND_SECONDS (`emodal_portal.outbound.Deadline`); past it
the send fails with `MailTooSlow`, a `TimeoutError`, so that the alert is tried again later
like any unreachable server's.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend

from .outbound import Deadline, bound_connect_timeout, current_deadline


class MailTooSlow(TimeoutError):
    """The mail server did not finish a send within EMAIL_SEND_SECONDS."""


class WatchedSMTP(smtplib.SMTP):
    """smtplib's client handing its socket to the send's deadline as soon as it connects."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # smtplib's own hook (private, hence missing from typeshed).
        sock = super()._get_socket(host, port, bound_connect_timeout(timeout))  # type: ignore[misc]
        deadline = current_deadline()
        if deadline is not None:
            deadline.watch(sock)  # before any TLS: the deadline's copy outlives the wrapping
        return sock


class WatchedSMTPSSL(smtplib.SMTP_SSL, WatchedSMTP):
    """SMTP over TLS: `SMTP_SSL._get_socket` wraps the socket `WatchedSMTP` made."""


class DeadlineEmailBackend(EmailBackend):
    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return WatchedSMTPSSL if self.use_ssl else WatchedSMTP

    def open(self) -> bool | None:
        if current_deadline() is not None:
            return super().open()
        with self._deadline() as deadline:  # opened on its own, outside a send
            return self._within(deadline, super().open)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        send = super().send_messages
        with self._deadline() as deadline:
            if self.connection is not None and self.connection.sock is not None:
                deadline.watch(self.connection.sock)  # a connection opened before
            return self._within(deadline, lambda: send(email_messages))

    def _deadline(self) -> Deadline:
        return Deadline(settings.EMAIL_SEND_SECONDS)

    def _within(self, deadline: Deadline, send: Any) -> Any:
        try:
            return send()
        except Exception:
            if deadline.passed:
                if self.connection is not None:
                    self.connection.close()  # the socket, without a QUIT nobody would read
                    self.connection = None
                raise MailTooSlow(
                    f"the mail server did not finish within {deadline.seconds:g} s"
                ) from None
            raise
