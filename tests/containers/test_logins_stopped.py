"""An account's logins stopping is news to its person, whichever login found it: a refresh staff
forced or a warm-up (a message of its own), or a run (in the run's one message; on its own if
that run is cancelled instead). Once per stop of a set of credentials; credentials entered
again and rejected again are news again."""

from __future__ import annotations

from typing import Any

import pytest

from containers_app.models import Event
from notifications.models import AlertPreference, Delivery
from queries_app.events import EventType
from queries_app.models import Query
from queries_app.services import cancel_query, start_query
from sessions_app.models import Account
from sessions_app.services import AccountRejected, SessionManager, update_account_credentials

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks, run_through_retries
from .smtp import SmtpServer, text_and_html

pytestmark = pytest.mark.django_db(transaction=True)

STOP = EventType.CREDENTIALS_REJECTED


def person(username: str, **account: Any) -> Account:
    owner = make_account(username, **account)
    owner.user.email = f"{username}@example.com"
    owner.user.save()
    AlertPreference.objects.create(user=owner.user, events=[EventType.QUERY_FAILED, STOP])
    return owner


def drain(queue: TaskQueue) -> None:
    run_queued_tasks(queue, until=lambda: queue.size() == 0)


def test_a_refresh_that_finds_the_password_rejected_alerts_once_per_credentials(
    sim: SimControl,
    task_queue: TaskQueue,
    smtp: SmtpServer,
    announced: list[list[dict[str, Any]]],
) -> None:
    sam = person("sam", password="wrong-password")
    manager = SessionManager()
    with pytest.raises(AccountRejected):
        manager.refresh_session(sam)
    drain(task_queue)
    [event] = Event.objects.filter(type=STOP)
    assert event.account_id == sam.pk and event.query_id is None
    assert event.data["state"] == Account.CredentialState.REJECTED
    assert "INVALID_CREDENTIALS" in event.data["reason"]
    assert [e["type"] for batch in announced for e in batch] == [STOP]
    [message] = smtp.inbox.wait_for(1)
    text, html = text_and_html(message)
    assert message["To"] == "sam@example.com"
    assert "rejected" in text and "rejected" in html
    assert "wrong-password" not in message.as_string()

    # Tried again with the same credentials: no login, nothing new to tell.
    with pytest.raises(AccountRejected):
        manager.refresh_session(sam)
    drain(task_queue)
    assert Event.objects.filter(type=STOP).count() == 1
    assert Delivery.objects.emails().count() == 1

    # Credentials entered again (another username, the same wrong password), rejected too:
    # news again.
    update_account_credentials(account=sam, emodal_username="sam-at-work")
    with pytest.raises(AccountRejected):
        manager.ensure_session(Account.objects.get(pk=sam.pk))
    drain(task_queue)
    assert Event.objects.filter(type=STOP).count() == 2
    assert len(smtp.inbox.wait_for(2)) == 2
    assert len(sim.calls("/get_session")) == 2


def test_a_captcha_key_that_never_works_is_news_too(
    sim: SimControl, task_queue: TaskQueue, smtp: SmtpServer
) -> None:
    fay = person("fay", captcha_api_key="unsolvable-captcha-key")
    with pytest.raises(AccountRejected):
        SessionManager().ensure_session(fay)
    drain(task_queue)
    [event] = Event.objects.filter(type=STOP)
    assert event.data["state"] == Account.CredentialState.KEY_SUSPECT
    assert "captcha API key" in event.data["reason"]
    [message] = smtp.inbox.wait_for(1)
    assert "unsolvable-captcha-key" not in message.as_string()


def test_a_run_that_finds_the_password_rejected_sends_one_message_with_both(
    sim: SimControl, task_queue: TaskQueue, smtp: SmtpServer
) -> None:
    rita = person("rita", password="wrong-password")
    query = run_through_retries(start_query(account=rita, kind="containers")[0], task_queue)
    drain(task_queue)
    assert query.status == Query.Status.FAILED
    # The stop was recorded when the login found it, and told in the run's message.
    [alert] = Delivery.objects.emails()
    assert alert.query_id == query.pk
    assert set(alert.links.values_list("event__type", flat=True)) == {
        EventType.QUERY_FAILED,
        STOP,
    }
    assert len(smtp.inbox.wait_for(1)) == 1


def test_a_stop_left_to_a_run_that_is_then_cancelled_is_told_on_its_own(
    sim: SimControl, task_queue: TaskQueue, smtp: SmtpServer
) -> None:
    ted = person("ted", password="wrong-password")
    query = start_query(account=ted, kind="containers")[0]
    task_queue.purge()  # its step does not run: the run stays live
    with pytest.raises(AccountRejected):
        SessionManager().refresh_session(ted)
    drain(task_queue)
    # Recorded, and left to the live run's failure message.
    assert Event.objects.filter(type=STOP).count() == 1
    assert not Delivery.objects.emails().exists()
    assert cancel_query(query=query)
    drain(task_queue)
    [alert] = Delivery.objects.emails()
    assert alert.query_id is None
    assert list(alert.links.values_list("event__type", flat=True)) == [STOP]
    [message] = smtp.inbox.wait_for(1)
    assert message["To"] == "ted@example.com"
