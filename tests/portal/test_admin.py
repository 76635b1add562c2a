"""The admin: every page opens, secrets are write-only, actions confirm and enqueue."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from sessions_app.models import Account, SessionEvent
from sessions_app.services import SessionManager

from ..sim import SimControl
from ..taskqueue import TaskQueue

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client_(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_every_admin_page_opens(admin_client_: Client, alice: Account, sim: SimControl) -> None:
    SessionManager().ensure_session(alice)
    for model in ("account", "sessionevent"):
        changelist = reverse(f"admin:sessions_app_{model}_changelist")
        assert admin_client_.get(changelist).status_code == 200
        assert admin_client_.get(changelist, {"q": "alice"}).status_code == 200
    assert admin_client_.get(reverse("admin:sessions_app_account_add")).status_code == 200
    change = reverse("admin:sessions_app_account_change", args=[alice.pk])
    assert admin_client_.get(change).status_code == 200
    event = SessionEvent.objects.first()
    assert (
        admin_client_.get(
            reverse("admin:sessions_app_sessionevent_change", args=[event.pk])
        ).status_code
        == 200
    )
    for session in ("live", "expired", "none"):
        url = reverse("admin:sessions_app_account_changelist")
        assert admin_client_.get(url, {"session": session}).status_code == 200


def test_secrets_never_render(admin_client_: Client, alice: Account, sim: SimControl) -> None:
    SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    pages = [
        reverse("admin:sessions_app_account_changelist"),
        reverse("admin:sessions_app_account_change", args=[alice.pk]),
        reverse("admin:sessions_app_sessionevent_changelist"),
    ]
    for url in pages:
        html = admin_client_.get(url).content.decode()
        for secret in ("alice-password", "alice-captcha-key", alice.session_id):
            assert secret not in html, (url, secret)


def test_changelist_shows_state_and_captcha_count(
    admin_client_: Client, alice: Account, sim: SimControl
) -> None:
    SessionManager().ensure_session(alice)
    html = admin_client_.get(reverse("admin:sessions_app_account_changelist")).content.decode()
    assert "Live" in html
    assert '<td class="field-captcha_solves_24h">1</td>' in html


def _change_form(account: Account, **overrides: str) -> dict[str, str]:
    return {
        "user": str(account.user_id),
        "emodal_username": "alice-emodal",
        "new_password": "",
        "new_captcha_api_key": "",
        "trucking_company": "K & R TRANSPORTATION LLC",
        "truck_plate": "7ABC123",
        **overrides,
    }


def test_blank_secret_keeps_the_current_one(admin_client_: Client, alice: Account) -> None:
    url = reverse("admin:sessions_app_account_change", args=[alice.pk])
    response = admin_client_.post(url, _change_form(alice, truck_plate="8XYZ999"))
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.password, alice.captcha_api_key) == ("alice-password", "alice-captcha-key")
    assert alice.truck_plate == "8XYZ999"


def test_new_password_clears_rejection_and_is_audited_by_name(
    admin_client_: Client, alice: Account
) -> None:
    Account.objects.filter(pk=alice.pk).update(
        credential_state=Account.CredentialState.REJECTED, credential_error="bad password"
    )
    url = reverse("admin:sessions_app_account_change", args=[alice.pk])
    admin_client_.post(url, _change_form(alice, new_password="s3cret-new"))
    alice.refresh_from_db()
    assert alice.password == "s3cret-new"
    assert alice.credential_state == Account.CredentialState.UNKNOWN
    entry = LogEntry.objects.filter(object_id=str(alice.pk)).latest("action_time")
    assert "password" in entry.get_change_message()
    assert "s3cret-new" not in entry.change_message


def test_add_requires_secrets(admin_client_: Client, staff: Any) -> None:
    url = reverse("admin:sessions_app_account_add")
    response = admin_client_.post(
        url,
        {
            "user": str(staff.pk),
            "emodal_username": "x",
            "new_password": "",
            "new_captcha_api_key": "",
        },
    )
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not Account.objects.exists()


def test_force_refresh_asks_for_confirmation_then_enqueues(
    admin_client_: Client, alice: Account, bob: Account, task_queue: TaskQueue
) -> None:
    url = reverse("admin:sessions_app_account_changelist")
    data = {"action": "force_session_refresh", "_selected_action": [alice.pk, bob.pk]}
    response = admin_client_.post(url, data)
    assert response.status_code == 200
    assert "spends one paid captcha" in response.content.decode()
    assert task_queue.size() == 0
    response = admin_client_.post(url, {**data, "confirmed": "yes"}, follow=True)
    assert "Queued session refreshes for 2 accounts." in response.content.decode()
    queued = task_queue.drain()
    assert [t["func"] for t in queued] == ["sessions_app.tasks.refresh_session"] * 2
    assert sorted(t["args"] for t in queued) == [(alice.pk,), (bob.pk,)]
    assert LogEntry.objects.filter(change_message="Queued a forced session refresh").count() == 2


def test_force_refresh_needs_its_own_permission(alice: Account, django_user_model: Any) -> None:
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_account", "change_account"])
    )
    client = Client()
    client.force_login(clerk)
    url = reverse("admin:sessions_app_account_changelist")
    html = client.get(url).content.decode()
    assert "force_session_refresh" not in html
    assert "drop_session" in html


def test_drop_session_enqueues_only_accounts_with_a_session(
    admin_client_: Client, alice: Account, bob: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    SessionManager().ensure_session(alice)
    url = reverse("admin:sessions_app_account_changelist")
    response = admin_client_.post(
        url, {"action": "drop_session", "_selected_action": [alice.pk, bob.pk]}, follow=True
    )
    assert "Queued dropping the session of 1 account." in response.content.decode()
    assert task_queue.funcs() == ["sessions_app.tasks.drop_session"]


def test_event_log_is_read_only(admin_client_: Client, alice: Account, sim: SimControl) -> None:
    SessionManager().ensure_session(alice)
    event = SessionEvent.objects.get()
    assert admin_client_.get(reverse("admin:sessions_app_sessionevent_add")).status_code == 403
    url = reverse("admin:sessions_app_sessionevent_change", args=[event.pk])
    admin_client_.post(url, {"kind": "failed"})
    event.refresh_from_db()
    assert event.kind == SessionEvent.Kind.CREATED


def test_refresh_task_replaces_the_session(alice: Account, sim: SimControl) -> None:
    from sessions_app import tasks

    old = SessionManager().ensure_session(alice)
    assert tasks.refresh_session(alice.pk) == "refreshed"
    alice.refresh_from_db()
    assert alice.session_id != old
    assert tasks.drop_session(alice.pk) == "dropped"
    alice.refresh_from_db()
    assert alice.session_id is None


# The records the portal keeps, read-only for every staff member (a superuser included): never
# added or edited from the admin; the logs never deleted by hand either.
KEPT_RECORDS = [
    ("containers_app", "container", True),
    ("history", "historyentry", True),
    ("queries_app", "recurringrun", True),
    ("sessions_app", "listedoption", True),
    ("sessions_app", "sessionevent", False),
    ("notifications", "delivery", False),
]


@pytest.mark.parametrize(("app", "model", "deletable"), KEPT_RECORDS)
def test_kept_records_are_read_only_in_the_admin(
    admin_client_: Client, app: str, model: str, deletable: bool
) -> None:
    assert admin_client_.get(reverse(f"admin:{app}_{model}_add")).status_code == 403
    changelist = admin_client_.get(reverse(f"admin:{app}_{model}_changelist"))
    assert changelist.status_code == 200
    form = changelist.context["action_form"]  # None: no action at all
    actions = [name for name, _ in form.fields["action"].choices] if form else []
    assert ("delete_selected" in actions) is deletable
    # No such row: a record staff may delete sends them back to the list; one they may not
    # is refused before it is even looked for.
    delete = admin_client_.get(reverse(f"admin:{app}_{model}_delete", args=[999999]))
    assert delete.status_code == (302 if deletable else 403)
