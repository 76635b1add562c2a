"""Who may hear of an event — one set of rules for every channel, the pages' own
(`queries_app.access`):

- the person of the event's account;
- staff who see every account's data of the event's kind (its view permission: the board's for
  container events, the bookings' for appointments, the queries' for the rest).

No one else, and no one inactive. A channel's subscriptions say who wants to hear (an e-mail
preference and its watched containers, a webhook endpoint); these rules say who may: a star kept
on a container from before its person lost the permission, or an endpoint of someone whose
account changed hands, tells them nothing."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from containers_app.models import VIEW_CONTAINERS
from queries_app.access import VIEW_QUERIES, sees_others

VIEW_BOOKINGS = "bookings_app.view_booking"


def permission_for(event_type: str) -> str:
    """The view permission that lets staff hear of any account's events of this type."""
    if event_type.startswith("appointment."):
        return VIEW_BOOKINGS
    return VIEW_CONTAINERS if event_type.startswith("container.") else VIEW_QUERIES


class Audience:
    """The rules, asked once per person and permission (a dispatcher's batch asks them for
    many events and subscribers)."""

    def __init__(self) -> None:
        self._people: dict[int, Any] = {}
        self._sees: dict[tuple[int, str], bool] = {}

    def person(self, user_id: int) -> Any | None:
        """The person, if active."""
        if user_id not in self._people:
            self._people[user_id] = (
                get_user_model().objects.filter(pk=user_id, is_active=True).first()
            )
        return self._people[user_id]

    def know(self, *people: Any) -> None:
        """People already read (with what their channel needs): not read again."""
        for person in people:
            self._people.setdefault(person.pk, person if person.is_active else None)

    def may_hear(self, user_id: int, *, event_type: str, account_user_id: int | None) -> bool:
        person = self.person(user_id)
        if person is None:
            return False
        if user_id == account_user_id:
            return True
        permission = permission_for(event_type)
        if (user_id, permission) not in self._sees:
            self._sees[user_id, permission] = sees_others(person, permission)
        return self._sees[user_id, permission]
