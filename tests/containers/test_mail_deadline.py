"""A whole e-mail send ends within EMAIL_SEND_SECONDS, however slowly the mail server talks:
an SMTP server on loopback that drips its greeting one byte at a time (each byte well within
EMAIL_TIMEOUT, which bounds one socket operation only), and a real SMTP server that answers
at once, both through the portal's e-mail backend (EMAIL_URL=smtp://...)."""

from __future__ import annotations

import logging
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.mail import get_connection, send_mail
from django.utils import timezone

from emodal_portal.mail import MailTooSlow
from notifications.models import Delivery
from notifications.sending import send
from sessions_app.models import Account

from ..hostile import elapsed
from .smtp import SmtpServer

pytestmark = pytest.mark.django_db


class DrippingSmtp(socketserver.ThreadingTCPServer):
    """Sends "220 …" one byte every `interval` seconds, then the same again, forever."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, interval: float) -> None:
        self.stopping = threading.Event()
        stopping = self.stopping

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                greeting = b"220 slow.example.com ESMTP\r\n"
                while not stopping.wait(interval):
                    for byte in greeting:
                        if stopping.wait(interval):
                            return
                        try:
                            self.request.sendall(bytes([byte]))
                        except OSError:
                            return

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def dripping(settings: Any) -> Iterator[DrippingSmtp]:
    server = DrippingSmtp(interval=0.2)
    settings.EMAIL_BACKEND = "emodal_portal.mail.DeadlineEmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.server_address[1]
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5  # per socket operation: a byte every 0.2 s never trips it
    settings.EMAIL_SEND_SECONDS = 1
    yield server
    server.stop()


def test_an_smtp_server_dripping_its_greeting_fails_the_send_at_the_deadline(
    dripping: DrippingSmtp,
) -> None:
    seconds, error = elapsed(
        lambda: send_mail("s", "b", "from@example.com", ["to@example.com"], fail_silently=False)
    )
    # Before: smtplib waits EMAIL_TIMEOUT per read, and a byte came every 0.2 s.
    assert isinstance(error, MailTooSlow), error
    assert str(error) == "the mail server did not finish within 1 s"
    assert 1.0 <= seconds <= 1.0 + 1, seconds


def test_an_alert_to_a_dripping_server_is_retried_later_with_a_readable_reason(
    alice: Account, dripping: DrippingSmtp, caplog: pytest.LogCaptureFixture
) -> None:
    alert = Delivery.objects.create(
        channel=Delivery.Channel.EMAIL,
        user=alice.user,
        recipient="alice@example.com",
        account=alice,
        subject="E-Modal: 1 new container",
        next_attempt_at=timezone.now(),
    )
    caplog.set_level(logging.INFO)
    seconds, outcome = elapsed(lambda: send(alert.pk))
    assert seconds <= 1.0 + 1, seconds
    assert str(outcome).startswith("attempt 1: failed")
    alert.refresh_from_db()
    assert alert.status == Delivery.Status.PENDING and alert.next_attempt_at is not None
    assert alert.error == "Try 1 failed: MailTooSlow: the mail server did not finish within 1 s"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_a_mail_server_that_answers_gets_the_message_through_the_same_backend(
    settings: Any,
) -> None:
    server = SmtpServer().start()
    try:
        settings.EMAIL_BACKEND = "emodal_portal.mail.DeadlineEmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_SEND_SECONDS = 5
        with get_connection() as connection:  # opened on its own, then two sends
            for number in (1, 2):
                send_mail(
                    f"n{number}", "b", "f@example.com", ["t@example.com"], connection=connection
                )
        assert [m["Subject"] for m in server.inbox.wait_for(2)] == ["n1", "n2"]
    finally:
        server.stop()
