"""Canary scan: an account's password, captcha key and session id appear nowhere but in
their encrypted columns — not in any table (django-q's included), log line or admin page."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ, Task
from django_q.tasks import async_task

from sessions_app.models import Account
from sessions_app.services import SessionManager

from .conftest import make_account
from .sim import SimControl

pytestmark = pytest.mark.django_db(transaction=True)


def dump_database() -> str:
    """Every row of every table as text, plus django-q's pickled fields decoded."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            parts.extend(repr(row) for row in cursor.fetchall())
    for task in Task.objects.all():
        parts.append(repr((task.args, task.kwargs, task.result)))
    for queued in OrmQ.objects.all():
        parts.append(repr(queued.task))
    return "\n".join(parts)


def test_canaries_appear_nowhere(
    sim: SimControl, staff: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password, key = f"pw-{secrets.token_hex(8)}", f"key-{secrets.token_hex(8)}"
    account = make_account("canary", password=password, captcha_api_key=key)
    manager = SessionManager()

    first = manager.ensure_session(account)
    manager.run(account, lambda api, sid: api.get_appointments(sid))
    sim.delete(first)  # forces a replacement mid-use
    manager.run(account, lambda api, sid: api.get_appointments(sid))
    async_task("sessions_app.tasks.refresh_session", account.pk, sync=True)
    account.refresh_from_db()
    session_ids = {first, account.session_id}
    sim.fault("*", status=500, error=f"Automation failed in {account.session_id}")
    with pytest.raises(Exception) as failure:
        manager.run(account, lambda api, sid: api.get_appointments(sid))

    client = Client()
    client.force_login(staff)
    pages = [
        reverse("admin:sessions_app_account_changelist"),
        reverse("admin:sessions_app_account_change", args=[account.pk]),
        reverse("admin:sessions_app_sessionevent_changelist"),
        reverse("admin:django_q_success_changelist"),
        reverse("admin:django_q_failure_changelist"),
    ]
    if admin.site.is_registered(OrmQ):  # only with the ORM broker
        pages.append(reverse("admin:django_q_ormq_changelist"))
    html = "\n".join(client.get(url).content.decode() for url in pages)
    haystacks = {
        "database": dump_database(),
        "logs": "\n".join(r.getMessage() for r in caplog.records),
        "admin pages": html,
        "exception": str(failure.value) + repr(failure.value),
    }
    for canary in (password, key, *session_ids):
        for name, text in haystacks.items():
            assert canary not in text, f"secret found in {name}"
    # The scan can see: the session was really used and the pages really rendered.
    assert Account.objects.get(pk=account.pk).session_id in session_ids
    assert "canary" in html
