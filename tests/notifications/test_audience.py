"""Who may hear of an event: one set of rules, followed alike by the e-mail digests and the
webhooks — the account's person; staff with the view permission of the event's kind; no one
inactive, and no one else, whatever they subscribed to."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.utils import timezone

from containers_app.models import Container, Watch
from notifications.channels.email import plan_alerts
from notifications.channels.webhook import record_deliveries
from notifications.endpoints import create_endpoint
from notifications.models import AlertPreference, Delivery, DeliveryEvent
from outbox.models import Event
from outbox.vocabulary import EventType
from sessions_app.models import Account

from ..conftest import make_account

EVERYTHING = list(EventType.values)
LFD, BOOKED, FAILED = EventType.LFD_CHANGED, EventType.APPOINTMENT_BOOKED, EventType.QUERY_FAILED


def person(name: str, *codenames: str, staff: bool = True, active: bool = True) -> Any:
    user = make_account(name).user
    user.email = f"{name}@example.com"
    user.is_staff, user.is_active = staff, active
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_both_channels_tell_the_same_people_of_the_same_events(
    alice: Account, receiver: Any
) -> None:
    now = timezone.now()
    container = Container.objects.create(
        account=alice, container_number="MSCU1234565", first_seen_at=now, updated_at=now
    )
    alice.user.email = "alice@example.com"
    alice.user.save()
    people = {
        "alice": alice.user,
        # Permissions without being staff: another account's events are not theirs to hear.
        "bob": person("bob", "view_container", "view_booking", "view_query", staff=False),
        "sid": person("sid", "view_container"),
        "pat": person("pat", "view_container", "view_booking", "view_query"),
        "dora": person("dora", "view_container", "view_booking", "view_query", active=False),
    }
    for name, user in people.items():
        AlertPreference.objects.create(user=user, events=EVERYTHING)
        create_endpoint(user=user, url=f"{receiver.url}/{name}", events=EVERYTHING)
        if name != "alice":
            Watch.objects.create(user=user, container=container)
    events = [
        Event.objects.create(
            key=f"test:{kind}",
            type=kind,
            account=alice,
            container=None if kind == FAILED else container,
            container_number="" if kind == FAILED else container.container_number,
            data={"before": None, "after": "2026-12-09"} if kind == LFD else {},
            occurred_at=now,
        )
        for kind in (LFD, BOOKED, FAILED)
    ]
    events = list(Event.objects.filter(pk__in=[e.pk for e in events]).select_related("account"))

    plan_alerts(events, query=None)
    record_deliveries(events)

    mailed = set(
        DeliveryEvent.objects.filter(channel="email").values_list("user__username", "event__type")
    )
    hooked = set(Delivery.objects.webhooks().values_list("endpoint__user__username", "event_type"))
    assert mailed == {
        ("alice", LFD),
        ("alice", BOOKED),
        ("alice", FAILED),
        ("sid", LFD),
        ("pat", LFD),
        ("pat", BOOKED),
    }
    # The same people, the same events; an account's own news (a failed run) goes by e-mail to
    # its person only (a subscription's choice), to staff's endpoints too (their permission).
    assert hooked == mailed | {("pat", FAILED)}
