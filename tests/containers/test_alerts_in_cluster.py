"""The board and its alerts in real qcluster processes: the query's worker only enqueues the
board's task; another task merges the run and records its events, and a worker of the
delivery cluster sends the one e-mail to a real SMTP server on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from containers_app.models import Container, Event
from notifications.models import AlertPreference, Delivery
from queries_app.events import EventType
from queries_app.models import Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..engine.test_query_cluster import wait_until
from ..sim import SimControl
from ..taskqueue import TaskQueue
from .smtp import SmtpServer, text_and_html

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_run_in_the_cluster_updates_the_board_and_mails_its_alert_once(
    alice: Account, sim: SimControl, task_queue: TaskQueue, clusters: Any, smtp: SmtpServer
) -> None:
    alice.user.email = "alice@example.com"
    alice.user.save()
    AlertPreference.objects.create(
        user=alice.user,
        events=[EventType.CONTAINER_NEW, EventType.CONTAINER_GONE, EventType.LFD_CHANGED],
    )
    mail = {"EMAIL_URL": smtp.url, "PORTAL_URL": "https://portal.example.com"}
    clusters(workers=2, **mail)
    # The e-mail goes out from the delivery cluster, as under `make run` and `make serve`.
    clusters(workers=1, Q_CLUSTER_NAME="deliveries", **mail)

    def run() -> Query:
        query, _ = start_query(account=alice, kind="containers")
        wait_until(lambda: not Query.objects.get(pk=query.pk).is_live)
        query.refresh_from_db()
        assert query.status == Query.Status.SUCCEEDED, query.error
        return query

    first = run()
    wait_until(lambda: Container.objects.filter(sheet_query=first).exists())
    changes = sim.changes(alice.emodal_username)
    sim.advance(alice.emodal_username)
    second = run()
    [message] = smtp.inbox.wait_for(1)
    alert = Delivery.objects.emails().get()
    wait_until(lambda: Delivery.objects.get(pk=alert.pk).status == Delivery.Status.SUCCEEDED)
    assert alert.query == second
    kinds = set(alert.links.values_list("event__type", "event__container_number"))
    assert kinds == {
        (EventType.CONTAINER_NEW, changes["added"][0]),
        (EventType.CONTAINER_GONE, changes["removed"][0]),
        *((EventType.LFD_CHANGED, n) for n in changes["lfd"]),
    }
    text, _ = text_and_html(message)
    assert changes["added"][0] in text and "https://portal.example.com/containers/" in text
    assert Container.objects.get(container_number=changes["removed"][0]).gone_at is not None
    assert Event.objects.filter(query=second, type=EventType.CONTAINER_GONE).count() == 1
    assert len(smtp.inbox.messages) == 1
